import re

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import ProfileError
from landcover.profiles import load_profile, resolve_profiles, shipped_profiles
from landcover.scenes import find_scenes
from landcover.stack import stack_scenes

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


def test_shipped_profiles_load():
    assert [p.name for p in shipped_profiles()][:2] == ["landsat_c2l2", "landsat_c1l1"]
    assert "fmask_per_date" in [p.name for p in shipped_profiles()]


def test_a_user_profile_reads_another_layout(tmp_path):
    profile = tmp_path / "drone.yaml"
    profile.write_text(PROFILE)
    folder = tmp_path / "site7_CAM1_20240601"
    folder.mkdir()
    meta = dict(driver="GTiff", width=4, height=4, count=1, crs="EPSG:32632",
                transform=Affine(10, 0, 500000, 0, -10, 5400000))
    for band, value in (("R", 100), ("N", 400)):
        with rasterio.open(folder / f"x_{band}.tif", "w", dtype="int16", nodata=-1, **meta) as dst:
            dst.write(np.full((1, 4, 4), value, np.int16))
    mask = np.zeros((1, 4, 4), np.uint8)
    mask[0, 0, 0] = 9
    with rasterio.open(folder / "x_mask.tif", "w", dtype="uint8", **meta) as dst:
        dst.write(mask)
    (scene,) = find_scenes([tmp_path], profile=str(profile))
    assert (scene.profile, scene.sensor, str(scene.date)) == ("my_drone_layout", "CAM1", "2024-06-01")
    assert scene.attrs == {"site": "7"}
    stack = stack_scenes([scene], bands=["red", "nir"]).compute()
    assert stack.reflectance.values[0, :, 1, 1].tolist() == pytest.approx([0.1, 0.4])
    assert stack.valid.values[0].sum() == 15 and not stack.valid.values[0, 0, 0]


@pytest.mark.parametrize("change, message", [
    (("name: my_drone_layout", "name: x\ncolour: red"), "unknown key 'colour'"),
    (("(?P<date>", "(?P<day>"), "needs a named group (?P<date>...)"),
    (("kind: codes", "kind: magic"), "mask needs 'file' and 'kind'"),
    (("{red: R, nir: N}", "{infrared: N}"), "unknown band name 'infrared'"),
])
def test_bad_profiles_name_the_key(tmp_path, change, message):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE.replace(*change))
    with pytest.raises(ProfileError, match=re.escape(message)):
        load_profile(path)


def test_unknown_profile_name():
    with pytest.raises(ProfileError, match="unknown profile 'landsat_c3'"):
        resolve_profiles("landsat_c3")
