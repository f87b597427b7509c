"""``landcover classify``: tiled inference, blending, the GeoTIFF, resume and bad input."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
rasterio = pytest.importorskip("rasterio")

from conftest import CLEAR, DESIGNED, MISALIGNED, SOUTH, one_line_error  # noqa: E402
from landcover import classify as lc  # noqa: E402
from landcover import lattice  # noqa: E402
from landcover.classify import blocks as block_tasks  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from landcover.config import load_config  # noqa: E402
from landcover.products import open_map  # noqa: E402
from landcover.errors import GridMismatchError, ModelError, ResumeError  # noqa: E402
from landcover.scheduler import use_scheduler  # noqa: E402
from landcover.runtime import auto_precision  # noqa: E402


def run(scenes, model, out, *sets, probabilities=False, **kw):
    meta, cfg = lc.resolve_config(model, None, list(sets))
    return lc.classify(lc.model_scenes(scenes, meta, cfg), model, out, cfg, meta=meta,
                       probabilities=probabilities, progress=False, **kw)


def read(path, band=None):
    with rasterio.open(path) as src:
        return src.read(band) if band else src.read()


@pytest.fixture(scope="module")
def reference(field_series, field_bundle, tmp_path_factory):
    """The field series classified in 64 px blocks, with probabilities."""
    folder = tmp_path_factory.mktemp("classified")
    summary = run(field_series[0], field_bundle, folder / "map.tif",
                  "classify.block_size=64", probabilities=True)
    return folder / "map.tif", summary


# ----------------------------------------------------------------------------------- the lattice
@pytest.mark.parametrize("window,overlap,blend", [(16, 8, 8), (16, 5, 5), (16, 0, 0), (15, 7, 7),
                                                  (30, 10, 10), (40, 16, 0), (40, 16, 6),
                                                  (41, 15, 4), (256, 16, 0)])
def test_blending_weights_are_a_partition_of_unity(window, overlap, blend):
    n = 297
    total = np.zeros((n, n))
    count = np.zeros((n, n), int)
    weights = lattice.taper(window, overlap, blend)
    for y in lattice.window_origins(n, window, overlap):
        for x in lattice.window_origins(n, window, overlap):
            ya, yb, xa, xb = max(y, 0), min(y + window, n), max(x, 0), min(x + window, n)
            if ya < yb and xa < xb:
                part = weights[ya - y:yb - y, xa - x:xb - x]
                total[ya:yb, xa:xb] += part
                count[ya:yb, xa:xb] += part > 0
    # every pixel is covered, and the weights of the windows that overlap sum to exactly 1
    # (results are divided by the sum anyway, which matters only within the ramps at the edges)
    assert total.min() > 0.2  # a corner pixel: in the middle of both ramps of one window
    inner = slice(overlap, n - overlap)
    np.testing.assert_allclose(total[inner, inner], 1.0, atol=1e-6)
    assert weights.min() >= 0 and weights.max() <= 1.0
    if blend == 0:  # each pixel from exactly one window: the one where it lies furthest inside
        assert (count == 1).all() and set(np.unique(weights)) <= {0.0, 1.0}
        assert weights.sum() == (window - overlap) ** 2
    else:  # falls off towards the edges
        c = window // 2
        first, end = lattice.support(window, overlap, blend)
        assert weights[first, c] < weights[first + blend // 2, c] < weights[c, c] <= 1.0
        assert end - first == window - overlap + blend


def test_window_origins_keep_each_pixel_once_and_see_context_around_it():
    origins = lattice.window_origins(100, 24, 8)  # stride 16: kept pixels [16 k, 16 k + 16)
    assert origins.tolist() == [-4, 12, 28, 44, 60, 76, 92]
    assert origins[-1] + 4 + 16 >= 100 > origins[-2] + 4 + 16
    assert lattice.window_origins(1, 16, 8).tolist() == [-4]
    assert lattice.window_origins(256, 256, 0).tolist() == [0]
    assert lattice.support(24, 8, 0) == (4, 20) and lattice.support(24, 8, 8) == (0, 24)


def test_default_tiling_predicts_each_pixel_at_most_1_3_times():
    from landcover.config import ClassifyConfig
    from landcover.grid import Grid

    grid = Grid("EPSG:32632", (30.0, 0.0, 0.0, 0.0, -30.0, 0.0), 2048, 2048)
    t = lc.tiling(ClassifyConfig(), grid, 30, 12)
    assert (t["window"] / (t["window"] - t["overlap"])) ** 2 <= 1.3
    assert t["block"] % (t["window"] - t["overlap"]) == 0 and t["blend"] == 0
    assert t["batch_size"] * t["window"] ** 2 <= lc.plan.BATCH_PIXELS["cpu"]
    small = lc.tiling(ClassifyConfig(), Grid("EPSG:32632", (30.0, 0, 0, 0, -30.0, 0), 90, 60),
                      30, 12)
    assert small["window"] == 90 + small["overlap"]  # one window covers a small grid
    longer = lc.tiling(ClassifyConfig(), grid, 30, 48)  # blocks shrink as series grow
    assert longer["block"] ** 2 * 48 <= t["block"] ** 2 * 12 * 1.1
    # a network normalising over its window (norm: group) keeps the patch size, blended
    group = lc.tiling(ClassifyConfig(), grid, 30, 12, window_statistics=True)
    assert (group["window"], group["overlap"], group["blend"]) == (30, 15, 15)


def test_reflect_index():
    idx = np.arange(-3, 8)
    assert lattice.reflect_index(idx, 5).tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    assert lattice.reflect_index(np.arange(-20, 20), 3).min() == 0
    assert lattice.reflect_index(np.arange(-20, 20), 3).max() == 2


# --------------------------------------------------------------------------------- the inputs
def test_inputs_are_built_exactly_as_in_training(field_series, field_dataset, field_bundle,
                                                  tmp_path):
    """The features classify builds for a training window equal the stored training inputs."""
    from landcover.dataset import open_dataset

    ds = open_dataset(field_dataset)
    meta, cfg = lc.resolve_config(field_bundle)
    scenes = lc.model_scenes(field_series[0], meta, cfg)
    plan, kept, _ = lc.build_plan(scenes, field_bundle, cfg, meta, tmp_path / "store")
    stored = ds.read(0, 6)[0]
    rows, cols = ds.group["row"][:6], ds.group["col"][:6]
    s = ds.input_shape[1]
    for k in range(6):
        feats, _ = plan_features(plan, rows[k], cols[k], s)
        np.testing.assert_allclose(feats, stored[k], rtol=0, atol=1e-6)
    assert [d.isoformat() for d, _ in kept] == meta["dates"]


def test_window_features_equal_the_reflected_area(field_series, field_bundle, tmp_path):
    """A window's features, built from the block's rasters when the window is predicted, equal
    the same pixels of the whole area's features, also where the window reaches outside the grid
    (reflected) and where it lies inside."""
    meta, cfg = lc.resolve_config(field_bundle)
    plan, _, _ = lc.build_plan(lc.model_scenes(field_series[0], meta, cfg), field_bundle, cfg,
                               meta, tmp_path / "store")
    H, W = plan.grid.height, plan.grid.width
    rows, cols = np.arange(-9, H + 7), np.arange(-5, W + 11)
    data = lc.BlockData(plan, rows, cols)
    whole, whole_valid = data.features(0, 0, len(rows), len(cols))
    ry, rx = lattice.reflect_index(rows, H), lattice.reflect_index(cols, W)
    assert whole.shape[1:3] == (len(rows), len(cols))
    # the reflected margin repeats the grid's pixels: row -k is row k
    np.testing.assert_array_equal(whole[:, 9 - 3], whole[:, 9 + 3])
    np.testing.assert_array_equal(data.any_valid, whole_valid.any(axis=0))
    s = 20
    for a, b in [(0, 0), (len(rows) - s, len(cols) - s), (5, len(cols) - s - 2), (30, 40)]:
        out = np.full((len(plan.dates), s, s, whole.shape[-1]), np.nan, np.float32)
        feats, valid = data.features(a, b, s, s, out=out)
        assert feats is out
        np.testing.assert_array_equal(out, whole[:, a:a + s, b:b + s])
        np.testing.assert_array_equal(valid, whole_valid[:, a:a + s, b:b + s])
    assert ry.min() == 0 and rx.max() == W - 1


@pytest.mark.parametrize("fill", ["zero", "linear"])
def test_block_data_equals_the_training_reads(scenes_dir, fill):
    """BlockData keeps digital numbers for one-scene dates and mosaics the others; its features
    equal those of the training reads (read_date_block, then features_by_date) bit for bit, with
    a mosaicked date, a reprojected scene and scenes that miss part of the box."""
    from types import SimpleNamespace

    from landcover.config import ScenesConfig
    from landcover.features import FeatureSpec, features_by_date
    from landcover.scenes import find_scenes
    from landcover.stack import date_groups, read_date_block, stack_grid


    scenes = find_scenes([scenes_dir / n for n in (DESIGNED, CLEAR, SOUTH, MISALIGNED)])
    cfg = ScenesConfig()
    bands = tuple(cfg.bands)
    grid = stack_grid(scenes, cfg, bands)
    groups = date_groups(scenes)
    assert any(len(g) > 1 for _, g in groups)  # a mosaicked date
    spec = FeatureSpec(bands, tuple(0.1 + 0.01 * i for i in range(6)),
                       tuple(0.05 + 0.01 * i for i in range(6)), fill, True)
    plan = SimpleNamespace(grid=grid, features=spec, mask=cfg.mask,
                           groups=tuple(g for _, g in groups), dates=tuple(d for d, _ in groups))
    data = lc.BlockData(plan, np.arange(40, grid.height), np.arange(0, grid.width))
    kinds = {type(values).__name__ if values is None else values.dtype.name
             for _, values, _ in data.dates}
    assert {"uint16", "float32"} <= kinds  # digital numbers, and a mosaic's reflectance
    got, got_valid = data.features(0, 0, grid.height - 40, grid.width)

    def read_date(t):
        layers = read_date_block(plan.groups[t], bands, grid, cfg.mask, 40, 0,
                                 grid.height - 40, grid.width)[0]
        return np.moveaxis(layers[:-1], 0, -1), layers[-1] > 0.5

    want, want_valid = features_by_date(read_date, spec, plan.dates)
    np.testing.assert_array_equal(got_valid, want_valid)
    np.testing.assert_array_equal(got, want)
    assert got_valid.any() and not got_valid.all()


def plan_features(plan, row, col, s):
    return lc.read_features(plan, np.arange(row, row + s), np.arange(col, col + s))


# --------------------------------------------------------------------------------- the GeoTIFF
def test_map_is_a_georeferenced_cog_with_colours_names_and_tags(reference, field_series,
                                                                 field_bundle):
    from landcover.bundle import read_metadata
    from landcover.scenes import find_scenes
    from landcover.stack import grid_of, stack_scenes

    path, summary = reference
    meta = read_metadata(field_bundle)
    grid = grid_of(stack_scenes(find_scenes([str(s) for s in field_series[0]])))
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32632 or src.crs.to_wkt()
        assert src.crs == rasterio.crs.CRS.from_user_input(grid.crs)
        assert tuple(src.transform)[:6] == tuple(grid.affine)[:6]
        assert (src.width, src.height) == (grid.width, grid.height)
        assert src.dtypes == ("uint8",) and src.nodata == 255 and src.count == 1
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert src.overviews(1), "internal overviews"
        cmap = src.colormap(1)
        for c in meta["classes"]:
            rgb = tuple(int(c["color"][i:i + 2], 16) for i in (1, 3, 5))
            assert cmap[c["code"]] == (*rgb, 255)
            assert src.tags(1)[f"CLASS_{c['code']}"] == c["name"]
        assert 255 not in cmap or cmap[255][3] == 0  # nodata transparent (or beyond the table)
        assert src.descriptions == ("land cover class",)
        tags = src.tags()
        assert tags["LANDCOVER_MODEL_HASH"] == meta["content_hash"]
        assert json.loads(tags["LANDCOVER_DATES"]) == meta["dates"]
        config = json.loads(tags["LANDCOVER_CONFIG"])
        assert config["classify"]["block_size"] == 64 and config["classify"]["window"] == summary["window"]
        codes = src.read(1)
        # overview: nearest resampling keeps class codes (no averaged, non-existent codes)
        ov = src.read(1, out_shape=(src.height // 2, src.width // 2))
    allowed = {c["code"] for c in meta["classes"]} | {255}
    assert set(np.unique(codes)) <= allowed and set(np.unique(ov)) <= allowed
    assert open_map(path).table.codes == [c["code"] for c in meta["classes"]]
    assert summary["classified_pixels"] == int((codes != 255).sum())


def test_map_learns_the_fields(reference, field_series):
    """The map agrees with the field labels about as well as the model scored in training."""
    path, _ = reference
    codes = read(path, 1)
    with rasterio.open(field_series[1]) as src:
        truth = src.read(1)
    ok = truth != 0
    assert len(np.unique(codes)) >= 2
    agreement = (codes[ok] == truth[ok]).mean()
    assert agreement > 0.8, agreement


def test_qml_style_lists_every_class(reference, field_bundle):
    from landcover.bundle import read_metadata

    path, summary = reference
    style = Path(summary["files"]["style"])
    assert style == path.with_suffix(".qml")
    root = ET.parse(style).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = {int(e.get("value")): (e.get("label"), e.get("color"))
               for e in renderer.iter("paletteEntry")}
    meta = read_metadata(field_bundle)
    assert entries == {c["code"]: (c["name"], c["color"].lower()) for c in meta["classes"]}


def test_quicklook_png(reference):
    _, summary = reference
    png = Path(summary["files"]["quicklook"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[0] > 100


def test_probabilities_and_uncertainty(reference):
    path, summary = reference
    probs = Path(summary["files"]["probabilities"])
    codes = read(path, 1)
    with rasterio.open(probs) as src:
        data = src.read()
        K = src.count - 1
        assert src.dtypes[0] == "uint8" and src.nodata == 255
        assert src.scales[0] == pytest.approx(1 / 250)
        assert src.descriptions[-1].startswith("uncertainty")
        assert src.descriptions[0].startswith("p(")
        assert src.overviews(1)
    nodata = codes == 255
    assert (data[:, nodata] == 255).all()
    p = data[:K, ~nodata].astype(int)
    assert np.abs(p.sum(axis=0) - 250).max() <= K  # rounding of each band
    assert data[K, ~nodata].max() <= 250
    table = open_map(path).table
    top = np.asarray(table.codes)[p.argmax(axis=0)]
    # the map is the argmax of the unrounded probabilities: equal except near-ties
    assert (top == codes[~nodata]).mean() > 0.995


# ------------------------------------------------------------------------- blocks and schedulers
def test_block_size_does_not_change_the_result_and_has_no_seams(reference, field_series,
                                                                field_bundle, tmp_path):
    path64, _ = reference
    s96 = run(field_series[0], field_bundle, tmp_path / "b96.tif", "classify.block_size=96",
              probabilities=True)
    s192 = run(field_series[0], field_bundle, tmp_path / "b192.tif", "classify.block_size=192")
    assert (s96["blocks"], s192["blocks"]) == (4, 1)
    a, b, c = read(path64, 1), read(tmp_path / "b96.tif", 1), read(tmp_path / "b192.tif", 1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    pa = read(Path(str(path64).replace(".tif", "_probabilities.tif")))
    pb = read(tmp_path / "b96_probabilities.tif")
    np.testing.assert_array_equal(pa, pb)
    # seams: rows/cols on both sides of the 64 px block edges agree with the one-block run
    for edge in (63, 64, 127, 128):
        np.testing.assert_array_equal(a[edge], c[edge])
        np.testing.assert_array_equal(a[:, edge], c[:, edge])


@pytest.mark.parametrize("blend", [0, 8])
def test_many_windows_give_the_same_result_in_any_blocks(reference, field_series, field_bundle,
                                                         tmp_path, blend):
    """48 px windows overlapping by 16 (a 6 x 6 lattice on the 192 px grid): 64 px blocks and one
    192 px block give the same probabilities bit for bit, with and without blended seams; without
    blending no window is predicted twice; and the map is nearly that of one window on the whole
    grid (8 px of context suffice for this model)."""
    sets = ["classify.window=48", "classify.overlap=16", f"classify.blend={blend}"]
    small = run(field_series[0], field_bundle, tmp_path / "s.tif", *sets,
                "classify.block_size=64", probabilities=True)
    whole = run(field_series[0], field_bundle, tmp_path / "w.tif", *sets,
                "classify.block_size=192", probabilities=True)
    assert (small["blocks"], whole["blocks"], whole["windows"]) == (9, 1, 36)
    np.testing.assert_array_equal(read(tmp_path / "s_probabilities.tif"),
                                  read(tmp_path / "w_probabilities.tif"))
    if blend == 0:
        assert small["windows"] == 36 and small["predictions_per_pixel"] == 2.25
    else:
        assert small["windows"] > 36  # windows at block edges are predicted for both blocks
    one = read(reference[0], 1)
    assert (read(tmp_path / "s.tif", 1) == one).mean() > 0.99


def test_default_tiling_and_mixed_precision(reference, field_series, field_bundle, tmp_path):
    """The defaults predict each pixel about once on a grid one window covers; bfloat16 mixed
    precision changes at most 0.5 % of the map."""
    summary = run(field_series[0], field_bundle, tmp_path / "d.tif")
    assert summary["windows"] == 1 and summary["window"] == 192 + 16
    assert summary["predictions_per_pixel"] < 1.3 and summary["blend"] == 0
    np.testing.assert_array_equal(read(tmp_path / "d.tif", 1), read(reference[0], 1))
    assert summary["precision"] == auto_precision()  # classify.precision: auto
    maps = {}
    for precision in ("float32", "bfloat16"):
        done = run(field_series[0], field_bundle, tmp_path / f"{precision}.tif",
                   f"classify.precision={precision}")
        assert done["precision"] == precision
        maps[precision] = read(tmp_path / f"{precision}.tif", 1)
    assert (maps["bfloat16"] != maps["float32"]).mean() <= 0.005


# classify.precision: auto by measurement: tests/test_precision.py


def test_features_made_inside_the_network_give_the_same_map(reference, field_series,
                                                              field_bundle, tmp_path):
    """classify.features_on=model (auto's choice here) sends the digital numbers and validity
    and the network makes the features (keras.ops, the host's float32 operations in the same
    order): the same probabilities as features made on the host, bit for bit, over blocks and
    edges (reflection)."""
    assert reference[1]["features_on"] == "model"  # auto, for a network with fill: zero
    done = run(field_series[0], field_bundle, tmp_path / "h.tif", "classify.block_size=64",
               "classify.features_on=host", probabilities=True)
    assert done["windows"] == reference[1]["windows"] and done["features_on"] == "host"
    np.testing.assert_array_equal(read(tmp_path / "h_probabilities.tif"),
                                  read(reference[0].with_name("map_probabilities.tif")))
    np.testing.assert_array_equal(read(tmp_path / "h.tif"), read(reference[0]))
    with rasterio.open(tmp_path / "h.tif") as src:
        assert json.loads(src.tags()["LANDCOVER_CONFIG"])["classify"]["features_on"] == "host"
    with rasterio.open(reference[0]) as src:
        assert json.loads(src.tags()["LANDCOVER_CONFIG"])["classify"]["features_on"] == "model"


def test_features_inside_the_network_only_where_it_can_make_them(field_bundle):
    """classify.features_on=model where the network cannot make the features is a usage error
    naming the key and why; auto makes them on the host there, in the network elsewhere."""
    from dataclasses import replace

    from landcover.classify.plan import features_on
    from landcover.errors import ConfigError

    meta = lc.resolve_config(field_bundle)[0]
    linear = replace(meta, input=replace(meta.input, fill="linear"))
    with pytest.raises(ConfigError, match=r"classify.features_on: model .*fill: linear; use "):
        features_on("model", linear, [(1,)])
    with pytest.raises(ConfigError, match=r"but a date is a mosaic of several scenes"):
        features_on("model", meta, [(1,), (2, 3)])
    assert features_on("host", meta, [(1,)]) == "host"
    assert features_on("model", meta, [(1,)]) == "model"
    assert features_on("auto", meta, [(1,)]) == "model"
    assert features_on("auto", meta, [(1,), (2, 3)]) == "host"  # a mosaic: on the host
    assert features_on("auto", linear, [(1,)]) == "host"


@dataclass(frozen=True)
class BoxMean:
    """A neighbourhood post-processing step: the mean of the probabilities over (2r+1)^2 pixels
    (clipped at the array's edges). ``halo`` is what it declares it needs."""

    radius: int
    halo: int
    name: str = "box_mean"

    def apply(self, prob, observed):
        r = self.radius
        h, w, _ = prob.shape
        sat = np.pad(prob.astype(np.float64), ((1, 0), (1, 0), (0, 0))).cumsum(0).cumsum(1)
        y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
        x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
        total = (sat[y1][:, x1] - sat[y0][:, x1] - sat[y1][:, x0] + sat[y0][:, x0])
        return (total / total.sum(axis=-1, keepdims=True)).astype(np.float32)


def test_post_processing_sees_a_halo_so_blocks_leave_no_seams(reference, field_series,
                                                              field_bundle, tmp_path):
    def probs(name, block, step):
        run(field_series[0], field_bundle, tmp_path / f"{name}.tif", f"classify.block_size={block}",
            probabilities=True, post=[step])
        return read(tmp_path / f"{name}_probabilities.tif")

    whole = probs("whole", 192, BoxMean(3, halo=3))
    blocks = probs("blocks", 96, BoxMean(3, halo=3))
    np.testing.assert_array_equal(whole, blocks)  # the halo makes blocks invisible
    assert (whole != read(Path(str(reference[0]).replace(".tif", "_probabilities.tif")))).any()
    # a step that needs context but declares none shows the block edges (row/col 96)
    leaky = probs("leaky", 96, BoxMean(3, halo=0))
    rows, cols = np.nonzero((leaky != whole).any(axis=0))
    near_edge = (np.abs(rows - 95.5) < 3) | (np.abs(cols - 95.5) < 3)
    assert rows.size and near_edge.all()
    with pytest.raises(TypeError, match="post-processing step"):
        run(field_series[0], field_bundle, tmp_path / "bad.tif", post=["smooth"])


@pytest.mark.slow  # a local dask cluster: about 20 s on 2 cores
def test_local_cluster_gives_the_same_map_as_threads(reference, field_series, field_bundle,
                                                     tmp_path):
    pytest.importorskip("distributed")
    with use_scheduler("local:2"):
        run(field_series[0], field_bundle, tmp_path / "cluster.tif", "classify.block_size=64",
            probabilities=True)
    np.testing.assert_array_equal(read(reference[0]), read(tmp_path / "cluster.tif"))
    np.testing.assert_array_equal(
        read(Path(str(reference[0]).replace(".tif", "_probabilities.tif"))),
        read(tmp_path / "cluster_probabilities.tif"))


def test_interrupted_run_leaves_no_output_and_resumes(reference, field_series, field_bundle,
                                                      tmp_path, monkeypatch):
    out = tmp_path / "map.tif"
    real = lc.predict_windows
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(block_tasks, "predict_windows", failing)  # where the block tasks call it
    with use_scheduler("synchronous"), pytest.raises(KeyboardInterrupt):
        run(field_series[0], field_bundle, out, "classify.block_size=64")
    assert not out.exists() and not out.with_suffix(".qml").exists()
    partial = lc.partial_path(out)
    done = len(list((partial / "done").glob("*.json")))
    assert 1 <= done < 9
    monkeypatch.setattr(block_tasks, "predict_windows", real)
    with pytest.raises(ResumeError, match="other settings"):
        run(field_series[0], field_bundle, out, "classify.block_size=96", resume=True)
    summary = run(field_series[0], field_bundle, out, "classify.block_size=64", resume=True)
    assert summary["blocks_resumed"] == done
    assert not partial.exists()
    np.testing.assert_array_equal(read(out), read(reference[0]))


def test_pixels_without_any_valid_observation_are_nodata(field_series, field_bundle, tmp_path):
    """A corner with fill on every date, and a cloud on one date: nodata exactly where no date is
    valid (as decoded by the stack), classes elsewhere."""
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    scenes = []
    for src in field_series[0]:
        dst = tmp_path / "scenes" / src.name
        shutil.copytree(src, dst)
        for tif in dst.glob("*_SR_B*.TIF"):
            with rasterio.open(tif, "r+") as ds:
                band = ds.read(1)
                band[:40, :30] = 0
                ds.write(band, 1)
        scenes.append(dst)
    summary = run(scenes, field_bundle, tmp_path / "map.tif", "classify.block_size=64",
                  "classify.window=16", "classify.overlap=8")
    codes = read(tmp_path / "map.tif", 1)
    stack = stack_scenes(find_scenes([str(s) for s in scenes]))
    observed = stack.valid.any("time").values
    assert not observed[:40, :30].any()
    np.testing.assert_array_equal(codes == 255, ~observed)
    assert summary["nodata_pixels"] == int((~observed).sum())
    assert summary["windows_skipped"] >= 1  # windows wholly inside the corner


# -------------------------------------------------------------------------------------- the CLI
def test_cli_classify(runner, field_series, field_bundle, tmp_path):
    out = tmp_path / "cli.tif"
    args = ["classify", *map(str, field_series[0]), "--model", str(field_bundle), "--out",
            str(out), "--set", "classify.block_size=96"]
    result = runner.invoke(cli, ["-q", *args])
    assert result.exit_code == 0, result.output
    assert "Classified area:" in result.output and out.exists()
    assert out.with_suffix(".qml").exists() and (tmp_path / "cli_quicklook.png").exists()
    before = out.stat().st_mtime_ns
    again = runner.invoke(cli, ["-q", *args])
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output
    assert out.stat().st_mtime_ns == before
    js = runner.invoke(cli, ["-q", *args, "--overwrite", "--json"])
    assert js.exit_code == 0 and json.loads(js.output)["blocks"] == 4


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def _bad(runner, args, code, *fragments, folder):
    before = _listing(folder)
    one_line_error(runner.invoke(cli, ["-q", "classify", *args]), code, *fragments)
    assert _listing(folder) == before, "nothing written"


def test_bad_input_is_one_line_and_writes_nothing(runner, field_series, field_bundle, tmp_path):
    scenes = [str(s) for s in field_series[0]]
    out = tmp_path / "map.tif"
    # an output folder that does not exist
    _bad(runner, [*scenes, "--model", str(field_bundle), "--out", str(tmp_path / "no" / "m.tif")],
         1, "does not exist", folder=tmp_path)
    # not a GeoTIFF name
    _bad(runner, [*scenes, "--model", str(field_bundle), "--out", str(tmp_path / "m.png")],
         2, "--out", folder=tmp_path)
    # a missing bundle / a tampered bundle / a corrupt model file
    _bad(runner, [*scenes, "--model", str(tmp_path / "nothing"), "--out", str(out)], 1,
         "no such model bundle", folder=tmp_path)
    tampered = tmp_path / "tampered"
    shutil.copytree(field_bundle, tampered)
    meta = json.loads((tampered / "bundle.json").read_text())
    meta["normalisation"]["mean"][0] += 0.01
    (tampered / "bundle.json").write_text(json.dumps(meta))
    _bad(runner, [*scenes, "--model", str(tampered), "--out", str(out)], 1, "content hash",
         folder=tmp_path)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(field_bundle, corrupt)
    from landcover.bundle import read_metadata, write_metadata

    data = (corrupt / "model.keras").read_bytes()
    (corrupt / "model.keras").write_bytes(data[:len(data) // 2])
    write_metadata(corrupt, {k: v for k, v in read_metadata(corrupt, verify=False).items()
                             if k not in ("content_hash", "landcover_model")})
    _bad(runner, [*scenes, "--model", str(corrupt), "--out", str(out)], 1,
         "not a complete .keras archive", folder=tmp_path)
    # --resume with nothing to resume
    _bad(runner, [*scenes, "--model", str(field_bundle), "--out", str(out), "--resume"], 1,
         "nothing to resume", folder=tmp_path)
    # a bad classify key
    _bad(runner, [*scenes, "--model", str(field_bundle), "--out", str(out), "--set",
                  "classify.window=64", "--set", "classify.overlap=99"], 2, "classify.overlap",
         folder=tmp_path)
    _bad(runner, [*scenes, "--model", str(field_bundle), "--out", str(out), "--set",
                  "classify.overlap=8", "--set", "classify.blend=9"], 2, "classify.blend",
         folder=tmp_path)


def test_bundle_from_another_band_set(runner, field_series, field_bundle, tmp_path):
    """A model trained on bands the scenes do not have (here: thermal) is refused by name."""
    from landcover.bundle import read_metadata, write_metadata

    other = tmp_path / "thermal_model"
    shutil.copytree(field_bundle, other)
    meta = read_metadata(other)
    inp = meta["input"]
    inp["bands"] = inp["bands"] + ["thermal"]
    inp["features"] = inp["bands"] + inp["features"][len(inp["bands"]) - 1:]
    for key in ("mean", "std"):
        meta["normalisation"][key] = meta["normalisation"][key] + [1.0]
    write_metadata(other, {k: v for k, v in meta.items()
                           if k not in ("content_hash", "landcover_model")})
    (tmp_path / "out").mkdir()
    _bad(runner, [*map(str, field_series[0]), "--model", str(other), "--out",
                  str(tmp_path / "out" / "map.tif")], 1, "trained on bands", "thermal",
         folder=tmp_path / "out")


def test_scenes_on_no_common_grid(field_series, field_bundle, tmp_path):
    """Scenes on another lattice with scenes.grid.align=false: a clear error before any work."""
    from landcover.errors import LandcoverError

    moved = tmp_path / "moved" / field_series[0][1].name
    shutil.copytree(field_series[0][1], moved)
    for tif in moved.glob("*.TIF"):
        with rasterio.open(tif, "r+") as ds:
            t = ds.transform
            ds.transform = rasterio.Affine(t.a, t.b, t.c + 15, t.d, t.e, t.f)  # half a pixel
    (tmp_path / "out").mkdir()
    scenes = [field_series[0][0], moved]
    with pytest.raises(GridMismatchError, match="grid"):
        run(scenes, field_bundle, tmp_path / "out" / "map.tif", "scenes.grid.align=false")
    assert _listing(tmp_path / "out") == []
    assert issubclass(GridMismatchError, LandcoverError)


@pytest.mark.slow  # 5.5 s of the default run's 6 min on 2 cores
def test_fixed_date_model_needs_its_number_of_dates(field_series, field_dataset, tmp_path):
    from landcover.train import train

    model = tmp_path / "unet"
    train(field_dataset, model, load_config(None, ["train.model.architecture=unet",
                                                   "train.model.filters=4", "train.epochs=1",
                                                   "train.model.layers=1",
                                                   "train.min_epoch_steps=0",
                                                   "train.baseline=none"]), progress=False)
    with pytest.raises(ModelError, match="exactly 4 dates"):
        run(field_series[0][:3], model, tmp_path / "map.tif")


def test_a_larger_window_rebuilds_the_network_with_the_same_weights(reference, field_series,
                                                                   field_bundle, tmp_path):
    """classify.window=32 on a model trained on 16 px patches: same weights, wider input; the map
    stays close to the patch-size map (ConvLSTM is fully convolutional)."""
    summary = run(field_series[0], field_bundle, tmp_path / "w32.tif", "classify.window=32",
                  "classify.block_size=96")
    assert (summary["window"], summary["overlap"]) == (32, 16)
    a, b = read(reference[0], 1), read(tmp_path / "w32.tif", 1)
    assert (a == b).mean() > 0.95
    model = lc.load_model(field_bundle, 32)
    assert model.input_shape[2:4] == (32, 32)


@pytest.mark.slow  # 4.6 s of the default run's 6 min on 2 cores
def test_the_bundle_carries_a_user_profile_that_is_gone(field_series, tmp_path):
    """Trained through a profile YAML of the user's own; the YAML is then deleted: classify reads
    the same layout from the profile recorded in the bundle, without --config."""
    from landcover.prepare import prepare
    from landcover.profiles import config_dir
    from landcover.scenes import LocalScenes
    from landcover.train import train

    scenes, labels, classes = field_series
    own = tmp_path / "my_layout.yaml"
    own.write_text((config_dir() / "profiles" / "landsat_c2l2.yaml").read_text()
                   .replace("name: landsat_c2l2", "name: my_layout"))
    settings = [f"scenes.profile={own}", "prepare.patches.size=16", "prepare.patches.stride=16",
                "prepare.split.block_size=48", f"prepare.classes={classes}"]
    cfg = load_config(None, settings)
    prepare(LocalScenes(tuple(str(s) for s in scenes), cfg.scenes.profile), str(labels),
            tmp_path / "ds.zarr", cfg, progress=False)
    model = tmp_path / "model"
    train(tmp_path / "ds.zarr", model, load_config(None, ["train.model.filters=4",
          "train.model.layers=1", "train.epochs=1", "train.min_epoch_steps=0",
          "train.model.architecture=convlstm",
          "train.baseline=none"]), progress=False)
    meta = json.loads((model / "bundle.json").read_text())
    assert [p["name"] for p in meta["profiles"]] == ["my_layout"]
    own.unlink()
    summary = run(scenes, model, tmp_path / "map.tif")
    assert (tmp_path / "map.tif").exists() and summary
