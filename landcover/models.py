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


def _levels(size: int, depth: int) -> tuple[int, int]:
    """Padding (before, after) that makes ``size`` divisible by 2**depth."""
    step = 2**depth
    pad = (-size) % step
    return pad // 2, pad - pad // 2


def _conv_block(x, filters: int, kernel: int, batch_norm: bool, dropout: float, name: str,
                time_distributed: bool = False):
    def wrap(layer):
        return layers.TimeDistributed(layer, name=f"{layer.name}_td") if time_distributed else layer

    for i in (1, 2):
        x = wrap(layers.Conv2D(filters, kernel, padding="same", use_bias=not batch_norm,
                               name=f"{name}_conv{i}"))(x)
        if batch_norm:
            x = wrap(layers.BatchNormalization(name=f"{name}_bn{i}"))(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout > 0:
        x = wrap(layers.SpatialDropout2D(dropout, name=f"{name}_drop"))(x)
    return x


def _decoder(x, skips, filters: int, kernel: int, batch_norm: bool, dropout: float):
    for level in reversed(range(len(skips))):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same",
                                   name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"skip{level + 1}")([x, skips[level]])
        x = _conv_block(x, filters * 2**level, kernel, batch_norm, dropout, f"dec{level + 1}")
    return x


def build_model(spec: Mapping, input_shape, num_classes: int) -> keras.Model:
    """Build an uncompiled model.

    Args:
        spec: the ``train.model`` config as a mapping (architecture, filters, layers, kernel,
            head_kernel, dropout, batch_norm).
        input_shape: (time, height, width, features); time may be None except for ``unet``.
        num_classes: number of output logits per pixel.
    """
    arch = spec["architecture"]
    filters, depth, kernel = int(spec["filters"]), int(spec["layers"]), int(spec["kernel"])
    dropout, bn = float(spec["dropout"]), bool(spec["batch_norm"])
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
            if bn:
                x = layers.BatchNormalization(name=f"convlstm{i + 1}_bn")(x)
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
            if bn:
                x = layers.BatchNormalization(name="bottleneck_bn")(x)
        x = _decoder(x, skips, filters, kernel, bn, dropout)
        x = layers.Cropping2D(((top, bottom), (left, right)), name="crop")(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
    logits = layers.Conv2D(num_classes, int(spec["head_kernel"]), padding="same",
                           dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=arch)
