"""Temporal attention over the acquisition dates: ``ltae`` (per pixel) and ``utae`` (U-TAE).

Both take the dates as an input (``takes_dates``): the ``days`` ``(B, T)`` (days since 1 January
of the series' first year, :func:`landcover.features.days_since_reference`) and the validity mask
from the ``valid`` feature channel; invalid or padded observations get no attention. So they take
any number and any set of dates, also other dates than in training.

* ``ltae``: the Lightweight Temporal Attention Encoder (Garnot & Landrieu 2020) on every pixel
  alone: a linear map of each date's features to ``heads x filters`` channels, layer norm, the
  sinusoidal encoding of the day, ``heads`` learned master queries (keys of ``key_dim``), each
  head averaging its group of channels over the dates, an MLP. No spatial window.
* ``utae``: U-TAE (Garnot & Landrieu 2021): a convolutional encoder shared by all dates
  (``layers`` down-sampling levels, ``filters`` doubled per level), L-TAE at the lowest
  resolution, whose attention masks are upsampled (bilinear) to every level, re-masked by that
  level's validity and used to collapse the skip features over time (channel groups per head);
  a convolutional decoder.

The top of this module is Keras-free (the registry imports it to read ``ARCHITECTURES``).
"""

from __future__ import annotations

from collections.abc import Mapping

from landcover.models.base import ATTENTION_KEYS, MODEL_KEYS, Architecture


def build_ltae(inputs, spec: Mapping, days, valid):
    """(B, T, H, W, F) -> (B, H, W, heads x filters), each pixel on its own."""
    from landcover.models.layers import attention_hyper, hyper, ltae_block

    filters, _, _, dropout, _ = hyper(spec)
    heads, key_dim = attention_hyper(spec)
    out, _ = ltae_block(inputs, days, valid, heads * filters, heads, key_dim, dropout, "ltae")
    return out


def build_utae(inputs, spec: Mapping, days, valid):
    """(B, T, H, W, F) -> (B, H, W, filters)."""
    import math

    from keras import layers

    from landcover.models.layers import (
        FoldTime,
        MaskedCollapse,
        UnfoldTime,
        attention_hyper,
        conv_block,
        decoder,
        hyper,
        level_padding,
        ltae_block,
    )

    filters, depth, kernel, dropout, norm = hyper(spec)
    heads, key_dim = attention_hyper(spec)
    heads = math.gcd(heads, filters)  # every level's channels split into the heads' groups
    h, w = inputs.shape[2], inputs.shape[3]
    (top, bottom), (left, right) = level_padding(h, depth), level_padding(w, depth)
    pad = ((top, bottom), (left, right))
    # the dates as a batch: one encoder, shared weights; validity pooled alongside (max: a cell
    # is valid on a date when any of its pixels is)
    x = layers.ZeroPadding2D(pad, name="pad")(FoldTime(name="fold")(inputs))
    v = layers.ZeroPadding2D(pad, name="pad_valid")(FoldTime(name="fold_valid")(valid))
    skips, masks = [], []
    for level in range(depth):
        x = conv_block(x, filters * 2**level, kernel, norm, dropout, f"enc{level + 1}")
        skips.append(UnfoldTime(name=f"skip{level + 1}_dates")([x, inputs]))
        masks.append(v)
        x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
        v = layers.MaxPooling2D(2, name=f"pool_valid{level + 1}")(v)
    x = conv_block(x, filters * 2**depth, kernel, norm, dropout, "bottleneck")
    x = UnfoldTime(name="bottleneck_dates")([x, inputs])
    bottom_valid = UnfoldTime(name="bottom_valid")([v, inputs])[..., 0]
    x, attn = ltae_block(x, days, bottom_valid, filters * 2**depth, heads, key_dim, dropout,
                         "ltae")
    folded = FoldTime(name="fold_attention")(attn)
    collapsed = []
    for level in range(depth):
        a = layers.UpSampling2D(2 ** (depth - level), interpolation="bilinear",
                                name=f"attention_up{level + 1}")(folded)
        a = UnfoldTime(name=f"attention{level + 1}_dates")([a, inputs])
        m = UnfoldTime(name=f"valid{level + 1}_dates")([masks[level], inputs])[..., 0]
        collapsed.append(MaskedCollapse(name=f"skip{level + 1}_collapse")([skips[level], a, m]))
    x = decoder(x, collapsed, filters, kernel, norm, dropout)
    return layers.Cropping2D(pad, name="crop")(x)


ARCHITECTURES = (
    Architecture("ltae", build_ltae, memory=(0.6, True),  variable_dates=True, downsamples=False, takes_dates=True,
                 keys=MODEL_KEYS + ATTENTION_KEYS,
                 summary="L-TAE, temporal attention on each pixel alone (heads x filters "
                         "channels); takes the acquisition days; any number and set of dates"),
    Architecture("utae", build_utae, variable_dates=True, downsamples=True, takes_dates=True,
                 keys=MODEL_KEYS + ATTENTION_KEYS,
                 summary="U-TAE, a U-Net encoder on every date with L-TAE at the lowest "
                         "resolution collapsing every level over time; takes the acquisition "
                         "days; any number and set of dates"),
)
