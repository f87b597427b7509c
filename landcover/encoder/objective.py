"""The masked-observation objective: hide observations, reconstruct them from the rest.

For a batch of windows ``x (B, T, H, W, F)`` (the training features: standardised bands, the
``valid`` channel, day of year), :func:`hide` draws

* **hidden observations**: each valid observation (pixel x date) with probability ``hide``; the
  encoder sees it as missing, exactly as a cloudy one (``valid`` 0, its bands filled by the
  dataset's rule, ``fill: zero`` or ``linear``, from the observations it still sees);
* **hidden bands**: each band of the other valid observations with probability ``hide_bands``,
  set to 0 (the band's mean), so single-date stacks have something to learn too.

The target is the original standardised bands; the loss weight is 1 on the hidden observations'
bands and the hidden bands, and only where the observation was valid: cloudy, shadowed, filled or
padded observations are never a target, and since the fill rule is applied again after hiding,
their stored values never reach the encoder either. Changing them changes nothing (a test checks
both).

The network (:func:`build_pretrain_model`) is the classifier's body (:mod:`landcover.models`, the
same layers and names, so its weights go to a classifier by name) with a reconstruction head in
place of the logits: the body's features of each pixel ``(B, H, W, C)`` repeated over the dates,
a dense layer, the sinusoidal encoding of each date's day (a recurrent body keeps no per-date
output; the head asks the summary for the observation of a given day), a dense layer to the bands.
The loss is the mean squared error over the weighted entries (:class:`MaskedReconstruction`).
Model and loss code uses ``keras`` and ``keras.ops`` only.
"""

from __future__ import annotations

import functools

import numpy as np

from landcover.features import interpolate_time

HEAD_UNITS = 64


def hide(x: np.ndarray, days: np.ndarray, n_bands: int, fill: str, rng: np.random.Generator,
         share: float, band_share: float) -> tuple[np.ndarray, np.ndarray]:
    """``(encoder input, target)`` of the windows ``x (B, T, H, W, F)``: the input with the drawn
    observations and bands hidden (see the module's docstring); the target ``(B, T, H, W,
    2 * n_bands)``: the original bands, then the loss weight of each."""
    valid = x[..., n_bands] > 0.5
    hidden = valid & (rng.random(valid.shape) < share)
    bands_hidden = (valid & ~hidden)[..., None] & (rng.random(valid.shape + (n_bands,))
                                                    < band_share)
    seen = valid & ~hidden
    z = np.where(seen[..., None], x[..., :n_bands], 0.0).astype(np.float32)
    if fill == "linear":
        z = interpolate_time(z, seen, np.asarray(days, np.float64))
    z = np.where(bands_hidden, 0.0, z)
    inp = x.copy()
    inp[..., :n_bands] = z
    inp[..., n_bands] = seen
    weight = (hidden[..., None] | bands_hidden) & valid[..., None]
    target = np.concatenate([np.where(valid[..., None], x[..., :n_bands], 0.0),
                             weight.astype(np.float32)], axis=-1).astype(np.float32)
    return inp, target


@functools.cache
def _keras_parts():
    import keras
    from keras import layers, ops

    @keras.saving.register_keras_serializable(package="landcover")
    class RepeatDates(layers.Layer):
        """``[features (B, H, W, C), days (B, T)] -> (B, T, H, W, C)``."""

        def call(self, inputs):
            f, days = inputs
            t = ops.shape(days)[1]
            f = ops.expand_dims(f, 1)
            return ops.repeat(f, t, axis=1)

        def compute_output_shape(self, input_shape):
            (b, h, w, c), (_, t) = input_shape
            return (b, t, h, w, c)

    @keras.saving.register_keras_serializable(package="landcover")
    class MaskedReconstruction(keras.losses.Loss):
        """Mean squared error over the entries whose weight (the target's second half) is 1;
        a batch with none has loss 0. The reduction is this one (Keras' is bypassed, as in
        :class:`landcover.losses.MaskedLoss`)."""

        def __init__(self, name: str = "masked_mse", **kwargs):
            kwargs.pop("reduction", None)
            super().__init__(name=name, reduction="none", **kwargs)

        def __call__(self, y_true, y_pred, sample_weight=None):
            n = y_pred.shape[-1]
            y_true = ops.cast(y_true, "float32")
            target, weight = y_true[..., :n], y_true[..., n:]
            err = ops.square(ops.cast(y_pred, "float32") - target) * weight
            return ops.sum(err) / ops.maximum(ops.sum(weight), 1.0)

        def call(self, y_true, y_pred):  # pragma: no cover - __call__ does the whole job
            return self(y_true, y_pred)

        def get_config(self):
            return {"name": self.name}

    return RepeatDates, MaskedReconstruction


def masked_reconstruction():
    """The loss (:class:`MaskedReconstruction`; sum reduction is left to it: one value per batch)."""
    return _keras_parts()[1]()


def build_pretrain_model(spec, input_shape, n_bands: int, valid_channel: int | None):
    """``[series, days] -> reconstructed bands (B, T, H, W, n_bands)``: ``spec``'s body (every
    network architecture of :mod:`landcover.models`) and the reconstruction head."""
    from landcover.models import architecture
    from landcover.models.layers import DayEncoding, ValidMask
    from landcover.runtime import import_keras

    keras = import_keras()
    from keras import layers

    RepeatDates, _ = _keras_parts()
    arch = architecture(spec["architecture"])
    series = keras.Input(tuple(input_shape), name="series")
    days = keras.Input((input_shape[0],), name="days")
    if arch.takes_dates:
        valid = ValidMask(valid_channel, name="valid_mask")(series)
        body = arch.build_body()(series, spec, days, valid)
    else:
        body = arch.build_body()(series, spec)
    z = RepeatDates(name="pretrain_repeat")([body, days])
    z = layers.Dense(HEAD_UNITS, name="pretrain_in")(z)
    z = DayEncoding(name="pretrain_days")([z, days])
    z = layers.Dense(HEAD_UNITS, activation="relu", name="pretrain_hidden")(z)
    out = layers.Dense(n_bands, dtype="float32", name="pretrain_bands")(z)
    return keras.Model([series, days], out, name=f"pretrain_{arch.name}")


def head_layers(model) -> list[str]:
    """The names of the reconstruction head's layers (everything else is the encoder)."""
    return [layer.name for layer in model.layers if layer.name.startswith("pretrain_")]
