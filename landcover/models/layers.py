"""Keras code shared by the architectures: custom layers, normalisation, U-Net blocks, the head.

The classes keep their registered names (``landcover>TemporalMean``, ``landcover>ClassMask``) so
bundles written before this package existed still load with ``safe_mode=True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
import numpy as np
from keras import layers, ops

from landcover.models.base import Architecture, norm_of


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


@keras.saving.register_keras_serializable(package="landcover")
class ValidMask(layers.Layer):
    """The validity mask ``(B, T, H, W)`` of a series: its ``index`` feature channel (1 valid,
    0 masked or padded), or ones when ``index`` is None (every date counts)."""

    def __init__(self, index=None, **kwargs):
        super().__init__(**kwargs)
        self.index = None if index is None else int(index)

    def call(self, x):
        if self.index is None:
            return ops.ones_like(x[..., 0])
        return ops.cast(x[..., self.index] > 0.5, x.dtype)

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="landcover")
class DayEncoding(layers.Layer):
    """Adds the sinusoidal encoding of the acquisition day to every pixel's features:
    ``[x (B, T, H, W, D), days (B, T)] -> x + PE(days)``, with ``PE_2i = sin(day / period^(2i/D))``
    and ``PE_2i+1`` the cosine (Vaswani et al. 2017; L-TAE uses ``period`` 1000 with days since a
    reference date). The encoding has no weights: a day the model never saw still gets a smooth
    position between the ones it saw."""

    def __init__(self, period=1000.0, **kwargs):
        super().__init__(**kwargs)
        self.period = float(period)

    def call(self, inputs):
        x, days = inputs
        d = x.shape[-1]
        half = d // 2
        i = ops.arange(half, dtype="float32")
        freq = ops.power(self.period, -2.0 * i / d)  # (half,)
        angle = ops.cast(days, "float32")[..., None] * freq  # (B, T, half)
        pe = ops.concatenate([ops.sin(angle), ops.cos(angle)], axis=-1)
        if 2 * half < d:
            pe = ops.pad(pe, ((0, 0), (0, 0), (0, d - 2 * half)))
        return x + ops.cast(pe, x.dtype)[:, :, None, None, :]

    def get_config(self):
        return {**super().get_config(), "period": self.period}


@keras.saving.register_keras_serializable(package="landcover")
class InputFeatures(layers.Layer):
    """The network's inputs made inside the network from the digital numbers of a series, as
    :mod:`landcover.features` makes them on the host with ``fill: zero`` (the same float32
    operations in the same order as :func:`landcover.stack.scale_dn` then
    :func:`landcover.features._date_features`): ``[dn (N, T, B, H, W) any number type, valid
    (N, T, H, W) 0/1, dates (N, T, 4B + 2) float32]`` -> ``(N, T, H, W, B + 1 (+ 2))`` float32.

    ``dates`` holds, per date and band, the ``scale`` and ``offset`` (reflectance = DN x scale +
    offset) and the normalisation's ``mean`` and ``std``, then the sine and cosine of the date's
    day of year (used with ``doy``). They are inputs, not constants: TensorFlow's graph optimiser
    rewrites arithmetic with constants (a division by a constant became a multiplication by its
    reciprocal: 2e-6 off the host's features), not with inputs. Computes in float32 whatever the
    dtype policy (a mixed-precision network casts the features as it casts the host's). The
    digital numbers travel in their own type, band-first as they are read: uint16 DNs are a
    sixth of the bytes of the float32 features (6 bands against 9 features)."""

    def __init__(self, doy: bool = True, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.doy = bool(doy)

    def call(self, inputs):
        dn, valid, dates = inputs
        nb = dn.shape[2]
        x = ops.transpose(ops.cast(dn, "float32"), (0, 1, 3, 4, 2))  # (N, T, H, W, B)
        at = dates[:, :, None, None, :]  # one value per window, date (and band)
        refl = x * at[..., :nb] + at[..., nb:2 * nb]
        z = (refl - at[..., 2 * nb:3 * nb]) / at[..., 3 * nb:4 * nb]
        ok = ops.cast(valid, "bool")[..., None]
        parts = [ops.where(ok, z, ops.zeros_like(z)), ops.cast(ok, "float32")]
        if self.doy:
            ones = ops.ones_like(parts[1])
            parts += [ones * at[..., 4 * nb:4 * nb + 1], ones * at[..., 4 * nb + 1:4 * nb + 2]]
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        n, t, b, h, w = input_shape[0]
        return (n, t, h, w, b + 1 + (2 if self.doy else 0))

    def get_config(self):
        return {**super().get_config(), "doy": self.doy}


def collapse(x, attn):
    """``sum_t attn[..., head(c)] * x[..., c]``: ``x (B, T, h, w, C)`` collapsed over time with
    the attention ``(B, T, h, w, heads)`` of the head owning each group of ``C / heads``
    channels."""
    group = x.shape[-1] // attn.shape[-1]
    return ops.sum(ops.repeat(ops.cast(attn, x.dtype), group, axis=-1) * x, axis=1)


@keras.saving.register_keras_serializable(package="landcover")
class TemporalAttention(layers.Layer):
    """The lightweight temporal attention of L-TAE (Garnot & Landrieu 2020), per pixel.

    ``[x (B, T, H, W, D), valid (B, T, H, W)] -> [out (B, H, W, D), attention (B, T, H, W,
    heads)]``: keys are a linear map of each date's features; each head has one learned master
    query; the channels are split into ``heads`` groups, and each group is averaged over the dates
    with its head's softmax attention. Invalid observations get a logit of -1e9 (computed in
    float32) and their weight is then set to exactly 0: a pixel without any valid date gets
    zero attention and zero output, never NaN.
    """

    def __init__(self, heads=4, key_dim=8, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_dim = int(heads), int(key_dim)

    def build(self, input_shape):
        d = input_shape[0][-1]
        if d % self.heads:
            raise ValueError(f"{d} channels cannot be split into {self.heads} heads")
        self.key = self.add_weight(shape=(d, self.heads * self.key_dim), name="key",
                                   initializer="glorot_uniform")
        self.key_bias = self.add_weight(shape=(self.heads * self.key_dim,), name="key_bias",
                                        initializer="zeros")
        self.query = self.add_weight(shape=(self.heads, self.key_dim), name="query",
                                     initializer=keras.initializers.RandomNormal(
                                         stddev=(2.0 / self.key_dim) ** 0.5))

    def call(self, inputs):
        x, valid = inputs
        # q_n . (x W + b)_n for every head n, without forming the keys (same weights as L-TAE)
        w = ops.reshape(ops.cast(self.key, "float32"), (-1, self.heads, self.key_dim))
        b = ops.reshape(ops.cast(self.key_bias, "float32"), (self.heads, self.key_dim))
        q = ops.cast(self.query, "float32")
        wq = ops.sum(w * q[None], axis=-1)  # (D, heads)
        logits = ops.matmul(ops.cast(x, "float32"), wq) + ops.sum(b * q, axis=-1)
        logits = logits / self.key_dim**0.5  # (B, T, H, W, heads)
        ok = ops.cast(valid, "float32")[..., None] > 0.5
        logits = ops.where(ok, logits, -1e9)
        attn = ops.softmax(logits, axis=1) * ops.cast(ok, "float32")
        return collapse(x, attn), attn

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim}


@keras.saving.register_keras_serializable(package="landcover")
class MaskedCollapse(layers.Layer):
    """U-TAE's temporal collapse of a skip level: ``[x (B, T, h, w, C), attention (B, T, h, w,
    heads), valid (B, T, h, w)] -> (B, h, w, C)``. The (upsampled) attention is set to 0 where the
    level's pixel is invalid and renormalised over its valid dates (zero where none is)."""

    def call(self, inputs):
        x, attn, valid = inputs
        a = ops.cast(attn, "float32") * ops.cast(valid, "float32")[..., None]
        total = ops.sum(a, axis=1, keepdims=True)
        a = a / ops.maximum(total, 1e-6)
        return collapse(x, a)


@keras.saving.register_keras_serializable(package="landcover")
class FoldTime(layers.Layer):
    """``(B, T, H, W, C) -> (B*T, H, W, C)`` (a mask ``(B, T, H, W)`` gets a channel axis): the
    dates as a batch for a per-date encoder with shared weights, in one call (``TimeDistributed``
    loops over the dates or maps over them)."""

    def call(self, x):
        if len(x.shape) == 4:
            x = x[..., None]
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape[2:]) + ((1,) if len(input_shape) == 4 else ())
        return (None, *rest)


@keras.saving.register_keras_serializable(package="landcover")
class UnfoldTime(layers.Layer):
    """``[x (B*T, h, w, C), series (B, T, ...)] -> (B, T, h, w, C)``: undoes :class:`FoldTime`."""

    def call(self, inputs):
        x, ref = inputs
        shape = ops.shape(ref)
        return ops.reshape(x, (shape[0], shape[1], *x.shape[1:]))

    def compute_output_shape(self, input_shape):
        x, ref = input_shape
        return (ref[0], ref[1], *x[1:])


# ------------------------------------------------------------ ConvLSTM streamed for inference
class ConvLSTMStep(layers.Layer):
    """One date of a trained ``ConvLSTM2D`` layer, for inference: ``(x (B, H, W, F), [h, c])
    -> (h, [h, c])``. The four gates come from one convolution of ``[x, h]`` with the layer's
    input and recurrent kernels stacked (Keras' cell makes eight convolutions and adds them):
    the same arithmetic up to float rounding, fewer small operations, and a step that needs the
    previous state before it starts, so a loop cannot run the input convolutions of later dates
    ahead and hold their outputs.

    ``conv_dtype``: the dtype the convolution computes in, where it is not the layer's own (the
    step of a ``bfloat16`` network computes in float32 and convolves in bfloat16, see
    :class:`StreamedConvLSTM`); None: the layer's compute dtype."""

    def __init__(self, filters, kernel_size, activation="tanh", recurrent_activation="sigmoid",
                 conv_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.conv_dtype = conv_dtype
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=self.kernel_size + (input_shape[-1] + self.filters, 4 * self.filters),
            name="kernel")
        self.bias = self.add_weight(shape=(4 * self.filters,), name="bias", initializer="zeros")

    def call(self, x, states):
        h, c = states
        xh = ops.concatenate([x, h], axis=-1)
        if self.conv_dtype is None or self.conv_dtype == self.compute_dtype:
            z = ops.conv(xh, self.kernel, padding="same")
        else:  # rounded to conv_dtype for the convolution alone
            z = ops.cast(ops.conv(ops.cast(xh, self.conv_dtype),
                                  ops.cast(self.kernel, self.conv_dtype), padding="same"),
                         self.compute_dtype)
        z = z + self.bias
        n = self.filters  # Keras' gate order: input, forget, cell, output
        i = self.recurrent_activation(z[..., :n])
        f = self.recurrent_activation(z[..., n:2 * n])
        c = f * c + i * self.activation(z[..., 2 * n:3 * n])
        h = self.recurrent_activation(z[..., 3 * n:]) * self.activation(c)
        return h, [h, c]

    def take(self, layer) -> None:
        """The weights of the trained ``ConvLSTM2D`` ``layer``."""
        cell = layer.cell
        if (tuple(cell.strides) != (1, 1) or tuple(cell.dilation_rate) != (1, 1)
                or cell.padding != "same" or not cell.use_bias
                or cell.activation is not self.activation
                or cell.recurrent_activation is not self.recurrent_activation):
            raise ValueError(f"{layer.name}: only stride 1, dilation 1, 'same' padding, a bias "
                             "and this step's activations can be streamed")
        kernel, recurrent, bias = (ops.convert_to_numpy(w) for w in
                                   (cell.kernel, cell.recurrent_kernel, cell.bias))
        self.set_weights([np.concatenate([kernel, recurrent], axis=2), bias])


class ConvLSTMStack(layers.Layer):
    """The RNN cell of :class:`StreamedConvLSTM`: one date through every layer of the
    ``convlstm`` stack (:class:`ConvLSTMStep` s and the normalisations between them); its states
    are each layer's ``h`` and ``c``, its output the last layer's ``h``."""

    def __init__(self, filters, depth, kernel, norm, activation="tanh",
                 recurrent_activation="sigmoid", conv_dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.depth = int(filters), int(depth)
        self.steps = [ConvLSTMStep(filters, (kernel, kernel), activation, recurrent_activation,
                                   conv_dtype, name=f"convlstm{i + 1}", dtype=self.dtype_policy)
                      for i in range(self.depth)]
        self.norms = [norm_layer(norm, filters, f"convlstm{i + 1}", dtype=self.dtype_policy)
                      for i in range(depth - 1)]
        self.state_size = [-1] * (2 * self.depth)  # states shaped like the images (see below)

    def build(self, input_shape):
        self.spatial = tuple(input_shape[1:-1])
        shape = tuple(input_shape)
        for k, step in enumerate(self.steps):
            step.build(shape)
            shape = shape[:-1] + (self.filters,)
            if k < len(self.norms) and self.norms[k] is not None:
                self.norms[k].build(shape)

    def get_initial_state(self, batch_size=None):
        zero = ops.zeros((batch_size, *self.spatial, self.filters), dtype=self.compute_dtype)
        return [zero] * (2 * self.depth)

    def call(self, x, states, training=False):
        new = []
        for k, step in enumerate(self.steps):
            x, hc = step(x, states[2 * k:2 * k + 2])
            new += hc
            if k < len(self.norms) and self.norms[k] is not None:
                x = self.norms[k](x, training=training)
        return x, new


class StreamedConvLSTM(layers.RNN):
    """The ``convlstm`` network's stack of ``ConvLSTM2D`` layers as one recurrence over the
    dates, for inference: ``(B, T, H, W, F) -> (B, H, W, filters)``, the last layer's final
    state before its normalisation. Only each layer's states are kept from one date to the next,
    so memory does not grow with the number of dates (the trained network keeps every date's
    output of every layer but the last).

    Under a mixed precision policy (``mixed_bfloat16``, ``mixed_float16``) only the convolutions
    compute in its half type (``conv_dtype``; None: the policy's); the gates, the states and the
    normalisations between the layers compute in float32, as in the trained network. On a CPU,
    TensorFlow's elementwise bfloat16 operations are slower than float32's (a 244 px step:
    gates 10 ms in bfloat16, 6 in float32, convolution 3), and the cell state keeps float32's
    precision over the dates (README, "Classifying": Precision)."""

    def __init__(self, filters, depth, kernel, norm, conv_dtype=None, **kwargs):
        conv_dtype = conv_dtype or keras.config.dtype_policy().compute_dtype
        kwargs["dtype"] = "float32"
        super().__init__(ConvLSTMStack(filters, depth, kernel, norm, conv_dtype=conv_dtype,
                                       dtype="float32"), **kwargs)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        return (sequences_shape[0], *sequences_shape[2:-1], self.cell.filters)

    def take_weights(self, trained: keras.Model) -> None:
        """The weights of the ``convlstm`` network ``trained`` (layers by name)."""
        for step in self.cell.steps:
            step.take(trained.get_layer(step.name))
        for norm in self.cell.norms:
            if norm is not None:
                norm.set_weights(trained.get_layer(norm.name).get_weights())


CUSTOM_OBJECTS = {"TemporalMean": TemporalMean, "ClassMask": ClassMask, "ValidMask": ValidMask,
                  "FoldTime": FoldTime, "UnfoldTime": UnfoldTime,
                  "DayEncoding": DayEncoding, "TemporalAttention": TemporalAttention,
                  "MaskedCollapse": MaskedCollapse, "InputFeatures": InputFeatures}


def ltae_block(x, days, valid, d_model: int, heads: int, key_dim: int, dropout: float,
               name: str):
    """L-TAE on ``x (B, T, H, W, C)``: a linear map to ``d_model`` channels, layer norm, the day
    encoding, the temporal attention, an MLP. Returns ``(features (B, H, W, d_model), attention
    (B, T, H, W, heads))``."""
    x = layers.Dense(d_model, name=f"{name}_in")(x)
    x = layers.LayerNormalization(name=f"{name}_in_ln")(x)
    x = DayEncoding(name=f"{name}_days")([x, days])
    out, attn = TemporalAttention(heads, key_dim, name=f"{name}_attention")([x, valid])
    out = layers.Dense(d_model, activation="relu", name=f"{name}_mlp")(out)
    out = layers.LayerNormalization(name=f"{name}_out_ln")(out)
    if dropout > 0:
        out = layers.Dropout(dropout, name=f"{name}_drop")(out)
    return out, attn


def attention_hyper(spec: Mapping) -> tuple[int, int]:
    """``(heads, key_dim)`` of a ``train.model`` spec."""
    from landcover.models.base import DEFAULT_HEADS, DEFAULT_KEY_DIM

    return int(spec.get("heads", DEFAULT_HEADS)), int(spec.get("key_dim", DEFAULT_KEY_DIM))


def hyper(spec: Mapping) -> tuple[int, int, int, float, str]:
    """``(filters, layers, kernel, dropout, norm)`` of a ``train.model`` spec."""
    return (int(spec["filters"]), int(spec["layers"]), int(spec["kernel"]),
            float(spec["dropout"]), norm_of(spec))


def level_padding(size: int, depth: int) -> tuple[int, int]:
    """Padding (before, after) that makes ``size`` divisible by 2**depth."""
    step = 2**depth
    pad = (-size) % step
    return pad // 2, pad - pad // 2


def norm_layer(kind: str, filters: int, name: str, dtype=None):
    """``batch``: BatchNormalization (statistics of the batch in training, moving averages in
    inference); ``group``: GroupNormalization over the patch (groups of 4 channels); ``layer``:
    LayerNormalization of each pixel's channels (the same in training and inference, and
    independent of the window); ``none``."""
    if kind == "batch":
        return layers.BatchNormalization(name=f"{name}_bn", dtype=dtype)
    if kind == "group":
        return layers.GroupNormalization(groups=math.gcd(filters, max(1, filters // 4)),
                                         name=f"{name}_gn", dtype=dtype)
    if kind == "layer":
        return layers.LayerNormalization(name=f"{name}_ln", dtype=dtype)
    return None


def conv_block(x, filters: int, kernel: int, norm: str, dropout: float, name: str,
                time_distributed: bool = False):
    """Two ``kernel`` convolutions of ``filters``, each with its ``norm`` (:func:`norm_layer`) and a
    ReLU, then spatial dropout; with ``time_distributed``, applied to every date alike."""
    def wrap(layer):
        return layers.TimeDistributed(layer, name=f"{layer.name}_td") if time_distributed else layer

    for i in (1, 2):
        x = wrap(layers.Conv2D(filters, kernel, padding="same", use_bias=norm == "none",
                               name=f"{name}_conv{i}"))(x)
        layer = norm_layer(norm, filters, f"{name}_norm{i}")
        if layer is not None:
            x = wrap(layer)(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout > 0:
        x = wrap(layers.SpatialDropout2D(dropout, name=f"{name}_drop"))(x)
    return x


def decoder(x, skips, filters: int, kernel: int, norm: str, dropout: float):
    """The U-Net decoder: up-sample, join the skip of the level, :func:`conv_block`, from the
    deepest level up."""
    for level in reversed(range(len(skips))):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same",
                                   name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"skip{level + 1}")([x, skips[level]])
        x = conv_block(x, filters * 2**level, kernel, norm, dropout, f"dec{level + 1}")
    return x


def assemble(arch: Architecture, spec: Mapping, input_shape: tuple, num_classes: int,
             absent=(), valid_channel: int | None = None,
             streamed: bool = False) -> keras.Model:
    """The whole network: the ``series`` input (and for ``takes_dates`` architectures the ``days``
    input and the validity mask), ``arch``'s body (``streamed``: its streamed restatement), the
    ``logits`` convolution (float32 under mixed precision) and, for ``absent`` classes, the
    ``class_mask``."""
    builder = arch.build_body(streamed)
    inputs = keras.Input(input_shape, name="series")
    if arch.takes_dates:
        days = keras.Input((input_shape[0],), name="days")
        valid = ValidMask(valid_channel, name="valid_mask")(inputs)
        x = builder(inputs, spec, days, valid)
        inputs = [inputs, days]
    else:
        x = builder(inputs, spec)
    if int(spec.get("head_units") or 0):
        x = layers.Conv2D(int(spec["head_units"]), 1, activation="relu", name="head_hidden")(x)
    logits = layers.Conv2D(num_classes, int(spec["head_kernel"]), padding="same",
                           dtype="float32", name="logits")(x)
    if absent:
        logits = ClassMask(absent, dtype="float32", name="class_mask")(logits)
    return keras.Model(inputs, logits, name=arch.name)
