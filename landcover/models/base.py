"""What every architecture module of :mod:`landcover.models` declares, and the ``train.model``
keys: :class:`Architecture`, :func:`norm_of`. Keras-free, and importing nothing of the package:
the registry (:mod:`landcover.models`), the shared Keras code (:mod:`landcover.models.layers`) and
the architecture modules all build on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

NORMS = ("batch", "group", "layer", "none")
MODEL_KEYS = ("filters", "layers", "kernel", "head_kernel", "head_units", "dropout", "norm")
"""The ``train.model.*`` hyperparameters (besides ``architecture``) every architecture uses."""
ATTENTION_KEYS = ("heads", "key_dim")
"""The ``train.model.*`` keys of the temporal-attention architectures."""
DEFAULT_HEADS, DEFAULT_KEY_DIM = 4, 8  # for bundles written before these keys existed


@dataclass(frozen=True)
class Architecture:
    """The declaration of one architecture.

    Attributes:
        name: the value of ``train.model.architecture``.
        builder: ``(inputs, spec) -> features``: maps the ``keras.Input`` ``(B, T, H, W, F)``
            (named ``series``) to features ``(B, H, W, C)``, on which the registry puts the logits
            head (and the class mask). A callable, or ``"module:function"`` imported when a model
            is built. ``spec`` is the ``train.model`` mapping.
        variable_dates: the network takes any number of dates (built with time ``None``);
            otherwise it is built for the dataset's number of dates and takes only that.
        downsamples: the network halves the patch ``train.model.layers`` times (a U-Net), so the
            patches must be large enough.
        summary: one line for the help and docs.
        keys: the ``train.model.*`` keys it uses.
        default: the default of ``train.model.architecture`` (exactly one architecture).
        takes_dates: the network has a second input ``days`` (B, T) and its builder gets the
            days and the validity mask (see the module's docstring).
        streamed: a builder with the same arguments for the same network restated for
            prediction with the dates streamed through it: only states are kept from one date
            to the next, so its memory does not grow with the number of dates. Its layers take
            the trained network's weights by layer name, or through their own
            ``take_weights(trained)`` (:func:`rebuild_for_window`). None: the trained network
            predicts.
        streams: ``spec -> bool``: the specs ``streamed`` can restate (None: all).
        pixel: not a network but a per-pixel classifier (:mod:`landcover.pixel`): ``train``
            fits it with :func:`landcover.pixel.train_pixel_bundle`, and the network-only
            functions here (:func:`build_model`, :func:`check_patch`, the rebuild) are not for
            it. Its ``builder`` is never called.
    """

    name: str
    builder: Callable[..., Any] | str
    variable_dates: bool
    downsamples: bool
    summary: str
    keys: tuple[str, ...] = MODEL_KEYS
    default: bool = False
    takes_dates: bool = False
    streamed: Callable[..., Any] | str | None = None
    streams: Callable[[Mapping], bool] | None = None
    pixel: bool = False
    memory: tuple[float, bool] = (1.0, True)
    """``(factor, per_date)`` of the training-memory estimate (``landcover.network_memory.batch_memory``):
    its activations times ``factor``; ``per_date`` False where the dates are stacked as
    channels (the activations do not grow with them). Measured in
    ``benchmarks/train_memory.py``."""

    def build_body(self, streamed: bool = False) -> Callable[..., Any]:
        """The builder function (imported if declared as ``"module:function"``); with
        ``streamed``, the streamed network's."""
        builder = self.streamed if streamed else self.builder
        if callable(builder):
            return builder
        module, _, function = builder.partition(":")
        return getattr(importlib.import_module(module), function)


def norm_of(spec: Mapping) -> str:
    """The normalisation of a model spec (bundles before ``norm`` had ``batch_norm: bool``)."""
    if "norm" in spec:
        return str(spec["norm"])
    return "batch" if spec.get("batch_norm", True) else "none"
