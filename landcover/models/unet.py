"""U-Nets: ``unet`` on the dates stacked as channels (a fixed number of dates; with one date it is
a single-date U-Net), and ``unet_convlstm``, whose encoder runs on every date with shared weights,
with a ConvLSTM2D at the bottleneck and skip connections averaged over time (any number of dates).

Both pad the patch to a multiple of ``2**layers`` and crop the result back. The top of this module
is Keras-free (the registry imports it to read ``ARCHITECTURES``).
"""

from __future__ import annotations

from collections.abc import Mapping

from landcover.models.base import Architecture


def build_unet(inputs, spec: Mapping):
    """(B, T, H, W, F) -> (B, H, W, filters); T must be fixed (dates stacked as channels)."""
    from keras import layers

    from landcover.models.layers import conv_block, decoder, hyper, level_padding

    filters, depth, kernel, dropout, norm = hyper(spec)
    _, t, h, w, f = inputs.shape
    (top, bottom), (left, right) = level_padding(h, depth), level_padding(w, depth)
    x = layers.Permute((2, 3, 1, 4), name="dates_last")(inputs)
    x = layers.Reshape((h, w, t * f), name="stack_dates")(x)
    x = layers.ZeroPadding2D(((top, bottom), (left, right)), name="pad")(x)
    skips = []
    for level in range(depth):
        x = conv_block(x, filters * 2**level, kernel, norm, dropout, f"enc{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = conv_block(x, filters * 2**depth, kernel, norm, dropout, "bottleneck")
    x = decoder(x, skips, filters, kernel, norm, dropout)
    return layers.Cropping2D(((top, bottom), (left, right)), name="crop")(x)


def build_unet_convlstm(inputs, spec: Mapping):
    """(B, T, H, W, F) -> (B, H, W, filters); any T."""
    from keras import layers

    from landcover.models.layers import (
        TemporalMean,
        conv_block,
        decoder,
        hyper,
        level_padding,
        norm_layer,
    )

    filters, depth, kernel, dropout, norm = hyper(spec)
    h, w = inputs.shape[2], inputs.shape[3]
    (top, bottom), (left, right) = level_padding(h, depth), level_padding(w, depth)
    x = layers.TimeDistributed(layers.ZeroPadding2D(((top, bottom), (left, right))),
                               name="pad")(inputs)
    skips = []
    for level in range(depth):
        x = conv_block(x, filters * 2**level, kernel, norm, dropout, f"enc{level + 1}",
                        time_distributed=True)
        skips.append(TemporalMean(name=f"skip{level + 1}_mean")(x))
        x = layers.TimeDistributed(layers.MaxPooling2D(2), name=f"pool{level + 1}")(x)
    x = layers.ConvLSTM2D(filters * 2**depth, kernel, padding="same", return_sequences=False,
                          dropout=dropout, name="bottleneck_convlstm")(x)
    layer = norm_layer(norm, filters * 2**depth, "bottleneck")
    if layer is not None:
        x = layer(x)
    x = decoder(x, skips, filters, kernel, norm, dropout)
    return layers.Cropping2D(((top, bottom), (left, right)), name="crop")(x)


ARCHITECTURES = (
    Architecture("unet", build_unet, memory=(1.0, False),  variable_dates=False, downsamples=True,
                 summary="a U-Net on the dates stacked as channels; exactly the training "
                         "number of dates (one date: a single-date U-Net)"),
    Architecture("unet_convlstm", build_unet_convlstm, memory=(3.0, True),  variable_dates=True, downsamples=True,
                 summary="a U-Net encoder on every date (shared weights), a ConvLSTM2D "
                         "bottleneck, skips averaged over time; any number of dates"),
)
