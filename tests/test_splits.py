"""Split groups of ``landcover prepare``: fields, fixed assignments, split rasters, kept labels,
stratification, gaps and bad split settings, checked pixel by pixel on the grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from rasterio.features import rasterize

from conftest import CLEAR, SCENES
from landcover.cli.main import cli
from landcover.config import load_config
from landcover.errors import ConfigError, LabelError
from landcover.prepare import prepare
from landcover.scenes import LocalScenes
from test_prepare import SMALL, _painted, grid_profile, leftovers, run, write_labels

SCENE = SCENES / CLEAR  # 64 x 64 px; columns 0..3 are fill (never observed), the rest is clear
SPLITS = ("train", "validation", "test")
CLASSES = "- {code: 1, name: crop}\n- {code: 2, name: forest}\n- {code: 3, name: rare}\n"


# ---------------------------------------------------------------------------------- helpers
def pixel_box(r0: int, c0: int, r1: int, c1: int):
    """The polygon of grid rows ``r0..r1-1`` and columns ``c0..c1-1`` in the scene's CRS."""
    from shapely.geometry import box

    t = grid_profile(SCENE)["transform"]
    return box(t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e)


def write_polygons(path, geoms, **columns):
    import geopandas as gpd

    gpd.GeoDataFrame(columns, geometry=list(geoms), crs=grid_profile(SCENE)["crs"]).to_file(path)
    return path


def burn(geoms, values) -> np.ndarray:
    """``values`` per polygon rasterised on the grid (pixel centres), -1 elsewhere."""
    g = grid_profile(SCENE)
    return rasterize(list(zip(geoms, values)), out_shape=(g["height"], g["width"]),
                     transform=g["transform"], fill=-1, dtype="int32")


def observed(scenes=(SCENE,)) -> np.ndarray:
    """Pixels with at least one valid observation."""
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    return stack_scenes(find_scenes([str(s) for s in scenes]),
                        load_config().scenes).valid.any("time").values


def class_table(folder) -> str:
    path = folder / "classes.yaml"
    path.write_text(CLASSES)
    return f"prepare.classes={path}"


def split_owner(out) -> np.ndarray:
    """Per grid pixel the split whose windows label it (-1 none); no pixel is in two splits."""
    owner, n_splits = _painted(xr.open_zarr(out))
    assert n_splits.max() <= 1, "a labelled pixel is in windows of two splits"
    return owner


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """64 polygons of 7 x 7 px on an 8 px lattice; fields of 3 scattered polygons each (one of 1),
    a class per field."""
    rng = np.random.default_rng(4)
    cells = rng.permutation(64)
    geoms = [pixel_box(8 * (c // 8), 8 * (c % 8), 8 * (c // 8) + 7, 8 * (c % 8) + 7)
             for c in cells]
    field = np.arange(64) // 3  # 22 fields
    code = rng.integers(1, 4, field.max() + 1)[field]
    folder = tmp_path_factory.mktemp("fields")
    path = write_polygons(folder / "fields.gpkg", geoms, code=code, field=field)
    return path, geoms, field, code


# ------------------------------------------------------------------------------ split.by column
@pytest.mark.parametrize("column", ["field", None])
def test_every_group_of_polygons_goes_whole_to_one_split(tmp_path, fields, column):
    path, geoms, field, _ = fields
    group = field if column else np.arange(len(geoms))
    extra = ["prepare.split.by=column", "prepare.split.fractions=[0.6,0.2,0.2]",
             f"prepare.split.column={column or 'null'}"]
    summary = run([SCENE], path, tmp_path / "c.zarr", extra)
    owner = split_owner(tmp_path / "c.zarr")
    ids = burn(geoms, group)
    usable = (ids >= 0) & observed()
    assert (owner[usable] >= 0).all() and (owner[~usable] == -1).all()  # nothing lost or invented
    for g in np.unique(ids[ids >= 0]):
        assert len(np.unique(owner[(ids == g) & usable])) == 1, f"group {g} is in several splits"
    assert set(np.unique(owner[usable]).tolist()) == {0, 1, 2}
    assert sum(summary["split"]["groups"].values()) == len(np.unique(group))
    if column is None:  # one group per polygon: the three polygons of a field may part
        fid = burn(geoms, field)
        assert any(len(np.unique(owner[(fid == f) & usable])) > 1 for f in np.unique(field))


def test_fixed_test_values_take_their_features_and_only_them(tmp_path, fields):
    path, geoms, field, code = fields
    marks = {2: "test", 7: "Test", 11: " TEST ", 16: "test", 5: "none", 9: "None"}  # any case
    group = [marks.get(int(f), f"f{f}") for f in field]
    labels = write_polygons(tmp_path / "g.gpkg", geoms, code=code, group=group)
    summary = run([SCENE], labels, tmp_path / "g.zarr",
                  ["prepare.split.by=column", "prepare.split.column=group",
                   "prepare.split.fractions=[0.6,0.2,0.2]"])
    owner = split_owner(tmp_path / "g.zarr")
    fixed = burn(geoms, [{"test": 1, "none": 2}.get(g.strip().lower(), 0) for g in group])
    usable = (fixed >= 0) & observed()
    assert (owner[usable & (fixed == 1)] == 2).all()
    assert (owner[usable & (fixed == 2)] == -1).all()  # "none": in no split
    assert (owner[usable & (fixed == 0)] != 2).all() and (owner[usable & (fixed == 0)] >= 0).all()
    assert {0, 1} <= set(np.unique(owner[usable & (fixed == 0)]).tolist())
    assert summary["split"]["groups"]["test"] == 1  # the four marked fields are one group "test"
    assert not any("single" in w for w in summary["warnings"]), summary["warnings"]


# ------------------------------------------------------------------------------ split.by raster
def test_split_raster_codes_decide_every_pixel(tmp_path):
    rng = np.random.default_rng(2)
    codes = np.repeat(np.repeat(rng.integers(1, 4, (16, 16)), 4, 0), 4, 1).astype(np.uint8)
    labels = write_labels(tmp_path / "labels.tif", codes, SCENE)
    split = np.full((64, 64), 1, np.uint8)  # west: train
    split[:, 28:36] = 2  # a strip: validation
    split[:, 36:] = 3  # east: test
    split[:12, 50:] = 0  # a corner of no split
    split[54:, 40:48] = 255  # nodata: no split either
    raster = write_labels(tmp_path / "split.tif", split, SCENE, nodata=255)
    summary = run([SCENE], labels, tmp_path / "r.zarr",
                  ["prepare.split.by=raster", f"prepare.split.raster={raster}",
                   "prepare.split.fractions=[0.6,0.2,0.2]"])
    owner = split_owner(tmp_path / "r.zarr")
    usable = observed()  # every pixel is labelled
    coded = usable & (split >= 1) & (split <= 3)
    np.testing.assert_array_equal(owner[coded], split[coded].astype(int) - 1)
    assert (owner[~coded] == -1).all()  # code 0, nodata and unobserved pixels: in no split
    assert summary["split"]["by"] == "raster"
    assert summary["labels_kept"]["kept"] == coded.sum()


# ------------------------------------------------------------------------------- kept labels
@pytest.fixture(scope="module")
def small_polygons(tmp_path_factory):
    """Scattered polygons of 1..6 px (one on the unobserved fill columns 0..3) and two larger
    fields of 120 px: the small ones hold far less than min_labelled (10 %) of any window."""
    rng = np.random.default_rng(7)
    geoms, codes = [], []
    for r in range(0, 60, 8):
        for c in range(6, 60, 8):
            if rng.random() < 0.25 or (r < 12 and c + 8 > 44) or (r + 8 > 48 and c < 22):
                continue  # (nor where the large fields lie)
            h, w = rng.integers(1, 3), rng.integers(1, 4)
            dr, dc = rng.integers(0, 8 - h), rng.integers(0, 8 - w)
            geoms.append(pixel_box(r + dr, c + dc, r + dr + h, c + dc + w))
            codes.append(int(rng.integers(1, 4)))
    geoms.append(pixel_box(30, 1, 32, 3))  # 4 px never observed
    codes.append(2)
    geoms += [pixel_box(2, 44, 12, 56), pixel_box(48, 10, 58, 22)]
    codes += [1, 3]
    path = write_polygons(tmp_path_factory.mktemp("small") / "small.gpkg", geoms, code=codes)
    return path, geoms


@pytest.mark.parametrize("split", [["prepare.split.by=column"],
                                   ["prepare.split.by=blocks", "prepare.split.block_size=20"]])
def test_default_patches_keep_small_scattered_polygons(tmp_path, small_polygons, split):
    """The default patches (30 px every 30 px, min_labelled 0.1) fit the 64 px scene (windows at
    0, 30 and 34 per axis), so the defaults are used unchanged."""
    path, geoms = small_polygons
    cfg = load_config(None, split)
    summary = prepare(LocalScenes((str(SCENE),), cfg.scenes.profile), str(path),
                      tmp_path / "k.zarr", cfg, progress=False)
    ds = xr.open_zarr(tmp_path / "k.zarr")
    assert ds.sizes["patch_y"] == 30 and ds.attrs["stride"] == 30
    labelled = burn(geoms, range(len(geoms))) >= 0
    usable = labelled & observed()
    kept = summary["labels_kept"]
    assert kept["in_labels"] == labelled.sum() and kept["unobserved"] == 4
    assert kept["kept"] == usable.sum()
    assert kept["share"] >= 0.98
    owner = split_owner(tmp_path / "k.zarr")
    assert (owner[usable] >= 0).all() and (owner[~usable] == -1).all()
    assert len(np.unique(owner[usable])) >= 2


# ----------------------------------------------------------------------------- stratification
def rare_labels(folder, blocks) -> str:
    """crop and forest everywhere, and a 3 x 3 px spot of ``rare`` in each of the 16 px blocks
    ``blocks`` (block row, block col)."""
    rng = np.random.default_rng(5)
    codes = np.repeat(np.repeat(rng.integers(1, 3, (16, 16)), 4, 0), 4, 1).astype(np.uint8)
    for br, bc in blocks:
        codes[16 * br + 6:16 * br + 9, 16 * bc + 6:16 * bc + 9] = 3
    return write_labels(folder / "rare.tif", codes, SCENE)


STRATIFIED = ["prepare.split.block_size=16", "prepare.split.fractions=[0.6,0.2,0.2]"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])  # by chance alone, 4 groups rarely reach 3 splits
def test_stratified_blocks_give_every_split_every_class(tmp_path, seed):
    labels = rare_labels(tmp_path, [(0, 1), (1, 3), (2, 2), (3, 1)])
    summary = run([SCENE], labels, tmp_path / "s.zarr",
                  [*STRATIFIED, f"prepare.split.seed={seed}", class_table(tmp_path)])
    per_split = summary["labelled_pixels_per_split"]
    for k in SPLITS:
        for name in ("crop", "forest", "rare"):
            assert per_split[k][name] > 0, (k, name, per_split)
    assert not any("no pixels of" in w for w in summary["warnings"]), summary["warnings"]


def test_a_class_in_too_few_groups_is_reported_with_its_split(tmp_path):
    labels = rare_labels(tmp_path, [(1, 1), (2, 3)])
    summary = run([SCENE], labels, tmp_path / "s.zarr", [*STRATIFIED, class_table(tmp_path)])
    per_split = summary["labelled_pixels_per_split"]
    lacking = [k for k in SPLITS if per_split[k]["rare"] == 0]
    assert len(lacking) == 1, per_split  # two groups reach two of the three splits
    assert any(lacking[0] in w and "rare" in w for w in summary["warnings"]), summary["warnings"]
    assert not any("no pixels of crop" in w or "no pixels of forest" in w
                   for w in summary["warnings"])


def test_a_class_in_as_many_groups_as_splits_reaches_every_split():
    from landcover.splits import assign_groups

    rng = np.random.default_rng(0)
    counts = rng.integers(50, 200, (16, 3))
    counts[:, 2] = 0
    counts[[1, 6, 11], 2] = 9  # a rare class in three groups of sixteen
    split = assign_groups(counts, (0.6, 0.2, 0.2), 0)
    assert sorted(split[[1, 6, 11]].tolist()) == [0, 1, 2]


# ------------------------------------------------------------------------------------- gap
@pytest.fixture(scope="module")
def gapped(tmp_path_factory):
    """Every pixel labelled; 16 px blocks over three splits with ``split.gap=2``."""
    folder = tmp_path_factory.mktemp("gap")
    rng = np.random.default_rng(3)
    codes = np.repeat(np.repeat(rng.integers(1, 4, (16, 16)), 4, 0), 4, 1).astype(np.uint8)
    labels = write_labels(folder / "all.tif", codes, SCENE)
    summary = run([SCENE], labels, folder / "gap.zarr",
                  ["prepare.split.block_size=16", "prepare.split.fractions=[0.5,0.25,0.25]",
                   "prepare.split.gap=2"])
    return folder / "gap.zarr", summary


def test_gap_keeps_labelled_pixels_of_different_splits_apart(gapped):
    out, summary = gapped
    owner = split_owner(out)
    usable = observed()
    assert set(np.unique(owner[usable]).tolist()) == {-1, 0, 1, 2}
    padded = np.pad(owner, 2, constant_values=-1)
    for dy in range(5):
        for dx in range(5):
            near = padded[dy:dy + 64, dx:dx + 64]
            clash = (owner >= 0) & (near >= 0) & (near != owner)
            assert not clash.any(), f"pixels of two splits within 2 px: {np.argwhere(clash)[:3]}"
    lost = usable & (owner < 0)  # the buffer: only next to block borders
    assert lost.any()
    rows, cols = np.nonzero(lost)
    assert (np.isin(rows % 16, [14, 15, 0, 1]) | np.isin(cols % 16, [14, 15, 0, 1])).all()
    assert summary["labels_kept"]["kept"] == usable.sum() - lost.sum()


def test_pixels_in_the_gap_are_not_reported_as_groups_of_no_split(gapped):
    out, summary = gapped
    assert sum(summary["split"]["groups"].values()) == 16  # every block went to a split
    lost = [w for w in summary["warnings"] if "labelled pixels kept" in w]
    assert lost  # the buffer costs labels: reported, per class
    assert not any("groups of no split" in w for w in lost), lost


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case, key", [
    ("column_with_raster", "prepare.split.by"),
    ("no_such_column", "prepare.split.column"),
    ("raster_unset", "prepare.split.raster"),
    ("raster_missing", "prepare.split.raster"),
])
def test_bad_split_settings_are_one_line_errors_naming_the_key(tmp_path, runner, case, key):
    if case == "column_with_raster":
        labels = write_labels(tmp_path / "l.tif", np.ones((64, 64), np.uint8), SCENE)
        extra = ["prepare.split.by=column"]
    elif case == "no_such_column":
        labels = write_polygons(tmp_path / "l.gpkg", [pixel_box(8, 8, 20, 20)], code=[1])
        extra = ["prepare.split.by=column", "prepare.split.column=nope"]
    else:
        labels = write_labels(tmp_path / "l.tif", np.ones((64, 64), np.uint8), SCENE)
        extra = ["prepare.split.by=raster"]
        if case == "raster_missing":
            extra.append(f"prepare.split.raster={tmp_path / 'no_such_split.tif'}")
    out = tmp_path / "out.zarr"
    with pytest.raises((LabelError, ConfigError)) as err:
        run([SCENE], labels, out, extra)
    assert key in str(err.value) and "\n" not in str(err.value)
    result = runner.invoke(cli, ["prepare", str(SCENE), "--labels", str(labels), "--out",
                                 str(out), *(f"--set={s}" for s in [*SMALL, *extra])])
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not a crash
    assert key in result.output and "Traceback" not in result.output
    assert not out.exists() and leftovers(tmp_path) == []
