import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import ProfileError
from landcover.profiles import (Profile, load_profile, profile_from_record, profile_record,
                                resolve_profiles, shipped_profiles)
from landcover.scenes import find_scenes, scene_profile, scene_profiles
from landcover.stack import stack_scenes

from conftest import REAL  # noqa: E402
MAIPO = REAL / "sperrorest-maipo"

PROFILE = """
name: my_drone_layout
id_pattern: 'site(?P<site>\\d+)_(?P<sensor>CAM1)_(?P<date>\\d{8})'
date_format: '%Y%m%d'
band_file: '*_{band}.tif'
sensors:
  CAM1: {red: R, nir: N}
scale: 0.001
offset: 0.0
nodata: -1
valid_range: [0, 1000]
mask: {file: '*_mask.tif', kind: codes, codes: {cloud: [9], fill: [255]}}
"""

# Folders named by the date alone, with index and red-edge bands: no sensor group in the ID.
PER_DATE = """
# a user profile for per-date index files
name: my_indices
id_pattern: '^(?P<date>\\d{8})$'
date_format: '%Y%m%d'
band_file: '{band}.tif'
sensors:
  S2: {ndvi: NDVI, red-edge: RE1, b4: B4}
optional_bands: true
scale: 1.0e-04
offset: 0.0
nodata: -9999
"""

META = dict(driver="GTiff", width=4, height=4, count=1, crs="EPSG:32632",
            transform=Affine(10, 0, 500000, 0, -10, 5400000))


def write_per_date(folder: Path, files: dict[str, float], *, seed: int = 0, fill=(0, 0)) -> dict:
    """Seeded int16 band files (value x 10000 plus noise, nodata -9999 at ``fill``) in ``folder``.

    Returns ``{file name: int16 array}`` as written.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, value in files.items():
        data = (value * 10000 + rng.integers(-50, 50, (4, 4))).astype(np.int16)
        data[fill] = -9999
        with rasterio.open(folder / name, "w", dtype="int16", nodata=-9999, **META) as dst:
            dst.write(data[None])
        written[name] = data
    return written


def test_shipped_profiles_load():
    names = [p.name for p in shipped_profiles()]
    assert names[:2] == ["landsat_c2l2", "landsat_c1l1"]
    assert {"fmask_per_date", "landsat_pre_l1"} <= set(names)
    assert names[-1] == "per_date_folders"  # generic names: auto tries it last


def test_a_user_profile_reads_another_layout(tmp_path):
    profile = tmp_path / "drone.yaml"
    profile.write_text(PROFILE)
    folder = tmp_path / "site7_CAM1_20240601"
    folder.mkdir()
    for band, value in (("R", 100), ("N", 400)):
        with rasterio.open(folder / f"x_{band}.tif", "w", dtype="int16", nodata=-1, **META) as dst:
            dst.write(np.full((1, 4, 4), value, np.int16))
    mask = np.zeros((1, 4, 4), np.uint8)
    mask[0, 0, 0] = 9
    with rasterio.open(folder / "x_mask.tif", "w", dtype="uint8", **META) as dst:
        dst.write(mask)
    (scene,) = find_scenes([tmp_path], profile=str(profile))
    assert (scene.profile, scene.sensor, str(scene.date)) == ("my_drone_layout", "CAM1", "2024-06-01")
    assert scene.attrs == {"site": "7"}
    stack = stack_scenes([scene], bands=["red", "nir"]).compute()
    assert stack.reflectance.values[0, :, 1, 1].tolist() == pytest.approx([0.1, 0.4])
    assert stack.valid.values[0].sum() == 15 and not stack.valid.values[0, 0, 0]


def test_arbitrary_band_names_in_a_per_date_profile(tmp_path):
    path = tmp_path / "indices.yaml"
    path.write_text(PER_DATE)
    # RE1.TIF: an upper-case suffix still matches the profile's '{band}.tif'
    written = write_per_date(tmp_path / "scenes" / "20240601",
                             {"NDVI.tif": 0.6, "RE1.TIF": 0.25, "B4.tif": 0.05})
    (scene,) = find_scenes([tmp_path / "scenes"], profile=str(path))
    assert (scene.scene_id, scene.sensor, str(scene.date)) == ("20240601", "S2", "2024-06-01")
    assert list(scene.bands) == ["ndvi", "red-edge", "b4"]
    assert scene.band_numbers == {"ndvi": 0, "red-edge": 1, "b4": 4}  # NDVI: no sensor band
    stack = stack_scenes([scene], bands=["ndvi", "red-edge"]).compute()
    assert list(stack.band.values) == ["ndvi", "red-edge"]
    np.testing.assert_allclose(stack.reflectance.values[0, 0, 1:, :],
                               written["NDVI.tif"][1:, :] * 1e-4, rtol=1e-6)
    assert np.isnan(stack.reflectance.values[0, :, 0, 0]).all() and not stack.valid.values[0, 0, 0]
    assert stack.valid.values[0].sum() == 15


def test_radsat_does_not_apply_to_unnumbered_bands(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PER_DATE + "saturation: {file: 'QA_RADSAT.tif'}\n")
    folder = tmp_path / "20240601"
    write_per_date(folder, {"NDVI.tif": 0.6, "B4.tif": 0.05})
    radsat = np.zeros((1, 4, 4), np.uint16)
    radsat[0, 2, 2] = 1 << 3  # band 4 saturated
    with rasterio.open(folder / "QA_RADSAT.tif", "w", dtype="uint16", **META) as dst:
        dst.write(radsat)
    (scene,) = find_scenes([folder], profile=str(path))
    valid = stack_scenes([scene], bands=["ndvi", "b4"]).valid.values[0]
    assert not valid[2, 2] and valid.sum() == 14


def test_a_folder_without_sensor_code_takes_the_profile_sensor(tmp_path):
    two = PER_DATE.replace("  S2: {", "  S2A: {ndvi: NDVI}\n  S2: {")
    path = tmp_path / "p.yaml"
    path.write_text(two.replace("band_file:", "sensor: S2\nband_file:"))
    write_per_date(tmp_path / "20240601", {"B4.tif": 0.05})
    profile = load_profile(path)
    assert profile.default_sensor == "S2" and not profile.has_sensor_code
    (scene,) = find_scenes([tmp_path / "20240601"], profile=profile)
    assert scene.sensor == "S2" and list(scene.bands) == ["b4"]
    path.write_text(two)
    with pytest.raises(ProfileError, match=r"no \(\?P<sensor>\.\.\.\) group, so name the sensor"):
        load_profile(path)


def test_auto_per_date_folders_does_not_take_product_folders(scene_copy, tmp_path):
    folder = scene_copy()
    renamed = tmp_path / "20230610"  # a date-named folder that holds Collection 2 files
    folder.rename(renamed)
    (scene,) = find_scenes([renamed])
    assert scene.profile == "landsat_c2l2" and scene.sensor == "LC08"


@pytest.mark.parametrize("change, message", [
    (("name: my_drone_layout", "name: x\ncolour: red"), "unknown key 'colour'"),
    (("(?P<date>", "(?P<day>"), "needs a named group (?P<date>...)"),
    (("kind: codes", "kind: magic"), "mask needs 'file' and 'kind'"),
    (("{red: R, nir: N}", "{2red: N}"), "band name '2red' is not a name"),
    (("{red: R, nir: N}", "{'near ir': N}"), "band name 'near ir' is not a name"),
    (("{red: R, nir: N}", "{'': N}"), "band name '' is not a name"),
    (("{red: R, nir: N}", "{valid: N}"), "band name 'valid' is reserved"),
    (("{red: R, nir: N}", "{red: }"), "sensors.CAM1.red: give the file suffix"),
    (("CAM1: {red: R, nir: N}", "CAM1: []"), "sensors.CAM1 must map band names"),
    (("band_file:", "sensor: CAM9\nband_file:"), "sensor 'CAM9' is not one of sensors"),
])
def test_bad_profiles_name_the_key(tmp_path, change, message):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE.replace(*change))
    with pytest.raises(ProfileError, match=re.escape(message)) as err:
        load_profile(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_any_identifier_like_band_name_is_accepted(tmp_path):
    path = tmp_path / "p.yaml"
    names = "{infrared: N, red_edge_1: R, b2: B, EVI: E}"
    path.write_text(PROFILE.replace("{red: R, nir: N}", names))
    assert list(load_profile(path).sensors["CAM1"]) == ["infrared", "red_edge_1", "b2", "EVI"]


def test_unknown_profile_name():
    with pytest.raises(ProfileError, match="unknown profile 'landsat_c3'"):
        resolve_profiles("landsat_c3")


# ------------------------------------------------------------------------- profile records
def test_profile_record_round_trip_after_the_yaml_is_gone(tmp_path):
    path = tmp_path / "indices.yaml"
    path.write_text(PER_DATE)
    write_per_date(tmp_path / "scenes" / "20240601", {"NDVI.tif": 0.6, "B4.tif": 0.05})
    write_per_date(tmp_path / "scenes" / "20240701", {"NDVI.tif": 0.7, "B4.tif": 0.04}, seed=1)
    scenes = find_scenes([tmp_path / "scenes"], profile=str(path))
    (profile,) = scene_profiles(scenes)
    assert scene_profile(scenes[0]) is profile and profile == load_profile(path)
    record = json.loads(json.dumps(profile_record(profile)))  # JSON-able, e.g. zarr attrs
    assert record["name"] == "my_indices" and record["yaml"] == PER_DATE
    path.unlink()
    restored = profile_from_record(record)
    assert restored == profile and restored.source == str(path)
    again = find_scenes([tmp_path / "scenes"], profile=restored)
    assert again == scenes
    assert stack_scenes(again, bands=["ndvi"]).band.values.tolist() == ["ndvi"]
    assert profile_from_record(json.dumps(record)) == profile  # the JSON string works too


def test_profile_record_of_shipped_and_code_built_profiles():
    for shipped in shipped_profiles():
        assert profile_from_record(profile_record(shipped)) == shipped
    built = Profile(name="built", description="", id_pattern=r"(?P<date>\d{8})",
                    date_format="%Y%m%d", band_file="{band}.tif", sensors={"X": {"red": "B4"}},
                    scale=1e-4, offset=0.0, nodata=-9999.0, valid_range=None, default_sensor="X")
    assert profile_from_record(profile_record(built)) == built


@pytest.mark.parametrize("record, message", [
    ({"name": "x"}, "expected a mapping with 'name' and 'yaml'"),
    ("not json", "expected a mapping with 'name' and 'yaml'"),
    ({"name": "x", "yaml": "name: x\n"}, "sensor profile record 'x': missing key 'id_pattern'"),
    ({"name": "y", "yaml": PER_DATE}, "its YAML names the profile 'my_indices'"),
])
def test_bad_profile_records(record, message):
    with pytest.raises(ProfileError, match=re.escape(message)):
        profile_from_record(record)


# ------------------------------------------------------------------------- real sample
@pytest.mark.real
def test_maipo_per_date_folders_are_read_by_the_shipped_profile(runner):
    if not (MAIPO / "scenes").is_dir():
        pytest.skip(f"real sample sperrorest-maipo not found at {MAIPO}")
    from landcover.cli.main import cli

    scenes = find_scenes([MAIPO / "scenes"], profile="per_date_folders")
    assert [s.scene_id for s in scenes] == ["20131001", "20131025", "20131118", "20131212",
                                            "20140105", "20140129", "20140222", "20140318"]
    first = scenes[0]
    assert (first.sensor, first.path_row, first.nodata) == ("LC08", "-", -9999)
    assert first.mask_path is None and first.radsat_path is None
    assert list(first.bands) == ["blue", "green", "red", "nir", "swir1", "swir2"]
    assert first.bands["blue"].endswith("B2.tif") and first.bands["swir2"].endswith("B7.tif")
    assert first.scale["red"] == 1e-4 and first.grid.shape == (1344, 1982)
    assert find_scenes([MAIPO / "scenes"]) == scenes  # auto finds it too (tried last)
    result = runner.invoke(cli, ["info", str(MAIPO / "scenes"), "--json",
                                 "--set", "scenes.profile=per_date_folders"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["scenes"]) == 8 and report["stack"]["dates"] == 8
    assert {s["profile"] for s in report["scenes"]} == {"per_date_folders"}
