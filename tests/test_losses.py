"""The masked loss and metric: what a masked pixel contributes (nothing), hand-computed values,
class weights, and agreement with Keras' own ignore_class reduction."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from landcover.losses import MaskedLoss  # noqa: E402
from landcover.metrics import ConfusionMatrix  # noqa: E402
from landcover.scores import confusion, scores  # noqa: E402

K = 4
KINDS = ["ce", "focal", "dice", "ce+dice"]


def batch(seed=0, shape=(3, 6, 6)):
    """Random logits, labels with ~20% ignore (255) and weights with ~20% zeros elsewhere."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, shape + (K,)).astype(np.float32)
    y = rng.integers(0, K, shape).astype(np.int32)
    y[rng.random(shape) < 0.2] = 255
    w = rng.uniform(0.5, 3.0, shape).astype(np.float32)
    w[rng.random(shape) < 0.2] = 0.0
    w[y == 255] = 0.0
    return logits, y, w


def loss_and_grad(loss, logits, y, w):
    var = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(tf.constant(y), var, tf.constant(w))
    return float(value), tape.gradient(value, var).numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_masked_pixels_change_neither_loss_nor_gradients(kind):
    loss = MaskedLoss(kind, K)
    logits, y, w = batch()
    base, grad = loss_and_grad(loss, logits, y, w)
    masked = (y == 255) | (w == 0)
    rng = np.random.default_rng(5)
    y2, w2, logits2 = y.copy(), w.copy(), logits.copy()
    zero_w = (w == 0) & (y != 255)
    y2[zero_w] = (y[zero_w] + 1) % K                       # other labels where the weight is 0
    w2[y == 255] = rng.uniform(1, 9, (y == 255).sum())      # weights on ignore-labelled pixels
    logits2[masked] = rng.normal(0, 50, logits2[masked].shape)  # any logits there
    logits2[np.argwhere(masked)[0][0], np.argwhere(masked)[0][1], np.argwhere(masked)[0][2]] = \
        np.inf                                              # even inf
    value, grad2 = loss_and_grad(loss, logits2, y2, w2)
    assert value == pytest.approx(base, rel=1e-6)
    np.testing.assert_allclose(grad2, grad, rtol=1e-5, atol=1e-8)
    assert np.isfinite(grad2).all() and (grad2[masked] == 0).all()
    assert np.abs(grad[~masked]).sum() > 0


def test_masked_inputs_change_no_weight_gradient_of_a_per_pixel_model():
    """Through a model: with 1x1 convolutions a pixel's logits come from its own inputs only, so
    inputs under masked pixels must not move the loss or any weight gradient."""
    model = keras.Sequential([keras.Input((6, 6, 5)), keras.layers.Conv2D(8, 1, activation="relu"),
                              keras.layers.Conv2D(K, 1)])
    _, y, w = batch()
    masked = (y == 255) | (w == 0)
    x = np.random.default_rng(1).normal(size=(3, 6, 6, 5)).astype(np.float32)
    x2 = x.copy()
    x2[masked] = 1e4
    loss = MaskedLoss("ce", K)

    def run(inputs):
        with tf.GradientTape() as tape:
            value = loss(tf.constant(y), model(inputs), tf.constant(w))
        return float(value), [g.numpy() for g in tape.gradient(value, model.trainable_weights)]

    (a, ga), (b, gb) = run(x), run(x2)
    assert a == pytest.approx(b, rel=1e-6)
    for g1, g2 in zip(ga, gb):
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)


def test_cross_entropy_equals_a_hand_computed_value():
    # one image of 2x2 pixels, 2 classes
    logits = np.array([[[[2.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [5.0, -5.0]]]], np.float32)
    y = np.array([[[0, 1], [255, 1]]], np.int32)
    w = np.array([[[1.0, 3.0], [7.0, 0.5]]], np.float32)
    ce0 = np.log(1 + np.exp(-2.0))   # -log softmax([2, 0])[0]
    ce1 = np.log(1 + np.exp(-1.0))   # -log softmax([0, 1])[1]
    ce3 = np.log(1 + np.exp(10.0))   # -log softmax([5, -5])[1]
    expected = (1.0 * ce0 + 3.0 * ce1 + 0.5 * ce3) / 3  # 3 valid pixels; the ignored one is out
    value = float(MaskedLoss("ce", 2)(y, logits, w))
    assert value == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(2.0222, abs=1e-4)


def test_doubling_one_class_weight_scales_exactly_that_class_contribution():
    logits, y, w = batch(3)
    loss = MaskedLoss("ce", K)
    base = float(loss(y, logits, w))
    c = 2
    w_c = np.where(y == c, w, 0.0)
    n_all, n_c = ((y != 255) & (w > 0)).sum(), ((y != 255) & (w_c > 0)).sum()
    only_c = float(loss(y, logits, w_c)) * n_c / n_all  # class c's share of the batch loss
    doubled = float(loss(y, logits, np.where(y == c, 2 * w, w)))
    assert doubled - base == pytest.approx(only_c, rel=1e-5)
    assert only_c > 0


def test_cross_entropy_matches_keras_ignore_class_reduction():
    """Keras' SparseCategoricalCrossentropy(ignore_class=255) divides sum(w * loss) by the number
    of non-ignored pixels: the same number as ours when weight 0 goes with label 255."""
    logits, y, w = batch(4)
    w[(w == 0) & (y != 255)] = 1.0
    ours = float(MaskedLoss("ce", K)(y, logits, w))
    theirs = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)(
        y, logits, sample_weight=w))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy_and_focal_is_smaller():
    logits, y, w = batch(6)
    ce = float(MaskedLoss("ce", K)(y, logits, w))
    assert float(MaskedLoss("focal", K, focal_gamma=0.0)(y, logits, w)) == pytest.approx(ce)
    assert float(MaskedLoss("focal", K, focal_gamma=2.0)(y, logits, w)) < ce


def test_batch_without_valid_pixels_has_zero_loss():
    logits, y, w = batch(7)
    y[:] = 255
    for kind in KINDS:
        value = float(MaskedLoss(kind, K)(y, logits, w))
        assert value == pytest.approx(0.0 if kind in ("ce", "focal") else value)
        assert np.isfinite(value)


def test_metric_counts_only_valid_pixels():
    logits, y, w = batch(8)
    metric = ConfusionMatrix(K)
    metric.update_state(y, logits, w)
    masked = (y == 255) | (w == 0)
    expected = confusion(y, logits.argmax(-1), K, mask=w > 0)
    np.testing.assert_array_equal(np.asarray(metric.matrix), expected)
    assert expected.sum() == (~masked).sum()
    # other predictions under masked pixels: same matrix
    other = logits.copy()
    other[masked] = -other[masked]
    metric2 = ConfusionMatrix(K)
    metric2.update_state(y, other, w)
    np.testing.assert_array_equal(np.asarray(metric2.matrix), expected)
    # weights are a mask for the metric, not a multiplier
    metric3 = ConfusionMatrix(K)
    metric3.update_state(y, logits, w * 7)
    np.testing.assert_array_equal(np.asarray(metric3.matrix), expected)
    assert float(metric.result()) == pytest.approx(scores(expected)["mean_iou"], rel=1e-5)


def test_scores_show_what_overall_accuracy_hides():
    """95% background always right, a 5% class never predicted: OA 0.95, its F1 0, macro F1 ~0.49."""
    cm = np.array([[950, 0], [50, 0]])
    s = scores(cm, ["background", "rare"])
    assert s["overall_accuracy"] == pytest.approx(0.95)
    assert s["per_class"]["rare"]["f1"] == 0.0 and s["per_class"]["rare"]["precision"] is None
    assert s["macro_f1"] == pytest.approx(0.4872, abs=1e-4)
    assert s["kappa"] == pytest.approx(0.0)


def test_kappa_and_iou_against_hand_values():
    cm = np.array([[40, 10], [5, 45]])
    s = scores(cm, ["a", "b"])
    po, pe = 0.85, (50 * 45 + 50 * 55) / 100**2
    assert s["kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert s["per_class"]["a"]["iou"] == pytest.approx(40 / 55)
    assert s["per_class"]["b"]["precision"] == pytest.approx(45 / 55)
