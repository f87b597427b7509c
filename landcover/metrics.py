"""A masked confusion-matrix metric for dense targets (``keras`` and ``keras.ops`` only).

Keras' ``metrics=`` ignore ``sample_weight`` (they would count cloud pixels); this metric applies the
same mask as the loss instead: pixels with the ignore label or weight 0 are not counted. It counts
pixels, not weights: class weights steer training, never the scores. Its result is the mean IoU;
:func:`landcover.scores.scores` derives every other figure from :attr:`ConfusionMatrix.matrix`.
"""

from __future__ import annotations

import keras
from keras import ops

from landcover.contract import IGNORE



@keras.saving.register_keras_serializable(package="landcover")
class ConfusionMatrix(keras.metrics.Metric):
    """Accumulates a (K, K) confusion matrix of argmax(logits) against integer labels."""

    def __init__(self, num_classes: int, ignore_label: int = IGNORE, name: str = "miou",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.matrix = self.add_variable(shape=(self.num_classes, self.num_classes),
                                        initializer="zeros", dtype="int32", name="matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = self.num_classes
        y = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        pred = ops.reshape(ops.argmax(ops.cast(y_pred, "float32"), axis=-1), (-1,))
        valid = ops.logical_and(ops.not_equal(y, self.ignore_label),
                                ops.logical_and(ops.greater_equal(y, 0), ops.less(y, k)))
        if sample_weight is not None:
            w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            valid = ops.logical_and(valid, ops.greater(w, 0.0))
        # counts[i, j] = sum over pixels of [y == i] * [pred == j] * valid, as one small matmul
        # (ops.bincount needs a static length under JAX's jit; this works on every backend)
        ref = ops.one_hot(ops.where(valid, y, 0), k, dtype="float32")
        hit = ops.one_hot(ops.cast(pred, "int32"), k, dtype="float32") * ops.expand_dims(
            ops.cast(valid, "float32"), -1)
        counts = ops.matmul(ops.transpose(ref), hit)
        self.matrix.assign_add(ops.cast(counts, "int32"))  # exact integer counts

    def result(self):
        m = ops.cast(self.matrix, "float32")
        tp = ops.diagonal(m)
        ref = ops.sum(m, axis=1)
        union = ref + ops.sum(m, axis=0) - tp
        present = ops.cast(ops.greater(ref, 0.0), "float32")
        iou = tp / ops.maximum(union, 1.0)
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.matrix.assign(ops.zeros((self.num_classes, self.num_classes), "int32"))

    def get_config(self):
        return {"num_classes": self.num_classes, "ignore_label": self.ignore_label,
                "name": self.name}
