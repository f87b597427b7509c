"""``convlstm``: a stack of ConvLSTM2D layers, the last returning only its final state, then the
convolution to logits (the classic setup); any number of dates.

The top of this module is Keras-free (the registry imports it to read ``ARCHITECTURES``).
"""

from __future__ import annotations

from collections.abc import Mapping

from landcover.models.base import Architecture


def build(inputs, spec: Mapping):
    """(B, T, H, W, F) -> (B, H, W, filters)."""
    from keras import layers

    from landcover.models.layers import hyper, norm_layer

    filters, depth, kernel, dropout, norm = hyper(spec)
    x = inputs
    for i in range(depth):
        last = i == depth - 1
        x = layers.ConvLSTM2D(filters, kernel, padding="same", return_sequences=not last,
                              dropout=dropout, name=f"convlstm{i + 1}")(x)
        layer = norm_layer(norm, filters, f"convlstm{i + 1}")
        if layer is not None:
            x = layer(x)
    return x


def streams(spec: Mapping) -> bool:
    """Every normalisation but ``group`` (over all the dates of a layer's output) can be
    streamed."""
    from landcover.models.base import norm_of

    return norm_of(spec) != "group"


def build_streamed(inputs, spec: Mapping):
    """The same network for prediction, the dates streamed through every layer at once
    (:class:`~landcover.models.layers.StreamedConvLSTM`)."""
    from landcover.models.layers import StreamedConvLSTM, hyper, norm_layer

    filters, depth, kernel, _, norm = hyper(spec)
    x = StreamedConvLSTM(filters, depth, kernel, norm, name="convlstm")(inputs)
    layer = norm_layer(norm, filters, f"convlstm{depth}")
    return x if layer is None else layer(x)


ARCHITECTURES = (
    Architecture("convlstm", build, variable_dates=True, downsamples=False, default=True,
                 streamed=build_streamed, streams=streams,
                 summary="a stack of train.model.layers ConvLSTM2D layers, the last returning "
                         "its final state; any number of dates"),
)
