import numpy as np
import pytest
import rasterio
from conftest import CLEAR, DESIGNED, L7, MISALIGNED, SOUTH

from landcover.config import load_config
from landcover.errors import GridMismatchError, MissingBandError
from landcover.scenes import find_scenes
from landcover.stack import grid_of, stack_scenes


def scenes_of(scenes_dir, *names):
    return find_scenes([scenes_dir / n for n in names])


def designed_valid() -> np.ndarray:
    """The valid mask of the designed scene, written out region by region (see make_scenes.py)."""
    v = np.zeros((64, 64), bool)
    v[0:32, 4:32] = True          # clear land
    v[10:14, 10:14] = False       # cirrus
    v[20, 20] = False             # red saturated in QA_RADSAT
    v[25, 25] = False             # red DN above the valid range
    v[32:64, 32:64] = True        # snow (valid by default) and water
    return v


def test_exact_mask_of_the_designed_scene(scenes_dir):
    stack = stack_scenes(scenes_of(scenes_dir, DESIGNED)).compute()
    np.testing.assert_array_equal(stack.valid.values[0], designed_valid())
    assert stack.valid.dtype == bool
    refl = stack.reflectance.values[0]
    assert np.isnan(refl[:, :, :4]).all()           # fill border has no data
    assert np.isfinite(refl[:, :, 4:]).all()        # clouds keep their values, only masked
    with rasterio.open(scenes_dir / DESIGNED / f"{DESIGNED}_SR_B4.TIF") as src:
        dn = src.read(1).astype(np.float32)
    np.testing.assert_allclose(refl[2, :, 4:], dn[:, 4:] * np.float32(2.75e-05) - np.float32(0.2),
                               rtol=1e-6)


def test_mask_options(scenes_dir):
    scenes = scenes_of(scenes_dir, DESIGNED)
    snow = stack_scenes(scenes, load_config(None, [
        "scenes.mask.invalid_flags=[fill,dilated_cloud,cirrus,cloud,cloud_shadow,snow]"]).scenes)
    expected = designed_valid()
    expected[32:48, 32:] = False
    np.testing.assert_array_equal(snow.valid.values[0], expected)
    loose = stack_scenes(scenes, load_config(None, ["scenes.mask.saturation=false",
                                                    "scenes.mask.valid_range=false"]).scenes)
    expected = designed_valid()
    expected[20, 20] = expected[25, 25] = True
    np.testing.assert_array_equal(loose.valid.values[0], expected)


def test_coordinates_and_attributes(scenes_dir):
    stack = stack_scenes(scenes_of(scenes_dir, DESIGNED, L7, CLEAR))
    assert stack.reflectance.dims == ("time", "band", "y", "x")
    assert stack.valid.dims == ("time", "y", "x")
    assert stack.time.dtype == np.dtype("datetime64[ns]")
    assert [str(t)[:10] for t in stack.time.values] == ["2023-06-10", "2023-06-18", "2023-07-12"]
    assert list(stack.band.values) == ["blue", "green", "red", "nir", "swir1", "swir2"]
    assert stack.attrs["crs"] == "EPSG:32633"
    assert stack.x.values[0] == 600015.0 and stack.y.values[0] == 5800005.0
    assert list(stack.sensor.values) == ["LC08", "LE07", "LC08"]
    assert grid_of(stack).shape == (64, 64)


def test_landsat7_slc_off_stripes_are_invalid(scenes_dir):
    stack = stack_scenes(scenes_of(scenes_dir, L7)).compute()
    valid = stack.valid.values[0]
    assert not valid[8:10].any() and not valid[40:42].any() and not valid[:, :4].any()
    assert valid[10:40, 4:].all()


def test_same_date_scenes_are_mosaicked(scenes_dir):
    stack = stack_scenes(scenes_of(scenes_dir, CLEAR, SOUTH)).compute()
    assert stack.sizes == {"time": 1, "band": 6, "y": 112, "x": 64}
    assert stack.scene_id.values[0] == f"{CLEAR}+{SOUTH}"
    red, valid = stack.reflectance.values[0, 2], stack.valid.values[0]
    # Rows 48-55: both scenes; row 027 is cloudy there, so row 026 supplies the valid value.
    assert valid[48:56, 4:].all()
    assert np.allclose(red[48:56, 4:], 0.05 + 0.001 * np.arange(4, 64), atol=1e-3)
    # Rows 64-111: row 027 only (red = 0.2); its clear rows win everywhere they are the only data.
    assert valid[64:, :].all() and np.allclose(red[64:], 0.2, atol=1e-4)
    # Cols 0-3: row 026's fill border; row 027 fills it from row 56 on (its rows 0-7 are cloud).
    assert not valid[:56, :4].any() and valid[56:, :4].all()


def test_other_grid_is_reprojected_or_refused(scenes_dir):
    scenes = scenes_of(scenes_dir, DESIGNED, CLEAR, MISALIGNED)
    stack = stack_scenes(scenes)
    grid = grid_of(stack)
    assert grid.transform[2] == 600000.0 and grid.res == (30.0, 30.0)  # the most common grid
    assert grid.width == 65  # union: the half-pixel shifted scene reaches 15 m further east
    red = stack.reflectance.sel(band="red").compute().values
    t = list(stack.scene_id.values).index(MISALIGNED.split("/")[1])
    # Bilinear half-pixel shift of a ramp of 0.001 per column: value at col c is 0.05 + 0.001 (c-0.5).
    np.testing.assert_allclose(red[t, 10, 2:60], 0.05 + 0.001 * (np.arange(2, 60) - 0.5),
                               atol=2e-4)
    with pytest.raises(GridMismatchError, match="scenes.grid.align=true"):
        stack_scenes(scenes, load_config(None, ["scenes.grid.align=false"]).scenes)


def test_named_grid_crs_and_resolution(scenes_dir):
    cfg = load_config(None, ["scenes.grid.resolution=60", "scenes.grid.extent=intersection"])
    stack = stack_scenes(scenes_of(scenes_dir, DESIGNED, CLEAR), cfg.scenes).compute()
    assert grid_of(stack).shape == (32, 32) and grid_of(stack).res == (60.0, 60.0)
    like = scenes_dir / CLEAR / f"{CLEAR}_SR_B2.TIF"
    cfg = load_config(None, [f"scenes.grid.like={like}"])
    assert grid_of(stack_scenes(scenes_of(scenes_dir, SOUTH), cfg.scenes)).shape == (64, 64)


def test_missing_band_in_stack(scenes_dir):
    with pytest.raises(MissingBandError, match="band coastal is not available"):
        stack_scenes(scenes_of(scenes_dir, DESIGNED), bands=["coastal"])


def test_nothing_is_read_until_computed(scenes_dir, monkeypatch):
    scenes = scenes_of(scenes_dir, DESIGNED, L7, CLEAR, SOUTH)
    opened = []
    real_open = rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    stack = stack_scenes(scenes, load_config(None, ["scenes.chunk_size=64"]).scenes)
    assert opened == []
    stack.valid.isel(time=0, y=slice(0, 10), x=slice(0, 10)).compute()
    # one chunk of one date: 6 bands + QA_PIXEL + QA_RADSAT of the one scene that covers it
    assert len(opened) == 8


def test_chunks_bound_the_work_per_task(scenes_dir):
    cfg = load_config(None, ["scenes.chunk_size=64"]).scenes
    stack = stack_scenes(scenes_of(scenes_dir, CLEAR, SOUTH, DESIGNED), cfg)
    assert stack.reflectance.data.chunksize == (1, 6, 64, 64)
    assert stack.reflectance.data.npartitions == 2 * 2  # 2 dates x 2 row-chunks
    full = stack_scenes(scenes_of(scenes_dir, CLEAR, SOUTH, DESIGNED)).compute()
    np.testing.assert_array_equal(stack.valid.values, full.valid.values)
    np.testing.assert_array_equal(stack.reflectance.values, full.reflectance.values)
