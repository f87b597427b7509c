"""What a user hits in the first hour (issue 24, points 4, 7 and 8): one-line errors instead of
tracebacks, warnings where a run would go on silently, nothing half-written or left behind."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from conftest import one_line_error  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from test_smooth import noisy_fields, write_probabilities  # noqa: E402


@pytest.fixture
def probs(tmp_path):
    """A 96 x 96 probability file of classify (three classes)."""
    prob, truth, _ = noisy_fields(size=96, seed=2)
    write_probabilities(tmp_path / "p.tif", prob, np.ones(truth.shape, bool))
    return tmp_path / "p.tif"


@contextlib.contextmanager
def warnings_of(name: str):
    """The warning messages logged by logger ``name`` inside the block (a handler of its own:
    the CLI's logging setup stops propagation to pytest's)."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# ------------------------------------------------------------------------------------- smooth
def test_smooth_of_a_truncated_input_names_the_input(runner, probs, tmp_path):
    from rasterio.shutil import copy

    cog = tmp_path / "cog.tif"  # a COG: the header is first, so a cut file still opens
    copy(str(probs), str(cog), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=64)
    data = cog.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "smooth", str(cut), "--out", str(tmp_path / "m.tif")])
    one_line_error(res, 1, "cut.tif", "truncated")
    assert "m.tif" not in res.output
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("window", ["1001", "100000000000000000000000000001"])
def test_smooth_refuses_a_huge_window(runner, probs, tmp_path, window):
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "smooth", str(probs), "--out", str(tmp_path / "m.tif"),
                              "--set", f"classify.smooth.window={window}"])
    one_line_error(res, 2, "classify.smooth.window", window, "at most 99")
    assert _listing(tmp_path) == before


def test_smooth_never_overwrites_its_own_input(runner, probs, tmp_path):
    data = probs.read_bytes()
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "smooth", str(probs), "--out", str(probs), "--overwrite"])
    one_line_error(res, 2, "--out", "p.tif", "input would be overwritten")
    assert probs.read_bytes() == data and _listing(tmp_path) == before


def test_a_killed_smooth_leaves_a_store_the_next_run_removes(runner, probs, tmp_path,
                                                             monkeypatch):
    import landcover.smooth as sm
    from landcover.outputs import OutputSet

    def killed(self, *exc):  # what a SIGKILL leaves: the temporaries stay, the kernel unlocks
        self._lock.release()
        return False

    def boom(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(OutputSet, "__exit__", killed)
        m.setattr(sm, "smooth_block", boom)
        with pytest.raises(RuntimeError):
            sm.smooth(probs, tmp_path / "m.tif")
    left = [p for p in _listing(tmp_path) if p.startswith(".m.tif")]
    assert left and all(".work-" in p for p in left), left
    res = runner.invoke(cli, ["-q", "smooth", str(probs), "--out", str(tmp_path / "m.tif")])
    assert res.exit_code == 0, res.output
    assert not [p for p in _listing(tmp_path) if p.startswith(".m.tif")]


# -------------------------------------------------------------------------------- sample, change
@pytest.fixture
def maps(tmp_path):
    """Two class maps of one 150 x 150 grid (tests/test_sample.py's known maps)."""
    from test_sample import known_maps, write

    truth, mapped = known_maps()
    return write(tmp_path / "map.tif", mapped), write(tmp_path / "truth.tif", truth)


def _full_disk(monkeypatch):
    """shutil.disk_usage reports 4 kB free (what GDAL and SQLite ran into)."""
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=4096))


def test_sample_seed_must_not_be_negative(runner, maps, tmp_path):
    res = runner.invoke(cli, ["-q", "sample", str(maps[0]), "--out", str(tmp_path / "s.gpkg"),
                              "--seed", "-1"])
    one_line_error(res, 2, "--seed", "-1", "0 or more")
    assert not (tmp_path / "s.gpkg").exists()


def test_sample_onto_a_full_disk_is_one_line_and_leaves_nothing(runner, maps, tmp_path,
                                                                 monkeypatch):
    import geopandas as gpd
    from pyogrio.errors import FeatureError

    def full(*args, **kwargs):  # what pyogrio raised on a full tmpfs
        raise FeatureError("Could not add feature to layer at index 0: sqlite3_exec(INSERT INTO "
                           "gpkg_contents ...) failed: no such table: gpkg_contents")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", full)
    _full_disk(monkeypatch)
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "sample", str(maps[0]), "--out", str(tmp_path / "s.gpkg")])
    one_line_error(res, 1, "s.gpkg", "disk is full", "free some space")
    assert _listing(tmp_path) == before


def test_change_onto_a_full_disk_is_one_line_and_leaves_nothing(runner, maps, tmp_path,
                                                                 monkeypatch):
    import landcover.maps as lm
    from rasterio._err import CPLE_AppDefinedError

    def full(src, dst, *args):  # what GDAL raised converting to a COG on a full tmpfs
        raise CPLE_AppDefinedError(1, 1, f"{src}: TIFFReadDirectory:Failed to read directory")

    monkeypatch.setattr(lm, "_cog", full)
    _full_disk(monkeypatch)
    before = _listing(tmp_path)
    res = runner.invoke(cli, ["-q", "change", *map(str, maps), "--out", str(tmp_path / "ch")])
    one_line_error(res, 1, "ch", "disk is full")
    assert _listing(tmp_path) == before


def test_sample_and_change_do_not_advise_a_flag_they_lack(runner, maps, tmp_path):
    from landcover.maps import write_array_map
    from test_sample import TABLE

    with rasterio.open(maps[0]) as src:  # a map whose class tag is broken
        codes, grid = src.read(1), src
        from landcover.grid import Grid

        grid = Grid.from_rasterio(src.crs, src.transform, src.width, src.height)
    write_array_map(codes, grid, TABLE, tmp_path / "bad.tif", {"LANDCOVER_CLASSES": "[{"})
    for args in (["sample", str(tmp_path / "bad.tif"), "--out", str(tmp_path / "s.gpkg")],
                 ["change", str(tmp_path / "bad.tif"), str(maps[1]), "--out",
                  str(tmp_path / "ch")]):
        res = runner.invoke(cli, ["-q", *args])
        one_line_error(res, 1, "bad.tif", "landcover classify")
        assert "--classes classes.yaml" not in res.output


def test_a_one_pixel_shift_names_both_origins(runner, maps, tmp_path):
    from landcover.grid import Grid
    from landcover.maps import write_array_map
    from test_sample import TABLE

    with rasterio.open(maps[1]) as src:
        codes, t = src.read(1), src.transform
    shifted = Grid("EPSG:32632", (30.0, 0.0, t.c + 30.0, 0.0, -30.0, t.f), 150, 150)
    write_array_map(codes, shifted, TABLE, tmp_path / "shifted.tif")
    res = runner.invoke(cli, ["-q", "change", str(maps[0]), str(tmp_path / "shifted.tif"),
                              "--out", str(tmp_path / "ch")])
    one_line_error(res, 1, "not on the grid", f"origin ({t.c:.10g}, {t.f:.10g}) vs "
                   f"({t.c + 30:.10g}, {t.f:.10g})", "1 px east")


def test_a_stale_probability_file_beside_the_map_is_left_out(runner, maps, probs, tmp_path):
    shutil.copy(probs, tmp_path / "map_probabilities.tif")  # 96 x 96: not this map's
    res = runner.invoke(cli, ["sample", str(maps[0]), "--out", str(tmp_path / "s.gpkg"),
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["probabilities"] is None
    assert "map_probabilities.tif, found beside the map, is left out" in res.stderr
    assert "96x96 vs 150x150" in res.stderr
    # the uncertainty design needs it: one line naming the file
    res = runner.invoke(cli, ["-q", "sample", str(maps[0]), "--out", str(tmp_path / "u.gpkg"),
                              "--design", "uncertainty"])
    one_line_error(res, 2, "--probabilities", "map_probabilities.tif", "does not fit")


# ------------------------------------------------------------------------------------ classify
@pytest.fixture(scope="module")
def killed(field_series, field_bundle, tmp_path_factory):
    """A classification (9 blocks of 64 px) killed once every block was done: its folder, with
    the ``.map.tif.partial`` store that --resume continues."""
    pytest.importorskip("tensorflow")
    from landcover import classify as lc
    from landcover.classify import run as lc_run

    folder = tmp_path_factory.mktemp("killed")
    meta, cfg = lc.resolve_config(field_bundle, None, ["classify.block_size=64"])
    real = lc_run.write_products

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    lc_run.write_products = die  # where the run calls it
    try:
        with pytest.raises(KeyboardInterrupt):
            lc.classify(lc.model_scenes(field_series[0], meta, cfg), field_bundle,
                        folder / "map.tif", cfg, meta=meta, progress=False)
    finally:
        lc_run.write_products = real
    assert len(list((lc.partial_path(folder / "map.tif") / "done").glob("*.json"))) == 9
    return folder


def _resume_args(field_series, field_bundle, out):
    return ["-q", "classify", *map(str, field_series[0]), "--model", str(field_bundle), "--out",
            str(out), "--set", "classify.block_size=64", "--resume", "--json"]


def _copy_killed(killed, tmp_path):
    store = tmp_path / ".map.tif.partial"
    shutil.copytree(killed / ".map.tif.partial", store)
    return store


@pytest.mark.parametrize("damage", ["deleted", "garbled", "group"])
def test_resume_with_a_damaged_store_is_one_line(runner, field_series, field_bundle, killed,
                                                 tmp_path, damage):
    store = _copy_killed(killed, tmp_path)
    meta = store / ("zarr.json" if damage == "group" else "classes/zarr.json")
    if damage == "deleted":
        meta.unlink()
    else:
        meta.write_text(meta.read_text()[:40])
    res = runner.invoke(cli, _resume_args(field_series, field_bundle, tmp_path / "map.tif"))
    one_line_error(res, 1, ".map.tif.partial", "block store is damaged", "without --resume")
    assert not (tmp_path / "map.tif").exists()


def test_resume_recounts_a_finished_block_whose_record_was_edited(
        runner, field_series, field_bundle, killed, tmp_path):
    store = _copy_killed(killed, tmp_path)
    marker = store / "done" / "0_0.json"
    record = json.loads(marker.read_text())
    record["counts"][0] += 4_000_000
    marker.write_text(json.dumps(record))
    res = runner.invoke(cli, _resume_args(field_series, field_bundle, tmp_path / "map.tif"))
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    grid = summary["grid"]
    assert summary["classified_pixels"] + summary["nodata_pixels"] == \
        grid["width"] * grid["height"]
    assert summary["blocks_resumed"] == 8  # the edited block is computed again


@pytest.mark.parametrize("code, what", [(errno.ENOSPC, "disk is full"),
                                        (errno.EIO, "Input/output error")])
def test_a_full_disk_keeps_the_finished_blocks_and_says_resume(runner, field_series,
                                                               field_bundle, killed, tmp_path,
                                                               monkeypatch, code, what):
    import os

    import landcover.classify.run as lc  # where the products are written

    _copy_killed(killed, tmp_path)
    out = tmp_path / "map.tif"

    def full(store, grid, windows, table, path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    with monkeypatch.context() as m:
        m.setattr(lc, "write_map", full)
        res = runner.invoke(cli, _resume_args(field_series, field_bundle, out))
    one_line_error(res, 1, what, "9 finished block(s)", ".map.tif.partial", "--resume")
    assert "left no output" not in res.output
    res = runner.invoke(cli, _resume_args(field_series, field_bundle, out))
    assert res.exit_code == 0 and json.loads(res.stdout)["blocks_resumed"] == 9, res.output


def test_a_bundle_of_another_architecture_is_one_line_and_leaves_nothing(
        runner, field_series, field_bundle, tmp_path):
    pytest.importorskip("tensorflow")
    from landcover.bundle import read_metadata, write_metadata

    other = tmp_path / "other"
    shutil.copytree(field_bundle, other)
    meta = read_metadata(other)
    meta["architecture"]["layers"] = meta["architecture"]["layers"] + 1  # hash recomputed
    write_metadata(other, {k: v for k, v in meta.items()
                           if k not in ("content_hash", "landcover_model")})
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(cli, ["-q", "classify", *map(str, field_series[0]), "--model",
                              str(other), "--out", str(out / "map.tif")])
    one_line_error(res, 1, str(other), "cannot be built", "train the model again")
    assert _listing(out) == []


def test_a_model_on_scenes_of_another_pixel_size_and_date_span_warns(field_bundle):
    import datetime as dt

    from landcover.bundle import read_bundle_meta
    from landcover.classify import warn_unlike_training
    from landcover.grid import Grid

    meta = read_bundle_meta(field_bundle)
    trained = [dt.date.fromisoformat(d) for d in meta.dates]
    coarse = Grid("EPSG:32632", (445.0, 0.0, 500010.0, 0.0, -445.0, 5000010.0), 13, 13)
    with warnings_of("landcover.classify") as seen:
        warn_unlike_training(meta, coarse, trained[:1], Path(field_bundle))
    text = "\n".join(seen)
    assert "trained on 30 m pixels, the scenes are on 445 m pixels" in text
    assert f"trained on {len(trained)} date(s)" in text
    assert f"give 1 date(s) over 0 days ({trained[0]} .. {trained[0]})" in text
    same = Grid("EPSG:32632", tuple(meta.grid["transform"]), 10, 10)
    with warnings_of("landcover.classify") as seen:
        warn_unlike_training(meta, same, trained, Path(field_bundle))
    assert seen == []


# ------------------------------------------------------------------------------ labels, prepare
def test_class_names_in_a_croptype_column_name_the_classes(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from landcover.grid import Grid
    from landcover.labels import open_labels

    grid = Grid("EPSG:32632", (30.0, 0.0, 500000.0, 0.0, -30.0, 5000300.0), 10, 10)
    crops = ["maize", "wheat", "maize", "vines", "fallow", "wheat"]
    code = {"maize": 1, "wheat": 2, "vines": 3, "fallow": 4}
    frame = gpd.GeoDataFrame(
        {"code": [code[c] for c in crops], "croptype": crops,
         "field": [f"f{i}" for i in range(6)],  # an identifier: one name per feature
         "geometry": [box(500000 + 30 * i, 5000000, 500030 + 30 * i, 5000300)
                      for i in range(6)]}, crs="EPSG:32632")
    frame.to_file(tmp_path / "labels.gpkg", driver="GPKG")
    labels = open_labels(tmp_path / "labels.gpkg", grid)
    table = labels.table([1, 2, 3, 4])
    assert [(c.code, c.name) for c in table.classes] == [(1, "maize"), (2, "wheat"),
                                                         (3, "vines"), (4, "fallow")]
    # a text column that does not match the codes one to one names nothing
    frame["croptype"] = ["maize", "wheat", "wheat", "vines", "fallow", "wheat"]
    frame.drop(columns="field").to_file(tmp_path / "mixed.gpkg", driver="GPKG")
    table = open_labels(tmp_path / "mixed.gpkg", grid).table([1, 2, 3, 4])
    assert table.names == ["class_1", "class_2", "class_3", "class_4"]


def test_rasterize_leaks_no_raw_not_georeferenced_warning():
    """What leaked under dask's threads from rasterio.features (its own catch_warnings is not
    thread-safe), replayed as rasterio raises it: importing the labels module silences it."""
    import warnings

    import rasterio.features
    from rasterio.errors import NotGeoreferencedWarning

    from landcover.labels import quiet_rasterize

    def leak():
        warnings.warn_explicit("Dataset has no geotransform, gcps, or rpcs. The identity matrix "
                               "will be returned.", NotGeoreferencedWarning,
                               rasterio.features.__file__, 382, module="rasterio.features",
                               registry={})

    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()  # not pytest's filters (they ignore the warning): the CLI's
        leak()
        assert len(seen) == 1  # shown without the filter
        quiet_rasterize()  # what importing landcover.labels does
        leak()
        assert len(seen) == 1


# --------------------------------------------------------------------------------------- scenes
def test_level_2_and_collection_1_level_1_scenes_stacked_together_warn(scenes_dir):
    import dataclasses

    from conftest import CLEAR, DESIGNED
    from landcover.scenes import find_scenes
    from landcover.stack import stack_grid

    a, b = find_scenes([str(scenes_dir / DESIGNED), str(scenes_dir / CLEAR)])
    with warnings_of("landcover.stack") as seen:
        stack_grid([a, b])
    assert seen == []
    l1 = dataclasses.replace(b, scene_id="LC08_L1TP_193026_20230712_20230721_01_T1",
                             profile="landsat_c1l1", sensor_profile=None)
    with warnings_of("landcover.stack") as seen:
        stack_grid([a, l1])
    assert len(seen) == 1 and "different products" in seen[0]
    assert "landsat_c2l2" in seen[0] and "landsat_c1l1" in seen[0]
    assert "top-of-atmosphere" in seen[0] and "LC08_L1TP_193026" in seen[0]


def test_a_failed_read_over_http_says_run_again_and_resume():
    from landcover.errors import RasterReadError
    from landcover.gdalio import read_window
    from landcover.grid import Grid

    grid = Grid("EPSG:32632", (30.0, 0.0, 0.0, 0.0, -30.0, 0.0), 4, 4)
    url = "/vsicurl/http://127.0.0.1:9/LC08_SR_B4.TIF"  # nothing listens on port 9
    with pytest.raises(RasterReadError) as err:
        read_window(url, grid, grid, 0, 0, 2, 2, 0, resampling="nearest")
    message = str(err.value)
    assert message.startswith(url) and "over the network" in message
    assert "--resume" in message and "re-download" not in message


def test_scenes_off_the_lattice_name_both_origins(scenes_dir):
    from conftest import DESIGNED, MISALIGNED
    from landcover.config import GridConfig
    from landcover.errors import GridMismatchError
    from landcover.scenes import find_scenes
    from landcover.stack import check_alignment, target_grid

    scenes = list(find_scenes([str(scenes_dir / DESIGNED), str(scenes_dir / MISALIGNED)]))
    with pytest.raises(GridMismatchError) as err:  # half a pixel apart: describe() reads alike
        check_alignment(scenes, target_grid(scenes, GridConfig()))
    assert "origin (600000, 5800020) vs (600015, 5800020)" in str(err.value)
