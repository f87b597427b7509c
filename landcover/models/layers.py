"""Keras code shared by the architectures: custom layers, normalisation, U-Net blocks, the head.

The classes keep their registered names (``landcover>TemporalMean``, ``landcover>ClassMask``) so
bundles written before this package existed still load with ``safe_mode=True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
from keras import layers, ops

from landcover.models import Architecture, norm_of


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


CUSTOM_OBJECTS = {"TemporalMean": TemporalMean, "ClassMask": ClassMask}


def hyper(spec: Mapping) -> tuple[int, int, int, float, str]:
    """``(filters, layers, kernel, dropout, norm)`` of a ``train.model`` spec."""
    return (int(spec["filters"]), int(spec["layers"]), int(spec["kernel"]),
            float(spec["dropout"]), norm_of(spec))


def _levels(size: int, depth: int) -> tuple[int, int]:
    """Padding (before, after) that makes ``size`` divisible by 2**depth."""
    step = 2**depth
    pad = (-size) % step
    return pad // 2, pad - pad // 2


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


def assemble(arch: Architecture, spec: Mapping, input_shape: tuple, num_classes: int,
             absent=()) -> keras.Model:
    """The whole network: the ``series`` input, ``arch``'s body, the ``logits`` convolution
    (float32 under mixed precision) and, for ``absent`` classes, the ``class_mask``."""
    inputs = keras.Input(input_shape, name="series")
    x = arch.build_body()(inputs, spec)
    logits = layers.Conv2D(num_classes, int(spec["head_kernel"]), padding="same",
                           dtype="float32", name="logits")(x)
    if absent:
        logits = ClassMask(absent, dtype="float32", name="class_mask")(logits)
    return keras.Model(inputs, logits, name=arch.name)
