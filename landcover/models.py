"""Model architectures (``keras`` and ``keras.ops`` only, so they run on TensorFlow and JAX).

All models map a series ``(time, height, width, features)`` to class **logits** ``(height, width,
classes)``: no softmax (it is applied only when probabilities are written). The spatial size is fixed
when a model is built (Keras' ConvLSTM2D needs static spatial shapes); the weights do not depend on
it, so :func:`build_model` can rebuild the same network for another window size and take the weights.

``convlstm``       a stack of ConvLSTM2D layers, the last returning only its final state, then a
                   convolution to logits (the classic setup); any number of dates.
``unet``           a U-Net on the dates stacked as channels (a fixed number of dates; with one date
                   it is a single-date U-Net).
``unet_convlstm``  a U-Net whose encoder runs on every date with shared weights, a ConvLSTM2D at the
                   bottleneck, and skip connections averaged over time; any number of dates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
from keras import layers, ops

ARCHITECTURES = ("convlstm", "unet", "unet_convlstm")


@keras.saving.register_keras_serializable(package="landcover")
class TemporalMean(layers.Layer):
    """Mean over the time axis: (B, T, H, W, C) -> (B, H, W, C)."""

    def call(self, x):
        return ops.mean(x, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])


@keras.saving.register_keras_serializable(package="landcover")
class ClassMask(layers.Layer):
    """Removes classes from the output: their logits become -1e4 (probability 0 after softmax).

    Used for classes without training pixels: a network that never saw a class must not predict
    it (their logits would only carry their random initial bias)."""

    def __init__(self, absent=(), **kwargs):
        super().__init__(**kwargs)
        self.absent = [int(i) for i in absent]

    def call(self, x):
        k = x.shape[-1]
        keep = [0.0 if i in self.absent else 1.0 for i in range(k)]
        keep = ops.convert_to_tensor(keep, dtype=x.dtype)
        return x * keep + (keep - 1.0) * 1e4

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "absent": self.absent}


def _levels(size: int, depth: int) -> tuple[int, int]:
    """Padding (before, after) that makes ``size`` divisible by 2**depth."""
    step = 2**depth
    pad = (-size) % step
    return pad // 2, pad - pad // 2


NORMS = ("batch", "group", "layer", "none")


def norm_of(spec: Mapping) -> str:
    """The normalisation of a model spec (bundles before ``norm`` had ``batch_norm: bool``)."""
    if "norm" in spec:
        return str(spec["norm"])
    return "batch" if spec.get("batch_norm", True) else "none"


def _norm_layer(kind: str, filters: int, name: str):
    """``batch``: BatchNormalization (statistics of the batch in training, moving averages in
    inference); ``group``: GroupNormalization over the patch (groups of 4 channels); ``layer``:
    LayerNormalization of each pixel's channels (the same in training and inference, and
    independent of the window); ``none``."""
    if kind == "batch":
        return layers.BatchNormalization(name=f"{name}_bn")
    if kind == "group":
        return layers.GroupNormalization(groups=math.gcd(filters, max(1, filters // 4)),
                                         name=f"{name}_gn")
    if kind == "layer":
        return layers.LayerNormalization(name=f"{name}_ln")
    return None


def _conv_block(x, filters: int, kernel: int, norm: str, dropout: float, name: str,
                time_distributed: bool = False):
    def wrap(layer):
        return layers.TimeDistributed(layer, name=f"{layer.name}_td") if time_distributed else layer

    for i in (1, 2):
        x = wrap(layers.Conv2D(filters, kernel, padding="same", use_bias=norm == "none",
                               name=f"{name}_conv{i}"))(x)
        layer = _norm_layer(norm, filters, f"{name}_norm{i}")
        if layer is not None:
            x = wrap(layer)(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout > 0:
        x = wrap(layers.SpatialDropout2D(dropout, name=f"{name}_drop"))(x)
    return x


def _decoder(x, skips, filters: int, kernel: int, norm: str, dropout: float):
    for level in reversed(range(len(skips))):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same",
                                   name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"skip{level + 1}")([x, skips[level]])
        x = _conv_block(x, filters * 2**level, kernel, norm, dropout, f"dec{level + 1}")
    return x


def build_model(spec: Mapping, input_shape, num_classes: int, absent=()) -> keras.Model:
    """Build an uncompiled model.

    Args:
        spec: the ``train.model`` config as a mapping (architecture, filters, layers, kernel,
            head_kernel, dropout, norm; or batch_norm in bundles written before norm).
        input_shape: (time, height, width, features); time may be None except for ``unet``.
        num_classes: number of output logits per pixel.
        absent: class indices the model must never predict (no training pixels): a
            :class:`ClassMask` after the logits.
    """
    arch = spec["architecture"]
    filters, depth, kernel = int(spec["filters"]), int(spec["layers"]), int(spec["kernel"])
    dropout, bn = float(spec["dropout"]), norm_of(spec)
    t, h, w, f = input_shape
    if arch == "unet" and t is None:
        raise ValueError("the unet architecture stacks dates as channels: the number of dates "
                         "must be fixed")
    inputs = keras.Input((t, h, w, f), name="series")
    if arch == "convlstm":
        x = inputs
        for i in range(depth):
            last = i == depth - 1
            x = layers.ConvLSTM2D(filters, kernel, padding="same", return_sequences=not last,
                                  dropout=dropout, name=f"convlstm{i + 1}")(x)
            layer = _norm_layer(bn, filters, f"convlstm{i + 1}")
            if layer is not None:
                x = layer(x)
    elif arch in ("unet", "unet_convlstm"):
        (top, bottom), (left, right) = _levels(h, depth), _levels(w, depth)
        if arch == "unet":
            x = layers.Permute((2, 3, 1, 4), name="dates_last")(inputs)
            x = layers.Reshape((h, w, t * f), name="stack_dates")(x)
            x = layers.ZeroPadding2D(((top, bottom), (left, right)), name="pad")(x)
            skips = []
            for level in range(depth):
                x = _conv_block(x, filters * 2**level, kernel, bn, dropout, f"enc{level + 1}")
                skips.append(x)
                x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
            x = _conv_block(x, filters * 2**depth, kernel, bn, dropout, "bottleneck")
        else:
            x = layers.TimeDistributed(layers.ZeroPadding2D(((top, bottom), (left, right))),
                                       name="pad")(inputs)
            skips = []
            for level in range(depth):
                x = _conv_block(x, filters * 2**level, kernel, bn, dropout, f"enc{level + 1}",
                                time_distributed=True)
                skips.append(TemporalMean(name=f"skip{level + 1}_mean")(x))
                x = layers.TimeDistributed(layers.MaxPooling2D(2), name=f"pool{level + 1}")(x)
            x = layers.ConvLSTM2D(filters * 2**depth, kernel, padding="same",
                                  return_sequences=False, dropout=dropout,
                                  name="bottleneck_convlstm")(x)
            layer = _norm_layer(bn, filters * 2**depth, "bottleneck")
            if layer is not None:
                x = layer(x)
        x = _decoder(x, skips, filters, kernel, bn, dropout)
        x = layers.Cropping2D(((top, bottom), (left, right)), name="crop")(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
    logits = layers.Conv2D(num_classes, int(spec["head_kernel"]), padding="same",
                           dtype="float32", name="logits")(x)
    if absent:
        logits = ClassMask(absent, dtype="float32", name="class_mask")(logits)
    return keras.Model(inputs, logits, name=arch)
