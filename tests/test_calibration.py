"""Temperature scaling: it recovers a known temperature, lowers the calibration error of an
over-confident model, never changes the predicted class; the bundle records it."""

from __future__ import annotations

import numpy as np

from landcover.calibration import calibrate, fit_temperature, reliability, softmax


def overconfident(n=20_000, k=4, true_t=2.5, seed=0):
    """Logits whose labels are drawn from softmax(logits / true_t): the model is over-confident
    by a factor of ``true_t``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, k))
    p = softmax(logits, true_t)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return logits, np.minimum(y, k - 1)


def test_the_fitted_temperature_is_the_true_one():
    logits, y = overconfident(true_t=2.5)
    t = fit_temperature(logits, y)
    # n = 20,000: the maximum-likelihood estimate is within a few per cent
    assert abs(t - 2.5) < 0.15
    logits, y = overconfident(true_t=1.0, seed=1)
    assert abs(fit_temperature(logits, y) - 1.0) < 0.08


def test_scaling_lowers_the_calibration_error_and_keeps_the_classes():
    logits, y = overconfident(seed=2)
    fit, check = (logits[:10_000], y[:10_000]), (logits[10_000:], y[10_000:])
    rec = calibrate(fit, check)
    assert rec["fitted"] and rec["checked_on"] == "test"
    assert rec["after"]["ece"] < 0.5 * rec["before"]["ece"]
    assert rec["before"]["ece"] > 0.05
    same = softmax(logits, rec["temperature"]).argmax(1) == softmax(logits).argmax(1)
    assert same.all()


def test_too_few_pixels_fit_nothing():
    logits, y = overconfident(n=50)
    assert fit_temperature(logits, y) is None
    assert calibrate((logits, y), None) == {"temperature": 1.0, "fitted": False,
                                            "fitted_on_pixels": 50}


def test_reliability_bins_count_every_pixel():
    logits, y = overconfident(n=1000)
    r = reliability(softmax(logits), y)
    assert sum(r["pixels"]) == 1000 and 0 <= r["ece"] <= 1
