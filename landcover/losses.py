"""Masked, class-weighted losses for dense per-pixel targets (``keras`` and ``keras.ops`` only).

Every loss here takes integer labels ``y`` of shape (B, H, W), logits (B, H, W, K) and the per-pixel
weights ``w`` (B, H, W) that the input pipeline yields as Keras' ``sample_weight``. The class weight
of each pixel is already folded into ``w`` (``fit(class_weight=...)`` does not work for dense targets
in Keras 3 and is never used).

**Which pixels count.** A pixel is *valid* when its label is not the ignore label (255) and its
weight is above 0. Invalid pixels contribute nothing, not even to the denominator, and their logits
are replaced by 0 before any arithmetic, so their values (even inf or NaN) reach neither the loss
nor the gradients.

**Reduction** (the same for cross-entropy and focal loss)::

    loss = sum over valid pixels of (w_i * l_i)  /  number of valid pixels

It is *not* Keras' default ``sum_over_batch_size`` (which divides by B*H*W, so the loss shrinks as
clouds grow) and not ``mean_with_sample_weight`` (which divides by sum(w), so class weights cancel
out in a batch of one class). With this rule a masked pixel changes nothing, a class weight of 2
exactly doubles that class's share of the loss, and the scale of the loss does not depend on how
cloudy a batch is. A batch with no valid pixel has loss 0.

Dice is computed over the valid pixels of the whole batch with the same per-pixel weights, as
``1 - mean over classes of (2 sum(w p y) + 1) / (sum(w p) + sum(w y) + 1)``.
"""

from __future__ import annotations

import keras
from keras import ops

from landcover.contract import IGNORE, LOSS_KINDS



def _prepare(y_true, y_pred, sample_weight, ignore_label):
    """int labels, float32 logits with invalid pixels zeroed, float weights with 0 off the mask."""
    y = ops.cast(y_true, "int32")
    if len(y.shape) == len(y_pred.shape):  # (B, H, W, 1) labels
        y = ops.squeeze(y, axis=-1)
    logits = ops.cast(y_pred, "float32")
    valid = ops.not_equal(y, ignore_label)
    if sample_weight is None:
        w = ops.cast(valid, "float32")
    else:
        w = ops.cast(sample_weight, "float32")
        if len(w.shape) == len(logits.shape):
            w = ops.squeeze(w, axis=-1)
        valid = ops.logical_and(valid, ops.greater(w, 0.0))
    w = ops.where(valid, w, 0.0)
    y = ops.where(valid, y, 0)
    logits = ops.where(ops.expand_dims(valid, -1), logits, 0.0)
    return y, logits, w, valid


def pixel_cross_entropy(y, logits):
    """-log softmax(logits)[y] per pixel, computed stably as logsumexp(logits) - logits[y]."""
    picked = ops.take_along_axis(logits, ops.expand_dims(y, -1), axis=-1)[..., 0]
    return ops.logsumexp(logits, axis=-1) - picked


@keras.saving.register_keras_serializable(package="landcover")
class MaskedLoss(keras.losses.Loss):
    """Masked cross-entropy, focal, Dice or cross-entropy + Dice loss from logits.

    Args:
        kind: ``ce``, ``focal``, ``dice`` or ``ce+dice``.
        num_classes: K (needed by Dice).
        ignore_label: label value of pixels without a usable label.
        focal_gamma: focal exponent (``focal`` only).
        dice_weight: weight of the Dice term in ``ce+dice``.
    """

    def __init__(self, kind: str = "ce", num_classes: int = 2, ignore_label: int = IGNORE,
                 focal_gamma: float = 2.0, dice_weight: float = 1.0, name: str | None = None,
                 **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name or f"masked_{kind}", reduction="none", **kwargs)
        if kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss kind {kind!r}")
        self.kind = kind
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.focal_gamma = float(focal_gamma)
        self.dice_weight = float(dice_weight)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y, logits, w, valid = _prepare(y_true, y_pred, sample_weight, self.ignore_label)
        n_valid = ops.maximum(ops.sum(ops.cast(valid, "float32")), 1.0)
        total = ops.zeros((), "float32")
        if self.kind in ("ce", "focal", "ce+dice"):
            ce = pixel_cross_entropy(y, logits)
            if self.kind == "focal":
                p_true = ops.exp(-ce)
                ce = ops.power(1.0 - p_true, self.focal_gamma) * ce
            total = total + ops.sum(w * ce) / n_valid
        if self.kind in ("dice", "ce+dice"):
            dice = soft_dice_loss(y, logits, w, self.num_classes)
            total = total + (self.dice_weight if self.kind == "ce+dice" else 1.0) * dice
        return total

    def call(self, y_true, y_pred):  # pragma: no cover - __call__ does the whole job
        return self(y_true, y_pred)

    def get_config(self):
        return {"kind": self.kind, "num_classes": self.num_classes,
                "ignore_label": self.ignore_label, "focal_gamma": self.focal_gamma,
                "dice_weight": self.dice_weight, "name": self.name}


def soft_dice_loss(y, logits, w, num_classes: int, smooth: float = 1.0):
    """1 - mean soft Dice over classes, pixels weighted by ``w`` (0 = excluded)."""
    probs = ops.softmax(logits, axis=-1)
    onehot = ops.one_hot(y, num_classes, dtype="float32")
    m = ops.expand_dims(w, -1)
    axes = tuple(range(len(probs.shape) - 1))
    inter = ops.sum(m * probs * onehot, axis=axes)
    denom = ops.sum(m * probs, axis=axes) + ops.sum(m * onehot, axis=axes)
    dice = (2.0 * inter + smooth) / (denom + smooth)
    return 1.0 - ops.mean(dice)
