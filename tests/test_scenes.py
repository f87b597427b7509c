import datetime as dt
import logging
import os
import tarfile

import numpy as np
import pytest
import rasterio
from conftest import CLEAR, DESIGNED, L7, MISALIGNED, SOUTH

from landcover.errors import (BandShapeError, MetadataError, MissingBandError, RasterReadError,
                              SceneNotFoundError, UnknownSensorError)
from landcover.grid import utm_epsg
from landcover.mtl import mtl_get, parse_mtl
from landcover.profiles import shipped_profiles
from landcover.scenes import find_scenes, name_matches
from landcover.stack import stack_scenes


def test_discovers_all_scenes_sorted_by_date(scenes_dir):
    scenes = find_scenes([scenes_dir])
    assert [s.scene_id for s in scenes] == [DESIGNED, L7, MISALIGNED.split("/")[1], CLEAR, SOUTH]
    first = scenes[0]
    assert (first.sensor, first.date, first.path, first.row) == ("LC08", dt.date(2023, 6, 10), 193, 26)
    assert first.attrs["level"] == "L2SP" and first.attrs["tier"] == "T1"
    assert first.profile == "landsat_c2l2"
    assert list(first.bands) == ["blue", "green", "red", "nir", "swir1", "swir2"]
    assert first.bands["red"].endswith("_SR_B4.TIF")
    assert first.scale["red"] == pytest.approx(2.75e-05) and first.offset["red"] == pytest.approx(-0.2)
    assert first.nodata == 0 and first.valid_range == (7273, 43636)
    assert first.grid.crs == "EPSG:32633" and first.grid.shape == (64, 64)
    assert not first.georef_from_mtl


def test_landsat7_band_numbering(scenes_dir):
    (scene,) = find_scenes([scenes_dir / L7])
    assert scene.bands["blue"].endswith("_SR_B1.TIF")
    assert scene.bands["swir2"].endswith("_SR_B7.TIF")
    assert scene.band_numbers == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7}


def test_tar_archive_is_read_in_place(scenes_dir, tmp_path):
    archive = tmp_path / f"{DESIGNED}.tar"
    with tarfile.open(archive, "w") as tar:
        for f in sorted((scenes_dir / DESIGNED).iterdir()):
            tar.add(f, arcname=f.name)
    (scene,) = find_scenes([tmp_path])  # a folder that contains the archive
    assert scene.bands["red"].startswith("/vsitar/")
    assert scene.cloud_cover is not None  # MTL read from inside the archive
    assert sorted(os.listdir(tmp_path)) == [archive.name]  # nothing extracted
    from_tar = stack_scenes([scene]).compute()
    from_dir = stack_scenes(find_scenes([scenes_dir / DESIGNED])).compute()
    np.testing.assert_array_equal(from_tar.valid.values, from_dir.valid.values)
    np.testing.assert_array_equal(from_tar.reflectance.values, from_dir.reflectance.values)


def test_mtl_json_and_txt_agree(scenes_dir):
    folder = scenes_dir / CLEAR
    txt = parse_mtl((folder / f"{CLEAR}_MTL.txt").read_bytes(), "x_MTL.txt")
    js = parse_mtl((folder / f"{CLEAR}_MTL.json").read_bytes(), "x_MTL.json")
    for key in ("LANDSAT_PRODUCT_ID", "UTM_ZONE", "CORNER_UL_PROJECTION_X_PRODUCT", "CLOUD_COVER"):
        assert mtl_get(txt, key, float if key != "LANDSAT_PRODUCT_ID" else str) == \
            mtl_get(js, key, float if key != "LANDSAT_PRODUCT_ID" else str)


# ------------------------------------------------------------------------------------ bad input
def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(SceneNotFoundError, match="no such file or folder"):
        find_scenes([tmp_path / "nope"])
    with pytest.raises(SceneNotFoundError, match="the folder is empty"):
        find_scenes([tmp_path])


def test_folder_with_no_recognisable_scene(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "holiday").mkdir()
    (tmp_path / "holiday" / "photo.tif").write_bytes(b"II*\x00")
    with pytest.raises(SceneNotFoundError, match="no recognisable Landsat scene"):
        find_scenes([tmp_path])


def test_missing_band_file(scene_copy):
    folder = scene_copy()
    (folder / f"{DESIGNED}_SR_B4.TIF").unlink()
    with pytest.raises(MissingBandError, match=r"band red \(\*_SR_B4.TIF\).*missing"):
        find_scenes([folder])


def test_truncated_tiff(scene_copy):
    folder = scene_copy()
    path = folder / f"{DESIGNED}_SR_B3.TIF"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RasterReadError, match=f"{path.name}.*truncated"):
        find_scenes([folder])


def test_garbage_tiff(scene_copy):
    folder = scene_copy()
    (folder / f"{DESIGNED}_SR_B3.TIF").write_bytes(b"not a tiff at all")
    with pytest.raises(RasterReadError, match="cannot open the raster"):
        find_scenes([folder])


def test_unparseable_mtl(scene_copy):
    folder = scene_copy()
    (folder / f"{DESIGNED}_MTL.txt").write_text("GROUP = LANDSAT_METADATA_FILE\n  GROUP = X\n  K = 1\n")
    with pytest.raises(MetadataError, match=f"{DESIGNED}_MTL.txt: cannot parse"):
        find_scenes([folder])


def test_bands_that_disagree_in_shape(scene_copy):
    folder = scene_copy()
    path = folder / f"{DESIGNED}_SR_B5.TIF"
    with rasterio.open(path) as src:
        profile = src.profile
    profile.update(width=32, height=32)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 32, 32), np.uint16))
    with pytest.raises(BandShapeError, match="differs from"):
        find_scenes([folder])


def test_unknown_sensor(scene_copy, tmp_path):
    folder = scene_copy()
    renamed = tmp_path / DESIGNED.replace("LC08", "LM05")
    folder.rename(renamed)
    with pytest.raises(UnknownSensorError, match="sensor LM05 .* not supported"):
        find_scenes([renamed])


def test_same_scene_twice(scenes_dir):
    with pytest.raises(SceneNotFoundError, match="pass each scene once"):
        find_scenes([scenes_dir / DESIGNED, scenes_dir])


# ----------------------------------------------------------------------- placement from the MTL
def _strip_georef(folder):
    for tif in folder.glob("*.TIF"):
        with rasterio.open(tif) as src:
            data, profile = src.read(), src.profile
        profile.pop("crs"), profile.pop("transform")
        with rasterio.open(tif, "w", **profile) as dst:
            dst.write(data)


def test_ungeoreferenced_rasters_are_placed_by_the_mtl(scene_copy):
    folder = scene_copy(CLEAR)
    (reference,) = find_scenes([folder])
    _strip_georef(folder)
    (scene,) = find_scenes([folder])
    assert scene.georef_from_mtl
    assert scene.grid == reference.grid


def test_mtl_placement_needs_matching_size(scene_copy):
    folder = scene_copy(CLEAR)
    _strip_georef(folder)
    mtl = folder / f"{CLEAR}_MTL.txt"
    mtl.write_text(mtl.read_text().replace("REFLECTIVE_LINES = 64", "REFLECTIVE_LINES = 7000"))
    (folder / f"{CLEAR}_MTL.json").unlink()
    with pytest.raises(MetadataError, match="MTL describes 64x7000 pixels"):
        find_scenes([folder])


def test_utm_zone_mapping_for_southern_scenes():
    assert utm_epsg(23, south=False) == 32623  # USGS: northern zone, negative northings
    assert utm_epsg(23, south=True) == 32723
    with pytest.raises(ValueError):
        utm_epsg(61, south=False)


# ------------------------------------------------------------------- file name case, MTL padding
@pytest.mark.parametrize("name, pattern, expected", [
    ("X_SR_B4.TIF", "*_SR_B4.TIF", True),
    ("X_SR_B4.tif", "*_SR_B4.TIF", True),   # the suffix is case-insensitive
    ("B2.TIF", "B2.tif", True),
    ("X_MTL.TXT", "*_MTL.txt", True),
    ("X_sr_b4.TIF", "*_SR_B4.TIF", False),  # the name itself is not
    ("X_SR_B4.TIFF", "*_SR_B4.TIF", False),
    (".tif", "*.tif", False),
])
def test_band_patterns_match_the_suffix_in_any_case(name, pattern, expected):
    assert name_matches(name, pattern) is expected


def _lower_suffixes(folder):
    for f in folder.iterdir():
        if f.suffix == ".TIF":
            f.rename(f.with_suffix(".tif"))


def test_lower_case_tif_folder_and_archive(scene_copy, scenes_dir, tmp_path):
    folder = scene_copy()
    _lower_suffixes(folder)
    (scene,) = find_scenes([folder])
    assert scene.bands["red"].endswith("_SR_B4.tif") and scene.mask_path.endswith("_QA_PIXEL.tif")
    assert scene.radsat_path.endswith("_QA_RADSAT.tif")
    archive = tmp_path / "tars" / f"{DESIGNED}.tar"
    archive.parent.mkdir()
    with tarfile.open(archive, "w") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    (from_tar,) = find_scenes([archive])
    assert from_tar.bands["red"].startswith("/vsitar/") and from_tar.bands["red"].endswith(".tif")
    reference = stack_scenes(find_scenes([scenes_dir / DESIGNED])).compute()
    np.testing.assert_array_equal(stack_scenes([from_tar]).compute().valid.values,
                                  reference.valid.values)


def test_nul_padded_mtl_is_read(scene_copy):
    folder = scene_copy()
    mtl = folder / f"{DESIGNED}_MTL.txt"
    clean = parse_mtl(mtl.read_bytes(), mtl.name)
    mtl.write_bytes(mtl.read_bytes() + b"\x00" * 4096)
    assert parse_mtl(mtl.read_bytes(), mtl.name) == clean
    assert parse_mtl(b"GROUP = A\n  K = 1\nEND_GROUP = A\nEND\x00\x00\x00", "x_MTL.txt") == \
        {"A": {"K": "1"}}
    (scene,) = find_scenes([folder])
    assert scene.cloud_cover == mtl_get(clean, "CLOUD_COVER", float)


# ------------------------------------------------------------- pre-collection Level-1 (L4/5/7)
PRE_ID = "LT52240631988227CUB02"  # Landsat 5, path 224 row 63, 1988 day 227 (14 August), Cuiaba
PRE_BANDS = (1, 2, 3, 4, 5, 7)
# REFLECTANCE_MULT/ADD of a real-looking TM scene (values of the 2012+ LPGS MTL layout)
PRE_MULT = {1: 1.2524e-03, 2: 2.6230e-03, 3: 2.2264e-03, 4: 2.9612e-03, 5: 2.0087e-03,
            7: 2.7126e-03}
PRE_ADD = {1: -0.003739, 2: -0.007987, 3: -0.005012, 4: -0.006521, 5: -0.006305, 7: -0.005874}


def _pre_mtl(style: str) -> str:
    """MTL text in the 2012+ pre-collection layout ("new") or the older QCALMAX one ("old")."""
    files = "".join(f'    FILE_NAME_BAND_{b} = "{PRE_ID}_B{b}.TIF"\n' for b in PRE_BANDS)
    if style == "old":
        lmax = "".join(f"    LMAX_BAND{b} = 193.000\n    LMIN_BAND{b} = -1.520\n"
                       for b in PRE_BANDS)
        qcal = "".join(f"    QCALMAX_BAND{b} = 255.0\n    QCALMIN_BAND{b} = 1.0\n"
                       for b in PRE_BANDS)
        return ("GROUP = L1_METADATA_FILE\n  GROUP = PRODUCT_METADATA\n    PRODUCT_TYPE = \"L1T\"\n"
                "    SPACECRAFT_ID = \"Landsat5\"\n    SENSOR_ID = \"TM\"\n"
                "    ACQUISITION_DATE = 1988-08-14\n    WRS_PATH = 224\n    STARTING_ROW = 63\n"
                f"{files.replace('FILE_NAME_BAND_', 'BAND').replace(' = ', '_FILE_NAME = ')}"
                "  END_GROUP = PRODUCT_METADATA\n  GROUP = MIN_MAX_RADIANCE\n"
                f"{lmax}  END_GROUP = MIN_MAX_RADIANCE\n  GROUP = MIN_MAX_PIXEL_VALUE\n"
                f"{qcal}  END_GROUP = MIN_MAX_PIXEL_VALUE\n"
                "  GROUP = PRODUCT_PARAMETERS\n    SUN_ELEVATION = 50.2\n"
                "  END_GROUP = PRODUCT_PARAMETERS\nEND_GROUP = L1_METADATA_FILE\nEND\n")
    rescale = "".join(f"    RADIANCE_MULT_BAND_{b} = 7.6583E-01\n"
                      f"    RADIANCE_ADD_BAND_{b} = -2.29\n" for b in PRE_BANDS)
    rescale += "".join(f"    REFLECTANCE_MULT_BAND_{b} = {PRE_MULT[b]:.4E}\n"
                       f"    REFLECTANCE_ADD_BAND_{b} = {PRE_ADD[b]}\n" for b in PRE_BANDS)
    return ("GROUP = L1_METADATA_FILE\n  GROUP = METADATA_FILE_INFO\n"
            f"    LANDSAT_SCENE_ID = \"{PRE_ID}\"\n    STATION_ID = \"CUB\"\n"
            "  END_GROUP = METADATA_FILE_INFO\n  GROUP = PRODUCT_METADATA\n"
            "    DATA_TYPE = \"L1T\"\n    SPACECRAFT_ID = \"LANDSAT_5\"\n    SENSOR_ID = \"TM\"\n"
            f"    WRS_PATH = 224\n    WRS_ROW = 63\n    DATE_ACQUIRED = 1988-08-14\n{files}"
            "  END_GROUP = PRODUCT_METADATA\n  GROUP = IMAGE_ATTRIBUTES\n    CLOUD_COVER = 12.00\n"
            "    SUN_ELEVATION = 50.2\n  END_GROUP = IMAGE_ATTRIBUTES\n"
            "  GROUP = MIN_MAX_PIXEL_VALUE\n    QUANTIZE_CAL_MAX_BAND_1 = 255\n"
            "    QUANTIZE_CAL_MIN_BAND_1 = 1\n  END_GROUP = MIN_MAX_PIXEL_VALUE\n"
            f"  GROUP = RADIOMETRIC_RESCALING\n{rescale}  END_GROUP = RADIOMETRIC_RESCALING\n"
            "END_GROUP = L1_METADATA_FILE\nEND\n")


def write_pre_l1(parent, *, style: str = "new", seed: int = 0, pad: bool = False):
    """A tiny pre-collection Level-1 folder: 8x8 uint8 DNs, column 0 is fill (DN 0).

    Southern UTM as USGS writes it (EPSG:32622, negative northings). Returns (folder, {band: DN}).
    """
    rng = np.random.default_rng(seed)
    folder = parent / PRE_ID
    folder.mkdir(parents=True)
    meta = dict(driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs="EPSG:32622",
                transform=rasterio.Affine(30.0, 0.0, 600000.0, 0.0, -30.0, -1500000.0))
    dns = {}
    for b in PRE_BANDS:
        dn = rng.integers(20, 200, (8, 8)).astype(np.uint8)
        dn[:, 0] = 0
        with rasterio.open(folder / f"{PRE_ID}_B{b}.TIF", "w", **meta) as dst:
            dst.write(dn[None])
        dns[b] = dn
    text = _pre_mtl(style).encode()
    (folder / f"{PRE_ID}_MTL.txt").write_bytes(text + (b"\x00" * 1000 if pad else b""))
    (folder / f"{PRE_ID}_GCP.txt").write_text("ground control points\n")
    return folder, dns


def test_pre_collection_l1_folder_is_picked_by_auto(tmp_path):
    folder, dns = write_pre_l1(tmp_path)
    (scene,) = find_scenes([tmp_path])
    assert (scene.profile, scene.scene_id, scene.sensor) == ("landsat_pre_l1", PRE_ID, "LT5")
    assert (scene.date, scene.path, scene.row) == (dt.date(1988, 8, 14), 224, 63)
    assert scene.attrs == {"station": "CUB", "version": "02"}
    assert list(scene.bands) == ["blue", "green", "red", "nir", "swir1", "swir2"]
    assert scene.band_numbers == {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir1": 5, "swir2": 7}
    assert scene.scale["swir2"] == pytest.approx(PRE_MULT[7])
    assert scene.offset["blue"] == pytest.approx(PRE_ADD[1])
    assert scene.mask_path is None and scene.radsat_path is None and scene.cloud_cover == 12.0
    assert scene.grid.crs == "EPSG:32622" and scene.grid.shape == (8, 8)
    stack = stack_scenes([scene]).compute()
    valid = stack.valid.values[0]
    assert not valid[:, 0].any() and valid[:, 1:].all()  # no QA band: valid where DN > 0
    np.testing.assert_allclose(stack.reflectance.values[0, 3, :, 1:],
                               dns[4][:, 1:] * PRE_MULT[4] + PRE_ADD[4], rtol=1e-5)


def test_pre_collection_old_mtl_and_tar_gz(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("landcover"), "propagate", True)  # the CLI turns it off
    caplog.set_level(logging.WARNING, logger="landcover.scenes")
    folder, dns = write_pre_l1(tmp_path / "src", style="old", pad=True)
    archive = tmp_path / "downloads" / f"{PRE_ID}.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    (scene,) = find_scenes([archive.parent])
    assert scene.profile == "landsat_pre_l1" and scene.bands["red"].startswith("/vsitar/")
    assert scene.scale["red"] == pytest.approx(1 / 255) and scene.offset["red"] == 0.0
    assert "has no REFLECTANCE_MULT_BAND_N" in caplog.text  # the user is told it is no TOA
    stack = stack_scenes([scene], bands=["red"]).compute()
    np.testing.assert_allclose(stack.reflectance.values[0, 0, :, 1:], dns[3][:, 1:] / 255,
                               rtol=1e-5)


def test_no_match_names_the_profiles_tried(tmp_path):
    (tmp_path / "20230101").mkdir()  # named like a date, but without band files
    (tmp_path / "20230101" / "photo.tif").write_bytes(b"II*\x00")
    with pytest.raises(SceneNotFoundError) as err:
        find_scenes([tmp_path])
    message = str(err.value)
    assert "tried profiles landsat_c2l2, landsat_c1l1, landsat_pre_l1, fmask_per_date" in message
    for profile in shipped_profiles():
        assert profile.name in message
    assert "\n" not in message
    # named explicitly, the profile takes the folder and says which files it lacks
    with pytest.raises(MissingBandError, match=r"20230101: no band files .*profile "
                                               r"per_date_folders expects B2.tif, B3.tif"):
        find_scenes([tmp_path], profile="per_date_folders")


def test_pre_collection_folder_with_unknown_sensor(tmp_path):
    folder, _ = write_pre_l1(tmp_path)
    renamed = folder.with_name(PRE_ID.replace("LT5", "LM5"))  # an MSS scene ID: other bands
    folder.rename(renamed)
    with pytest.raises(UnknownSensorError, match="sensor LM5 .* not supported by profile "
                                                 r"landsat_pre_l1 \(supported: LT4, LT5, LE7\)"):
        find_scenes([renamed])
