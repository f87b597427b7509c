import datetime as dt
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
from landcover.scenes import find_scenes
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
