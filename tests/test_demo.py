"""The demo region in data_samples/: what the README's main command runs on."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from landcover.cli.main import cli
from landcover.scenes import find_scenes
from landcover.stack import grid_of, stack_scenes
from landcover.summary import qa_fractions
from landcover.config import load_config

DEMO = Path(__file__).resolve().parents[1] / "data_samples"


@pytest.fixture(scope="module")
def scenes():
    return find_scenes([DEMO])


def test_demo_is_a_year_of_one_landsat8_path_row(scenes):
    assert len(scenes) >= 8
    assert {(s.sensor, s.path, s.row) for s in scenes} == {("LC08", 193, 26)}
    assert (scenes[-1].date - scenes[0].date).days > 300
    assert {s.grid for s in scenes} == {scenes[0].grid}
    assert scenes[0].grid.crs.startswith("EPSG:326") and scenes[0].grid.res == (30.0, 30.0)


def test_qa_agrees_with_the_mtl_and_shadows_are_displaced(scenes):
    cfg = load_config().scenes
    cloudy = 0
    for scene in scenes:
        fractions = qa_fractions(scene, cfg)
        assert fractions["cloud_fraction"] * 100 == pytest.approx(scene.cloud_cover, abs=0.01)
        assert 0.02 < fractions["fill_fraction"] < 0.1  # the slanted fill border
        with rasterio.open(scene.mask_path) as src:
            qa = src.read(1)
        cloud, shadow = (qa & (1 << 3)) != 0, (qa & (1 << 4)) != 0
        assert not (cloud & shadow).any()
        if cloud.any():
            cloudy += 1
            assert shadow.any()
    assert cloudy >= 4


def test_labels_share_the_grid_and_have_a_rare_class(scenes):
    with rasterio.open(DEMO / "labels.tif") as src:
        labels = src.read(1)
        assert src.nodata == 255 and src.colormap(1)[1][:3] != (0, 0, 0)
        assert grid_of(stack_scenes(scenes[:1])).transform == tuple(src.transform[:6])
    codes, counts = np.unique(labels[labels != 255], return_counts=True)
    assert len(codes) >= 5
    assert 0.01 < counts.min() / counts.sum() < 0.03
    polygons = gpd.read_file(DEMO / "labels.gpkg", layer="labels")
    assert {"class_code", "class_name"} <= set(polygons.columns)
    assert polygons.crs.to_epsg() == int(scenes[0].grid.crs.split(":")[1])
    assert set(polygons.class_code) == set(codes.tolist())


def test_readme_main_command_runs(runner):
    result = runner.invoke(cli, ["-q", "info", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "stack: 12 dates" in result.stdout


def test_prepare_on_the_demo_with_its_config(tmp_path, runner):
    """The README's prepare step: every class present, the rare wetland weighted up, all splits."""
    import json

    import xarray as xr

    out = tmp_path / "demo.zarr"
    result = runner.invoke(cli, ["-q", "prepare", str(DEMO), "--labels", str(DEMO / "labels.gpkg"),
                                 "--config", str(DEMO / "demo.yaml"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert all(v > 0 for v in summary["patches_per_split"].values())
    assert len(summary["dates"]) == 12 and 0.2 < summary["masked_share"] < 0.6
    ds = xr.open_zarr(out)
    classes = {c["name"]: c for c in ds.attrs["classes"]}
    assert list(classes) == ["water", "forest", "urban", "summer_crop", "spring_crop",
                             "grassland", "wetland"]
    assert classes["wetland"]["weight"] > 3 * classes["forest"]["weight"]
    assert all(c["pixels"]["train"] > 0 for c in classes.values())
    assert classes["wetland"]["color"] == "#8e7cc3"


def readme_block(pattern: str) -> str:
    """The first ```bash block of README.md whose text matches ``pattern``."""
    import re

    readme = (DEMO.parent / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    found = [b for b in blocks if re.search(pattern, b)]
    assert found, f"no bash block of README.md matches {pattern!r}"
    return found[0]


def test_the_readme_install_and_test_commands_are_what_ci_runs():
    """CI (.ci/run) installs and tests exactly as the README tells a new user to."""
    ci = (DEMO.parent / ".ci" / "run").read_text().splitlines()
    install = readme_block(r"pip install -e").strip()
    test = readme_block(r"^python -m pytest").strip()
    assert install in ci, (install, ci)
    assert test in ci, (test, ci)
    # and once with ../shared out of sight: the real-sample tests skip, collection passes
    assert any(line.startswith("LANDCOVER_SHARED=") and line.endswith(test) for line in ci), ci


@pytest.mark.slow
def test_readme_main_command_runs_verbatim_in_a_fresh_copy(tmp_path):
    """The README's main command, copied verbatim, run by a shell from a fresh copy of the
    repository (relative paths, its own working directory), as a new user would."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    command = readme_block(r"^mkdir -p demo && landcover info")
    assert "\n" not in command.strip()
    repo = DEMO.parent
    copy = tmp_path / "landcover"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "demo", "__pycache__", "*.egg-info", ".pytest_cache"))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-e", "-c", command], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    demo = copy / "demo"
    assert not [p.name for p in demo.iterdir() if p.name.startswith(".")]  # nothing left behind
    meta = json.loads((demo / "model" / "bundle.json").read_text())
    # the default (auto) keeps one of its candidates, all listed with their figures
    assert meta["model"]["architecture"] in {c["architecture"]
                                             for c in meta["model"]["candidates"]}
    assert meta["estimate"]["method"] in ("holdout", "kfold")
    assert meta["estimate"]["macro_f1"]["ci95"] is not None
    test = meta["metrics"]["test"]
    # the default training on the demo (docs/training.md): macro F1 >= 0.95, every class >= 0.85,
    # a median top-class probability that means something, and at least the random forest
    assert test["macro_f1"] >= 0.95
    assert min(c["f1"] for c in test["per_class"].values() if c["support"]) >= 0.85
    assert test["median_top_probability"] >= 0.7
    rf = meta["baseline"]["test"]
    assert test["overall_accuracy"] >= rf["overall_accuracy"] - 0.01
    with rasterio.open(demo / "map.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.tags()["LANDCOVER_MODEL_HASH"] == meta["content_hash"]
        assert src.tags()["LANDCOVER_ARCHITECTURE"] == meta["model"]["architecture"]
        codes = src.read(1)
    assert set(np.unique(codes)) <= {c["code"] for c in meta["classes"]} | {255}
    for name in ("map.qml", "map_quicklook.png", "map_probabilities.tif"):
        assert (demo / name).exists(), name
    report = json.loads((demo / "accuracy" / "evaluation.json").read_text())
    assert report["scores"]["overall_accuracy"] > 0.7
