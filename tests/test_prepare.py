"""landcover prepare: labels, weights, splits, statistics and the Zarr dataset, against the
sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr

from conftest import CLEAR, DESIGNED, L7, SCENES
from landcover.cli.main import cli
from landcover.config import load_config
from landcover.prepare import prepare
from landcover.scenes import LocalScenes

SMALL = ["prepare.patches.size=16", "prepare.patches.stride=16", "prepare.split.block_size=32",
         "prepare.patches.min_labelled=0.0", "prepare.patches.min_valid=0.0",
         "prepare.features.min_date_valid=0.0", "prepare.split.fractions=[0.5,0.5]"]
SR = {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}  # Landsat 8 band numbers
SR7 = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7}


def grid_profile(scene: Path) -> dict:
    with rasterio.open(next(scene.glob("*_QA_PIXEL.TIF"))) as src:
        return {"crs": src.crs, "transform": src.transform, "width": src.width,
                "height": src.height}


def write_labels(path: Path, codes: np.ndarray, like: Path, nodata=0, crs=None, shift=(0, 0),
                 colormap=None) -> Path:
    g = grid_profile(like)
    transform = g["transform"] @ rasterio.Affine.translation(*shift)
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0],
                       count=1, dtype=codes.dtype, crs=crs or g["crs"], transform=transform,
                       nodata=nodata) as dst:
        dst.write(codes, 1)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


def label_codes(seed=1) -> np.ndarray:
    """Codes 1..3 in blocks, some unlabelled (0) pixels and a few unknown codes (9)."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.repeat(rng.integers(1, 4, (8, 8)), 8, 0), 8, 1).astype(np.uint8)
    codes[rng.random(codes.shape) < 0.1] = 0
    codes[60:, 60:] = 9
    return codes


def run(scenes, labels, out, extra=(), **kw):
    cfg = load_config(None, [*SMALL, *extra])
    return prepare(LocalScenes(tuple(str(s) for s in scenes), cfg.scenes.profile), str(labels),
                   out, cfg, progress=False, **kw)


def invalid_from_sources(scene: Path, bands: dict) -> np.ndarray:
    """Invalid pixels decoded straight from the files: QA_PIXEL bits 0-4, RADSAT of the stacked
    bands, SR fill (0) and the valid DN range 7273..43636."""
    with rasterio.open(next(scene.glob("*_QA_PIXEL.TIF"))) as src:
        qa = src.read(1).astype(np.int64)
    with rasterio.open(next(scene.glob("*_QA_RADSAT.TIF"))) as src:
        radsat = src.read(1).astype(np.int64)
    bad = (qa & 0b11111) != 0
    for number in bands.values():
        with rasterio.open(next(scene.glob(f"*_SR_B{number}.TIF"))) as src:
            dn = src.read(1)
        bad |= (dn == 0) | (dn < 7273) | (dn > 43636)
        bad |= (radsat >> (number - 1)) & 1 == 1
    return bad


@pytest.fixture(scope="module")
def labels_tif(tmp_path_factory):
    """Label raster with codes 1..3 and 9, and a class table of 1..3 next to it."""
    folder = tmp_path_factory.mktemp("labels")
    (folder / "classes.yaml").write_text(
        "- {code: 1, name: crop}\n- {code: 2, name: forest}\n- {code: 3, name: water}\n")
    return write_labels(folder / "labels.tif", label_codes(), SCENES / DESIGNED)


def table_of(labels: Path) -> list[str]:
    return [f"prepare.classes={labels.parent / 'classes.yaml'}"]


@pytest.fixture(scope="module")
def three_dates(tmp_path_factory, labels_tif):
    out = tmp_path_factory.mktemp("ds") / "three.zarr"
    summary = run([SCENES / DESIGNED, SCENES / L7, SCENES / CLEAR], labels_tif, out,
                  table_of(labels_tif))
    return out, summary


def windows(ds):
    return list(zip(ds.row.values.tolist(), ds.col.values.tolist()))


# --------------------------------------------------------------------------------- weights
def test_single_date_weights_are_zero_exactly_where_the_sources_say_invalid(tmp_path, labels_tif):
    out = tmp_path / "one.zarr"
    run([SCENES / DESIGNED], labels_tif, out, table_of(labels_tif))
    ds = xr.open_zarr(out)
    invalid = invalid_from_sources(SCENES / DESIGNED, SR)
    codes = label_codes()
    cw = {int(k): v for k, v in ds.attrs["class_weights"]["by_code"].items()}
    assert invalid.sum() > 500 and set(cw) == {1, 2, 3}  # unknown code 9 is not a class
    weights, labels = ds.weights.values, ds.labels.values
    for n, (r, c) in enumerate(windows(ds)):
        src_codes = codes[r:r + 16, c:c + 16]
        src_bad = invalid[r:r + 16, c:c + 16]
        expected = np.array([[cw.get(int(v), 0.0) for v in row] for row in src_codes], np.float32)
        expected[src_bad] = 0.0
        np.testing.assert_array_equal(weights[n], expected, err_msg=f"window {r},{c}")
        assert ((labels[n] == 255) == (expected == 0)).all()
    # windows without one valid labelled pixel (cloud top right, fill + shadow bottom left) are
    # dropped; every other window is kept with min_labelled = min_valid = 0
    kept = set(windows(ds))
    for r in range(0, 64, 16):
        for c in range(0, 64, 16):
            usable = (~invalid[r:r + 16, c:c + 16] & np.isin(codes[r:r + 16, c:c + 16],
                                                              [1, 2, 3])).any()
            assert ((r, c) in kept) == usable


def test_weights_over_a_series_are_zero_where_no_date_is_valid(three_dates, labels_tif):
    out, _ = three_dates
    ds = xr.open_zarr(out)
    bad = invalid_from_sources(SCENES / DESIGNED, SR) & invalid_from_sources(SCENES / L7, SR7) \
        & invalid_from_sources(SCENES / CLEAR, SR)
    codes = label_codes()
    cw = {int(k): v for k, v in ds.attrs["class_weights"]["by_code"].items()}
    valid = ds.inputs.sel(feature="valid").values > 0
    for n, (r, c) in enumerate(windows(ds)):
        expected = np.vectorize(lambda v: cw.get(int(v), 0.0))(codes[r:r + 16, c:c + 16])
        expected[bad[r:r + 16, c:c + 16]] = 0.0
        np.testing.assert_array_equal(ds.weights.values[n], expected.astype(np.float32))
        # the validity channel is the per-date mask decoded from each date's own files
    order = [DESIGNED, L7, CLEAR]
    for t, name in enumerate(order):
        inv = invalid_from_sources(SCENES / name, SR7 if name == L7 else SR)
        for n, (r, c) in enumerate(windows(ds)):
            np.testing.assert_array_equal(valid[n, t], ~inv[r:r + 16, c:c + 16])


def test_default_class_weights_come_from_training_pixels_and_are_capped(three_dates):
    out, _ = three_dates
    ds = xr.open_zarr(out)
    classes = ds.attrs["classes"]
    assert ds.attrs["class_weights"]["mode"] == "effective"
    train = np.array([c["pixels"]["train"] for c in classes], float)
    raw = (1 - 0.999) / (1 - 0.999 ** train)
    expected = np.minimum(raw * train.sum() / (raw * train).sum(), 10.0)
    np.testing.assert_allclose([c["weight"] for c in classes], expected, rtol=1e-6)
    lab = ds.labels.values[ds.split.values == 0]
    counted = np.bincount(lab[lab != 255].ravel(), minlength=len(classes))
    np.testing.assert_array_equal(counted, train)  # stride = size: unique pixels = stored pixels


@pytest.mark.parametrize("mode", ["balanced", "inverse_sqrt", "effective", "uniform"])
def test_class_weight_modes(mode):
    from landcover.classes import class_table
    from landcover.config import WeightsConfig
    from landcover.prepare import class_weights

    table = class_table([{"code": c} for c in (1, 2, 3, 4)])
    counts = np.array([9000, 900, 10, 0])  # class 4 has no training pixels
    w = class_weights(counts, table, WeightsConfig(mode=mode, cap=1e4))
    n = counts[:3].astype(float)
    raw = {"balanced": n.sum() / (3 * n), "inverse_sqrt": 1 / np.sqrt(n),
           "effective": (1 - 0.999) / (1 - 0.999 ** n), "uniform": np.ones(3)}[mode]
    if mode != "uniform":  # K counts the 3 classes with pixels; the mean pixel weight is 1
        raw = raw * n.sum() / (raw * n).sum()
        assert (w[:3] * n).sum() / n.sum() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(w[:3], raw, rtol=1e-5)
    assert w[3] == 1.0  # kept for its validation/test pixels; training removes it from the output
    assert w[0] < w[1] < w[2] or mode == "uniform"
    capped = class_weights(counts, table, WeightsConfig(mode="balanced", cap=10.0))
    assert capped.max() == 10.0


def test_manual_weights_and_cap(tmp_path, labels_tif):
    out = tmp_path / "m.zarr"
    run([SCENES / CLEAR], labels_tif, out, ["prepare.weights.mode=manual",
                                            "prepare.weights.manual={2: 3.5, 3: 50}",
                                            *table_of(labels_tif)])
    ds = xr.open_zarr(out)
    assert ds.attrs["class_weights"]["by_code"] == {"1": 1.0, "2": 3.5, "3": 10.0}
    assert set(np.unique(ds.weights.values)) <= {0.0, 1.0, 3.5, 10.0}


# ----------------------------------------------------------------------------------- splits
def _painted(ds):
    """Per grid pixel: the split whose windows label it (-1 none), and how many splits do."""
    H, W = ds.attrs["grid"]["height"], ds.attrs["grid"]["width"]
    s = ds.sizes["patch_y"]
    owner = np.full((H, W), -1)
    splits = np.zeros((3, H, W), bool)
    for r, c, lab, k in zip(ds.row.values, ds.col.values, ds.labels.values, ds.split.values):
        splits[k, r:r + s, c:c + s] |= lab != 255
    for k in range(3):
        owner[splits[k]] = k
    return owner, splits.sum(axis=0)


@pytest.mark.parametrize("stride", [16, 4])
def test_no_labelled_pixel_is_in_two_splits_and_none_is_lost(tmp_path, labels_tif, stride):
    from landcover.config import load_config as cfg_of
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    out = tmp_path / "ov.zarr"
    summary = run([SCENES / CLEAR], labels_tif, out, [f"prepare.patches.stride={stride}",
                                                      "prepare.split.fractions=[0.5,0.25,0.25]"])
    ds = xr.open_zarr(out)
    owner, n_splits = _painted(ds)
    assert len(set(ds.split.values.tolist())) == 3
    assert n_splits.max() == 1  # windows of two splits may share inputs, never a labelled pixel
    with rasterio.open(labels_tif) as src:
        codes = src.read(1)
    observed = stack_scenes(find_scenes([str(SCENES / CLEAR)]), cfg_of().scenes).valid.any(
        "time").values
    usable = (codes > 0) & observed
    assert (owner[usable] >= 0).all()  # every labelled, observed pixel is in a window of a split
    assert (owner[~usable] == -1).all()
    kept = summary["labels_kept"]
    assert kept["kept"] == usable.sum() and kept["unobserved"] == ((codes > 0) & ~observed).sum()
    per_split = summary["labelled_pixels_per_split"]
    assert sum(sum(v.values()) for v in per_split.values()) == usable.sum()  # unique pixels


def test_assign_groups_stratifies_every_class_and_keeps_fixed_groups():
    from landcover.splits import NONE, assign_groups

    rng = np.random.default_rng(0)
    counts = rng.integers(50, 200, (60, 3))
    counts[:, 2] = 0
    counts[[3, 17, 29, 41, 55], 2] = 20  # a rare class in five groups only
    split = assign_groups(counts, (0.6, 0.2, 0.2), 3)
    for k in range(3):
        assert counts[split == k, 2].sum() > 0  # the rare class reaches every split
    share = np.array([counts[split == k].sum() for k in range(3)]) / counts.sum()
    np.testing.assert_allclose(share, [0.6, 0.2, 0.2], atol=0.05)
    assert (assign_groups(counts, (0.6, 0.2, 0.2), 3) == split).all()
    fixed = assign_groups(counts, (0.8, 0.2, 0.0), 3, {0: 2, 1: 2, 2: NONE})
    assert fixed[0] == 2 and fixed[1] == 2 and fixed[2] == NONE
    assert set(fixed[3:].tolist()) == {0, 1}  # the fixed test split takes no random groups


def test_gap_leaves_a_buffer_between_splits():
    from landcover.grid import Grid
    from landcover.prepare import pixel_splits
    from landcover.splits import BlockGroups

    grid = Grid("EPSG:32633", (30.0, 0.0, 0.0, 0.0, -30.0, 0.0), 40, 40)
    groups = BlockGroups(20, 40)  # four blocks: 0 1 / 2 3
    lookup = (np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0]))
    plain = pixel_splits(groups, grid, 0, 0, 40, 40, lookup, 0)
    assert (plain[:20, 20:] == 1).all() and (plain[20:, :] == 0).all()
    gapped = pixel_splits(groups, grid, 0, 0, 40, 40, lookup, 2)
    assert (gapped[:20, 18:22] == -1).all() and (gapped[18:22, 20:] == -1).all()
    assert (gapped[:18, :18] == 0).all() and (gapped[:18, 22:] == 1).all()
    assert (gapped[22:, :] == 0).all()  # blocks of one split need no buffer between them
    assert (pixel_splits(groups, grid, 10, 10, 20, 20, lookup, 2) == gapped[10:30, 10:30]).all()


# ---------------------------------------------------------------------------- normalisation
def test_statistics_ignore_invalid_pixels_and_other_splits(tmp_path, labels_tif, scene_copy):
    base = tmp_path / "base.zarr"
    run([SCENES / DESIGNED], labels_tif, base)
    ds = xr.open_zarr(base)
    planted = scene_copy(DESIGNED)
    invalid = invalid_from_sources(planted, SR)
    with rasterio.open(next(planted.glob("*_QA_PIXEL.TIF"))) as src:
        cloudy = (src.read(1) & 0b11110) != 0  # dilated cloud, cirrus, cloud, shadow
    others = np.zeros(invalid.shape, bool)
    for (r, c), k in zip(windows(ds), ds.split.values):
        if k != 0:
            others[r:r + 16, c:c + 16] = True
    assert others.any() and cloudy.sum() > 1000
    for number in SR.values():
        path = next(planted.glob(f"*_SR_B{number}.TIF"))
        with rasterio.open(path, "r+") as dst:
            dn = dst.read(1)
            dn[cloudy] = 43000  # extreme but in range: only the QA masks it
            dn[others & ~invalid] = 40000   # validation pixels: not training data
            dst.write(dn, 1)
    moved = tmp_path / "planted.zarr"
    run([planted], labels_tif, moved)
    a, b = ds.attrs["normalisation"], xr.open_zarr(moved).attrs["normalisation"]
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-12)
    np.testing.assert_allclose(a["std"], b["std"], rtol=1e-12)
    assert a["count"] == b["count"]


def test_training_features_are_standardised_and_finite(three_dates):
    ds = xr.open_zarr(three_dates[0])
    x = ds.inputs.values
    assert np.isfinite(x).all()
    assert list(ds.feature.values) == ["blue", "green", "red", "nir", "swir1", "swir2", "valid",
                                       "doy_sin", "doy_cos"]
    train = x[ds.split.values == 0]
    v = train[..., 6] > 0
    np.testing.assert_allclose(train[..., :6][v].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(train[..., :6][v].std(axis=0), 1.0, atol=1e-4)
    assert (train[..., :6][~v] == 0).all()  # invalid observations are filled with the mean
    doy = np.array([161, 169, 193])  # 2023-06-10, 06-18, 07-12
    np.testing.assert_allclose(x[0, :, 0, 0, 7], np.sin(2 * np.pi * doy / 365.25), atol=1e-6)


def test_linear_fill_interpolates_in_time():
    from landcover.features import interpolate_time

    z = np.array([1.0, 99.0, 99.0, 4.0, 99.0], np.float32).reshape(1, 5, 1, 1, 1)
    valid = np.array([True, False, False, True, False]).reshape(1, 5, 1, 1)
    days = np.array([0, 10, 20, 30, 40])
    out = interpolate_time(z, valid, days).ravel()
    np.testing.assert_allclose(out, [1.0, 2.0, 3.0, 4.0, 4.0])
    none = interpolate_time(z, np.zeros_like(valid), days).ravel()
    assert (none == 0).all()
    first = np.array([False, False, True, True, True]).reshape(1, 5, 1, 1)
    np.testing.assert_allclose(interpolate_time(z, first, days).ravel()[:2], [99.0, 99.0])


# ---------------------------------------------------------------------------------- dataset
def test_the_dataset_is_self_describing_zarr(three_dates):
    out, summary = three_dates
    group = zarr.open_group(str(out), mode="r")
    n = summary["patches"]
    assert group["inputs"].shape == (n, 3, 16, 16, 9)
    assert group["labels"].dtype == np.uint8 and group["labels"].shape == (n, 16, 16)
    assert group["weights"].dtype == np.float32
    attrs = dict(group.attrs)
    for key in ("bands", "dates", "features", "normalisation", "classes", "class_weights",
                "scenes", "config", "versions", "splits", "grid"):
        assert key in attrs, key
    assert attrs["dates"] == ["2023-06-10", "2023-06-18", "2023-07-12"]
    assert attrs["config"]["prepare"]["patches"]["size"] == 16
    assert attrs["grid"]["crs"] == "EPSG:32633"
    start, stop = attrs["splits"]["validation"]
    assert (group["split"][start:stop] == 1).all()
    assert summary["unknown_codes"] == {"9": 16}
    assert (out / "splits.png").stat().st_size > 1000


def test_class_table_from_config_and_colours(tmp_path):
    codes = label_codes()
    tif = write_labels(tmp_path / "l.tif", codes, SCENES / CLEAR,
                       colormap={1: (255, 0, 0, 255), 2: (0, 255, 0, 255), 3: (0, 0, 255, 255)})
    out = tmp_path / "d.zarr"
    run([SCENES / CLEAR], tif, out)
    classes = xr.open_zarr(out).attrs["classes"]
    assert [(c["code"], c["color"]) for c in classes] == [(1, "#ff0000"), (2, "#00ff00"),
                                                          (3, "#0000ff"), (9, "#000000")]
    table = tmp_path / "classes.yaml"
    table.write_text("- {code: 3, name: water, color: '#0000ff'}\n- {code: 1, name: crop}\n")
    out2 = tmp_path / "d2.zarr"
    summary = run([SCENES / CLEAR], tif, out2, [f"prepare.classes={table}"])
    ds = xr.open_zarr(out2)
    assert [(c["index"], c["code"], c["name"]) for c in ds.attrs["classes"]] == \
        [(0, 1, "crop"), (1, 3, "water")]
    assert set(summary["unknown_codes"]) == {"2", "9"}
    assert set(np.unique(ds.labels.values)) <= {0, 1, 255}


def test_scenes_come_as_a_source_or_as_scene_objects_never_as_paths(tmp_path, labels_tif,
                                                                    three_dates, runner):
    """``three_dates`` came from a LocalScenes source; Scene objects (in any order) give the same
    dataset; paths are a TypeError before any work, and a wrong path a one-line CLI error."""
    from landcover.scenes import find_scenes

    cfg = load_config(None, [*SMALL, *table_of(labels_tif)])
    scenes = find_scenes([SCENES / DESIGNED, SCENES / L7, SCENES / CLEAR])
    out = tmp_path / "objects.zarr"
    prepare(scenes[::-1], str(labels_tif), out, cfg, progress=False)
    a, b = xr.open_zarr(three_dates[0]), xr.open_zarr(out)
    for name in ("inputs", "labels", "weights", "row", "col", "split", "time", "scene_id"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert {k: v for k, v in a.attrs.items() if k != "created"} == \
        {k: v for k, v in b.attrs.items() if k != "created"}
    with pytest.raises(TypeError, match="LocalScenes"):
        prepare([str(SCENES / CLEAR)], str(labels_tif), tmp_path / "paths.zarr", cfg)
    assert not (tmp_path / "paths.zarr").exists() and leftovers(tmp_path) == []
    result = runner.invoke(cli, ["prepare", str(tmp_path / "nope"), "--labels", str(labels_tif),
                                 "--out", str(tmp_path / "nope.zarr")])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: {tmp_path / 'nope'}: no such file or "
                                                  "folder"]


def test_local_cluster_gives_the_same_dataset_as_threads(tmp_path, labels_tif, three_dates):
    from landcover.scheduler import use_scheduler

    out = tmp_path / "dist.zarr"
    with use_scheduler("local:2"):
        run([SCENES / DESIGNED, SCENES / L7, SCENES / CLEAR], labels_tif, out,
            table_of(labels_tif))
    a, b = xr.open_zarr(three_dates[0]), xr.open_zarr(out)
    for name in ("inputs", "labels", "weights", "row", "col", "split"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.attrs["normalisation"] == b.attrs["normalisation"]


def test_tile_size_does_not_change_the_dataset(tmp_path, labels_tif, three_dates):
    out = tmp_path / "tiles.zarr"
    run([SCENES / DESIGNED, SCENES / L7, SCENES / CLEAR], labels_tif, out,
        ["prepare.patches.tile_size=16", *table_of(labels_tif)])
    a, b = xr.open_zarr(three_dates[0]), xr.open_zarr(out)
    for name in ("inputs", "labels", "weights"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


# ------------------------------------------------------------------------------- bad input
def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("case, message", [
    ("outside", "do not overlap the scenes"),
    ("no_column", "no column 'nope'"),
    ("empty_gpkg", "has no features"),
    ("all_cloud", "less than 5% valid observations"),
])
def test_bad_input_is_a_clear_error_and_leaves_nothing(tmp_path, runner, scene_copy, case,
                                                       message):
    import geopandas as gpd
    from shapely.geometry import box

    scene = SCENES / CLEAR
    extra = [*(f"--set={s}" for s in SMALL)]
    if case == "outside":
        labels = write_labels(tmp_path / "far.tif", label_codes(), scene, shift=(10_000, 0))
    elif case == "no_column":
        labels = tmp_path / "l.gpkg"
        g = grid_profile(scene)
        x0, y0 = g["transform"].c, g["transform"].f
        gpd.GeoDataFrame({"code": [1]}, geometry=[box(x0, y0 - 900, x0 + 900, y0)],
                         crs=g["crs"]).to_file(labels)
        extra.append("--set=prepare.labels.column=nope")
    elif case == "empty_gpkg":
        labels = tmp_path / "empty.gpkg"
        gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:32633").to_file(labels)
    else:
        scene = scene_copy(CLEAR)
        qa = next(scene.glob("*_QA_PIXEL.TIF"))
        with rasterio.open(qa, "r+") as dst:
            dst.write(np.full((dst.height, dst.width), 22280, np.uint16), 1)  # high-conf. cloud
        labels = write_labels(tmp_path / "l.tif", label_codes(), scene)
        extra = [s for s in extra if "min_date_valid" not in s]
    out = tmp_path / "out.zarr"
    result = runner.invoke(cli, ["prepare", str(scene), "--labels", str(labels), "--out",
                                 str(out), *extra])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_label_raster_in_another_crs_is_reprojected_with_a_warning(tmp_path, caplog):
    from rasterio.warp import Resampling, reproject

    codes = label_codes()
    native = write_labels(tmp_path / "native.tif", codes, SCENES / CLEAR)
    g = grid_profile(SCENES / CLEAR)
    dst_crs = "EPSG:3035"
    from rasterio.warp import calculate_default_transform

    tf, w, h = calculate_default_transform(g["crs"], dst_crs, g["width"], g["height"],
                                           *rasterio.transform.array_bounds(
                                               g["height"], g["width"], g["transform"]),
                                           resolution=10)
    moved = np.zeros((h, w), np.uint8)
    reproject(codes, moved, src_transform=g["transform"], src_crs=g["crs"], dst_transform=tf,
              dst_crs=dst_crs, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
    other = tmp_path / "laea.tif"
    with rasterio.open(other, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                       crs=dst_crs, transform=tf, nodata=0) as dst:
        dst.write(moved, 1)
    a = run([SCENES / CLEAR], native, tmp_path / "a.zarr")
    with caplog.at_level("WARNING", logger="landcover"):
        run([SCENES / CLEAR], other, tmp_path / "b.zarr")
    assert "reprojected onto the stack grid" in caplog.text
    la, lb = (xr.open_zarr(tmp_path / n).labels.values for n in ("a.zarr", "b.zarr"))
    both = (la != 255) & (lb != 255)
    assert (la[both] == lb[both]).mean() > 0.97 and both.sum() > 0.8 * (la != 255).sum()
    assert a["patches"] > 0


def test_existing_output_needs_overwrite(tmp_path, runner, labels_tif):
    out = tmp_path / "ds.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["prepare", str(SCENES / CLEAR), "--labels", str(labels_tif), "--out", str(out),
            *(f"--set={s}" for s in SMALL)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    result = runner.invoke(cli, ["-q", *args, "--overwrite", "--json"])
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and json.loads(result.stdout)["patches"] > 0


def test_bad_scheduler_and_config_are_usage_errors(tmp_path, runner, labels_tif):
    base = ["prepare", str(SCENES / CLEAR), "--labels", str(labels_tif), "--out",
            str(tmp_path / "x.zarr")]
    result = runner.invoke(cli, [*base, "--scheduler", "cluster"])
    assert result.exit_code == 2 and "--scheduler 'cluster'" in result.output
    result = runner.invoke(cli, [*base, "--set", "prepare.split.fractions=[0.5,0.6]"])
    assert result.exit_code == 2 and "prepare.split.fractions" in result.output
    result = runner.invoke(cli, [*base, "--set", "prepare.features.fill=spline"])
    assert result.exit_code == 2 and "prepare.features.fill" in result.output


def test_class_table_errors(tmp_path):
    from landcover.classes import class_table
    from landcover.errors import ClassTableError

    with pytest.raises(ClassTableError, match="empty"):
        class_table([])
    with pytest.raises(ClassTableError, match="0..254"):
        class_table([{"code": 255, "name": "x"}])
    with pytest.raises(ClassTableError, match="appears twice"):
        class_table([{"code": 1, "name": "a"}, {"code": 1, "name": "b"}])
    with pytest.raises(ClassTableError, match="color"):
        class_table([{"code": 1, "name": "a", "color": "red"}])
    table = class_table([{"code": 7, "name": "b"}, {"code": 2, "name": "a", "color": [1, 2, 3]}])
    assert table.codes == [2, 7] and table.colors[0] == "#010203"
    idx, unknown = table.to_indices(np.array([2, 7, 3, -1, 100_000]))
    assert idx.tolist() == [0, 1, 255, 255, 255] and unknown.tolist() == [0, 0, 1, 0, 1]


# --------------------------------------------------------------------------- vector rules
def test_overlap_rules_and_erosion(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from landcover.config import LabelsConfig
    from landcover.grid import Grid
    from landcover.labels import erode_codes, open_labels

    grid = Grid("EPSG:32633", (30.0, 0.0, 0.0, 0.0, -30.0, 300.0), 10, 10)
    big, small = box(0, 0, 300, 300), box(90, 90, 180, 180)  # small covers rows/cols 4..6
    path = tmp_path / "o.gpkg"
    gpd.GeoDataFrame({"code": [2, 1]}, geometry=[small, big], crs="EPSG:32633").to_file(path)
    get = {rule: open_labels(path, grid, LabelsConfig(overlap=rule)).codes(grid, 0, 0, 10, 10)
           for rule in ("ignore", "smallest", "first", "last")}
    inner = np.zeros((10, 10), bool)
    inner[4:7, 3:6] = True
    assert (get["smallest"][inner] == 2).all() and (get["smallest"][~inner] == 1).all()
    assert (get["ignore"][inner] == -1).all() and (get["ignore"][~inner] == 1).all()
    assert (get["first"][inner] == 2).all() and (get["last"][inner] == 1).all()
    eroded = erode_codes(get["smallest"], 1)
    assert eroded[5, 4] == 2 and (eroded[inner] == 2).sum() == 1
    assert eroded[0, 0] == -1 and eroded[2, 2] == 1  # borders of the grid and of classes drop


def test_string_class_column_and_name_lookup(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from landcover.classes import class_table
    from landcover.config import LabelsConfig
    from landcover.grid import Grid
    from landcover.labels import open_labels

    grid = Grid("EPSG:32633", (30.0, 0.0, 0.0, 0.0, -30.0, 300.0), 10, 10)
    path = tmp_path / "n.gpkg"
    gpd.GeoDataFrame({"landuse": ["water", "forest", "moon"]},
                     geometry=[box(0, 0, 90, 300), box(150, 0, 300, 300), box(90, 0, 150, 90)],
                     crs="EPSG:32633").to_file(path)
    derived = open_labels(path, grid, LabelsConfig(column="landuse"))
    assert derived.names == {1: "forest", 2: "moon", 3: "water"}
    table = class_table([{"code": 10, "name": "Water"}, {"code": 20, "name": "forest"}])
    named = open_labels(path, grid, LabelsConfig(column="landuse"), table)
    codes = named.codes(grid, 0, 0, 10, 10)
    assert codes[5, 0] == 10 and codes[5, 8] == 20 and codes[9, 4] == 100_000


def test_an_existing_cluster_by_address(tmp_path, labels_tif):
    from distributed import LocalCluster

    from landcover.scheduler import use_scheduler

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        with use_scheduler(cluster.scheduler_address):
            summary = run([SCENES / CLEAR], labels_tif, tmp_path / "tcp.zarr",
                          table_of(labels_tif))
    assert summary["patches"] > 0


def test_uint8_labels_without_nodata_on_the_grid_read_outside_as_unlabelled(tmp_path):
    """A uint8 label raster without a nodata value, on the grid's lattice but smaller: pixels
    outside it are unlabelled (-1), not an overflow."""
    import rasterio
    from affine import Affine

    from landcover.grid import Grid
    from landcover.labels import open_labels

    grid = Grid("EPSG:32632", (30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0), 20, 20)
    path = tmp_path / "labels.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=Affine(30.0, 0, 500150.0, 0, -30.0, 4999850.0)
                       ) as dst:
        dst.write(np.full((10, 10), 3, np.uint8), 1)
    codes = open_labels(path, grid).codes(grid, 0, 0, 20, 20)
    expected = np.full((20, 20), -1)
    expected[5:15, 5:15] = 3
    np.testing.assert_array_equal(codes, expected)
