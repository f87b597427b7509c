import dask.array as da
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from landcover import qa
from landcover.errors import ConfigError

# Real QA_PIXEL values seen in USGS Collection 2 products (stactools / rio-tiler samples).
CLEAR_LAND, CLEAR_WATER, HIGH_CLOUD, CLOUD_CIRRUS, SHADOW, FILL = 21824, 21952, 22280, 55052, 23888, 1


def test_real_qa_pixel_values_decode_as_usgs_documents():
    values = np.array([CLEAR_LAND, CLEAR_WATER, HIGH_CLOUD, CLOUD_CIRRUS, SHADOW, FILL], np.uint16)
    f = qa.decode_qa_pixel(values)
    assert f["clear"].tolist() == [True, True, False, False, True, False]
    assert f["water"].tolist() == [False, True, False, False, False, False]
    assert f["cloud"].tolist() == [False, False, True, True, False, False]
    assert f["cloud_confidence_high"].tolist() == [False, False, True, True, False, False]
    assert f["cirrus"].tolist() == [False, False, False, True, False, False]
    assert f["cirrus_confidence_high"].tolist() == [False, False, False, True, False, False]
    assert f["cloud_shadow"].tolist() == [False, False, False, False, True, False]
    assert f["cloud_shadow_confidence_high"].tolist() == [False] * 4 + [True, False]
    assert f["fill"].tolist() == [False] * 5 + [True]
    invalid = qa.invalid_mask("qa_pixel", values, qa.DEFAULT_INVALID_FLAGS)
    assert invalid.tolist() == [False, False, True, True, True, True]


def test_encoder_reproduces_real_values():
    assert qa.encode_qa_pixel() == CLEAR_LAND
    assert qa.encode_qa_pixel(water=True) == CLEAR_WATER
    assert qa.encode_qa_pixel(cloud=True) == HIGH_CLOUD
    assert qa.encode_qa_pixel(fill=True) == FILL


flag_names = ("dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow", "water")


@given(st.lists(st.fixed_dictionaries({n: st.booleans() for n in flag_names}), min_size=1,
                max_size=20))
def test_qa_pixel_round_trip(pixels):
    arrays = {n: np.array([p[n] for p in pixels]) for n in flag_names}
    decoded = qa.decode_qa_pixel(qa.encode_qa_pixel(**arrays))
    for name in flag_names:
        np.testing.assert_array_equal(decoded[name], arrays[name])
    np.testing.assert_array_equal(decoded["clear"], ~(arrays["cloud"] | arrays["dilated_cloud"]))
    assert not decoded["fill"].any()


def test_snow_only_on_request():
    snow = qa.encode_qa_pixel(snow=np.array([True]))
    assert not qa.invalid_mask("qa_pixel", snow, qa.DEFAULT_INVALID_FLAGS).any()
    assert qa.invalid_mask("qa_pixel", snow, (*qa.DEFAULT_INVALID_FLAGS, "snow")).all()


def test_works_unchanged_on_dask():
    values = np.array([[CLEAR_LAND, HIGH_CLOUD], [SHADOW, FILL]], np.uint16)
    lazy = da.from_array(values, chunks=1)
    got = qa.invalid_mask("qa_pixel", lazy, qa.DEFAULT_INVALID_FLAGS)
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(),
                                  qa.invalid_mask("qa_pixel", values, qa.DEFAULT_INVALID_FLAGS))
    rs = qa.radsat_mask(da.from_array(np.array([0, 1 << 3, 1 << 0, 1 << 11], np.uint16)), [2, 4])
    assert rs.compute().tolist() == [False, True, False, True]


def test_collection1_bqa_bits():
    # C1 BQA: 1 = designated fill; 2720 = clear (low confidences); 2800 = cloud, high confidence
    # (bit 4 + bits 5-6 = 3); 2976 = high-confidence cloud shadow (bits 7-8 = 3) with cloud conf low.
    values = np.array([1, 2720, 2800, 2976], np.uint16)
    f = qa.decode_bqa_c1(values)
    assert f["fill"].tolist() == [True, False, False, False]
    assert f["cloud"].tolist() == [False, False, True, False]
    assert f["cloud_confidence_high"].tolist() == [False, False, True, False]
    assert f["cloud_shadow"].tolist() == [False, False, False, True]
    assert qa.invalid_mask("bqa_c1", values, ("fill", "cloud", "cloud_shadow")).tolist() == \
        [True, False, True, True]


def test_code_masks_and_flags_a_layer_cannot_express():
    codes = {"clear": [0], "water": [1], "cloud_shadow": [2], "snow": [3], "cloud": [4],
             "fill": [255]}
    fmask = np.array([0, 1, 2, 3, 4, 255], np.uint8)
    invalid = qa.invalid_mask("codes", fmask, qa.DEFAULT_INVALID_FLAGS, codes)
    assert invalid.tolist() == [False, False, True, False, True, True]


def test_unknown_flag_is_a_config_error():
    with pytest.raises(ConfigError, match="scenes.mask.invalid_flags: unknown flag 'clouds'"):
        qa.validate_flags(["cloud", "clouds"])


def test_integer_bands_are_looked_up_with_the_same_result_for_every_value():
    """A uint16 or uint8 band is decoded through a table of all its values: every value gives
    what the bit layout says (checked here by plain bit arithmetic, not through qa)."""
    v = np.arange(65536, dtype=np.uint16)
    w = v.astype(np.int64)
    got = qa.invalid_mask("qa_pixel", v.reshape(256, 256), qa.DEFAULT_INVALID_FLAGS)
    assert got.shape == (256, 256) and got.dtype == bool
    np.testing.assert_array_equal(got.ravel(), (w & 0b11111) != 0)  # fill, dilated, cirrus,
    # cloud, shadow: bits 0-4
    snow = qa.invalid_mask("qa_pixel", v, ("snow", "cloud_confidence_medium"))
    np.testing.assert_array_equal(snow, ((w >> 5) & 1 == 1) | ((w >> 8) & 3 >= 2))
    c1 = qa.invalid_mask("bqa_c1", v, ("fill", "cloud", "cloud_shadow"))
    np.testing.assert_array_equal(c1, (w & 1 == 1) | ((w >> 4) & 1 == 1) | ((w >> 7) & 3 == 3))
    codes = {"cloud": [4], "fill": [255], "cloud_shadow": [2, 3]}
    u8 = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(qa.invalid_mask("codes", u8, qa.DEFAULT_INVALID_FLAGS, codes),
                                  np.isin(u8, [2, 3, 4, 255]))
    assert not qa.invalid_mask("codes", u8, ("snow",), codes).any()  # a flag it cannot express
