"""Model inputs: the date-by-date features classify builds (``features_by_date``) equal the
training chunk's (``FeatureSpec.make``) bit for bit, invalid observations included."""

import datetime as dt

import numpy as np
import pytest

from landcover.features import FeatureSpec, features_by_date


@pytest.mark.parametrize("fill", ["zero", "linear"])
@pytest.mark.parametrize("doy", [False, True])
def test_features_by_date_equal_the_training_features(fill, doy):
    rng = np.random.default_rng(7)
    T, h, w, B = 5, 37, 41, 6
    dates = [dt.date(2021, 3, 1) + dt.timedelta(days=16 * t) for t in range(T)]
    refl = rng.uniform(-0.1, 0.9, (T, B, h, w)).astype(np.float32)  # band-first, as read
    valid = rng.random((T, h, w)) > 0.3
    valid[1] = False  # a date without a valid pixel
    valid[:, 0, :] = False  # pixels never valid
    for t in range(T):  # a mosaic's no data: NaN, which must become 0 or be filled
        refl[t][:, ~valid[t]] = np.nan
    spec = FeatureSpec(("B2", "B3", "B4", "B5", "B6", "B7"),
                       (0.05, 0.08, 0.07, 0.30, 0.20, 0.12), (0.02, 0.03, 0.03, 0.08, 0.06, 0.05),
                       fill, doy)

    got, got_valid = features_by_date(
        lambda t: (np.moveaxis(refl[t], 0, -1), valid[t]), spec, dates)
    want = spec.make(np.moveaxis(refl, 1, -1)[None], valid[None], dates)[0]

    np.testing.assert_array_equal(got_valid, valid)
    assert got.dtype == want.dtype == np.float32 and not np.isnan(got).any()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit, signs of 0
    if fill == "zero":
        assert (got[~valid][:, :B] == 0).all()
