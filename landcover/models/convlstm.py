"""``convlstm``: a stack of ConvLSTM2D layers, the last returning only its final state, then the
convolution to logits (the classic setup); any number of dates.

The top of this module is Keras-free (the registry imports it to read ``ARCHITECTURES``).
"""

from __future__ import annotations

from collections.abc import Mapping

from landcover.models import Architecture


def build(inputs, spec: Mapping):
    """(B, T, H, W, F) -> (B, H, W, filters)."""
    from keras import layers

    from landcover.models.layers import _norm_layer, hyper

    filters, depth, kernel, dropout, norm = hyper(spec)
    x = inputs
    for i in range(depth):
        last = i == depth - 1
        x = layers.ConvLSTM2D(filters, kernel, padding="same", return_sequences=not last,
                              dropout=dropout, name=f"convlstm{i + 1}")(x)
        layer = _norm_layer(norm, filters, f"convlstm{i + 1}")
        if layer is not None:
            x = layer(x)
    return x


ARCHITECTURES = (
    Architecture("convlstm", build, variable_dates=True, downsamples=False, default=True,
                 summary="a stack of train.model.layers ConvLSTM2D layers, the last returning "
                         "its final state; any number of dates"),
)
