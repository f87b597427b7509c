"""Model architectures: the registry (Keras-free; the networks are built by the modules it finds).

Every network maps a series ``(time, height, width, features)`` to class **logits** ``(height,
width, classes)``: no softmax (it is applied only when probabilities are written). Networks use
``keras`` and ``keras.ops`` only, so they run on TensorFlow and JAX. The spatial size is fixed when
a model is built (Keras' recurrent convolutions need static spatial shapes); the weights do not
depend on it, so :func:`rebuild_for_window` can build the same network for another window size and
take the weights.

**An architecture is declared once, in the module of this package that builds it**: a
module-level ``ARCHITECTURES`` sequence of :class:`~landcover.models.base.Architecture`. The
registry imports every module of this package except the declaration itself and the shared Keras
code (``_SHARED``: :mod:`landcover.models.base`, :mod:`landcover.models.layers`) and private ``_*``
modules, and collects those declarations. So a declaring module keeps Keras out of
its top level (its build functions import it): ``import landcover.config`` (which takes the
``train.model.architecture`` choices and default from here) must not import Keras. Everything
else that depends on the architecture (the config choices, train's patch-size check and input
shape, the bundle's ``variable_time_steps``, classification's rebuild, the CLI help) asks this
module; no other module names an architecture.

Adding one: a module ``landcover/models/NAME.py`` with::

    from landcover.models.base import MODEL_KEYS, Architecture

    def build(inputs, spec):  # keras.Input (B, T, H, W, F) -> features (B, H, W, C)
        from keras import layers
        ...

    ARCHITECTURES = (Architecture("NAME", build, variable_dates=True, downsamples=False,
                                  summary="one line for the help"),)

Custom Keras layers go in :mod:`landcover.models.layers` (registered for loading, and listed in
its ``CUSTOM_OBJECTS``).

**Dates as an input** (``takes_dates=True``): the network has a second input ``days`` ``(B, T)``,
the acquisition day of every date as days since a reference (:func:`landcover.features.
days_since_reference`), and its builder is called as ``builder(inputs, spec, days, valid)`` with
``valid`` ``(B, T, H, W)``: the dataset's ``valid`` feature channel (1 valid, 0 masked or padded),
or ones when the model is built without one. Feed such a model ``[series, days]``
(:func:`model_inputs`). Architectures without it receive the series alone, as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import math
import pkgutil
import threading
from collections.abc import Mapping, Sequence

from landcover.models.base import (
    ATTENTION_KEYS,
    DEFAULT_HEADS,
    DEFAULT_KEY_DIM,
    MODEL_KEYS,
    NORMS,
    Architecture,
    norm_of,
)

_SHARED = frozenset({"base", "layers"})  # modules of this package that declare no architecture


def streams_dates(spec) -> bool:
    """Whether ``spec``'s network predicts with the dates streamed (``Architecture.streamed``:
    memory that does not grow with the number of dates)."""
    spec = _as_mapping(spec)
    arch = architecture(spec["architecture"])
    return arch.streamed is not None and (arch.streams is None or arch.streams(spec))


@functools.cache
def _registry() -> dict[str, Architecture]:
    found: dict[str, Architecture] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _SHARED:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for arch in getattr(module, "ARCHITECTURES", ()):
            if not isinstance(arch, Architecture):
                raise TypeError(f"{module.__name__}.ARCHITECTURES: {arch!r} is not an "
                                "Architecture")
            if arch.name in found:
                raise RuntimeError(f"architecture {arch.name!r} is declared twice (again in "
                                   f"{module.__name__})")
            found[arch.name] = arch
    defaults = [a.name for a in found.values() if a.default]
    if len(defaults) != 1:
        raise RuntimeError(f"exactly one architecture must be the default, found {defaults}")
    return found


def architecture_names() -> tuple[str, ...]:
    """The known architectures, in declaration order (modules by name)."""
    return tuple(_registry())


def architectures() -> tuple[Architecture, ...]:
    return tuple(_registry().values())


def architecture(name: str) -> Architecture:
    """The declaration of ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown architecture {name!r}; one of {', '.join(reg)}")
    return reg[name]


def default_architecture() -> str:
    """The default of ``train.model.architecture``."""
    return next(a.name for a in _registry().values() if a.default)


def is_pixel(spec) -> bool:
    """Whether ``spec``'s architecture is a per-pixel classifier, not a network (a spec mapping,
    ModelConfig or an architecture name)."""
    name = spec if isinstance(spec, str) else _as_mapping(spec)["architecture"]
    return architecture(name).pixel


def pixel_architectures() -> tuple[str, ...]:
    """The per-pixel classifiers (:mod:`landcover.pixel`)."""
    return tuple(a.name for a in _registry().values() if a.pixel)


def variable_date_architectures() -> tuple[str, ...]:
    """The architectures that take any number of dates."""
    return tuple(a.name for a in _registry().values() if a.variable_dates)


def _as_mapping(spec) -> Mapping:
    """``train.model`` as a mapping (a ``ModelConfig`` or a mapping such as a bundle's)."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.asdict(spec)
    return spec


def model_input_shape(spec, t: int, h: int, w: int, f: int) -> tuple[int | None, int, int, int]:
    """The input shape to build ``spec``'s network with for a ``(t, h, w, f)`` dataset: time is
    ``None`` (any number of dates) where the architecture allows it, else ``t``."""
    arch = architecture(_as_mapping(spec)["architecture"])
    return (None if arch.variable_dates else t, h, w, f)


def check_patch(spec, h: int, w: int) -> str | None:
    """Why ``h`` x ``w`` patches are too small for ``spec``'s network, or None if they are not."""
    spec = _as_mapping(spec)
    if architecture(spec["architecture"]).pixel:
        return None  # a per-pixel classifier takes any patch
    depth = int(spec["layers"])
    if architecture(spec["architecture"]).downsamples and 2**depth > 2 * max(h, w):
        return (f"train.model.layers: {depth} down-sampling levels are too many for {h}x{w} "
                f"patches; use at most {int(math.log2(2 * max(h, w)))}")
    return None


def takes_dates(spec) -> bool:
    """Whether ``spec``'s network takes the ``days`` input (a spec mapping, ModelConfig or an
    architecture name)."""
    name = spec if isinstance(spec, str) else _as_mapping(spec)["architecture"]
    return architecture(name).takes_dates


def model_inputs(model, x, days=None):
    """What to feed ``model`` for the series ``x`` (B, T, H, W, F): ``[x, days (B, T)]`` for a
    network with a ``days`` input (``days`` (T,) is repeated over the batch), else ``x``. ``x``
    may be a list of :func:`with_input_features`' inputs (the days are added the same way)."""
    import numpy as np

    xs = list(x) if isinstance(x, (list, tuple)) else [x]  # with_input_features' inputs, or x
    if len(model.inputs) == len(xs):
        return xs if len(xs) > 1 else x
    if days is None:
        raise ValueError(f"the {model.name} network takes the acquisition days as a second input")
    days = np.asarray(days, np.float32)
    if days.ndim == 1:
        days = np.broadcast_to(days, (len(xs[0]), len(days)))
    return [*xs, np.ascontiguousarray(days)]


def build_model(spec: Mapping, input_shape: Sequence, num_classes: int, absent=(),
                valid_channel: int | None = None, streamed: bool = False):
    """Build an uncompiled ``keras.Model`` named after the architecture.

    Args:
        spec: the ``train.model`` config as a mapping (architecture, filters, layers, kernel,
            head_kernel, dropout, norm; or batch_norm in bundles written before norm).
        input_shape: (time, height, width, features); time may be None only for architectures
            with ``variable_dates`` (see :func:`model_input_shape`).
        num_classes: number of output logits per pixel.
        absent: class indices the model must never predict (no training pixels): a
            ``ClassMask`` after the logits.
        valid_channel: for ``takes_dates`` architectures, the index of the ``valid`` feature
            (None: every date of every pixel counts as valid). Ignored by the others.
        streamed: the network restated for prediction with the dates streamed
            (``Architecture.streamed``; untrained weights): see :func:`streams_dates`.

    Raises:
        ValueError: unknown architecture, or time None for a fixed-date one.
    """
    spec = _as_mapping(spec)
    arch = architecture(spec["architecture"])
    if arch.pixel:
        raise ValueError(f"{arch.name} is a per-pixel classifier, not a network: "
                         "landcover.pixel fits it")
    if input_shape[0] is None and not arch.variable_dates:
        raise ValueError(f"the {arch.name} architecture takes a fixed number of dates "
                         f"({arch.summary}): the number of dates must be fixed, not None")
    from landcover.runtime import import_keras

    import_keras()  # TensorFlow's start-up noise silenced
    from landcover.models.layers import assemble

    if streamed and not streams_dates(spec):
        raise ValueError(f"the {arch.name} network of this spec cannot be streamed")
    return assemble(arch, spec, tuple(input_shape), num_classes, absent, valid_channel,
                    streamed)


def rebuild_for_window(model, meta, window: int, precision: str = "float32"):
    """A bundle's network for predicting ``window`` x ``window`` inputs in ``precision``, with
    ``model``'s weights: its streamed restatement where it has one (:func:`streams_dates`;
    ``convlstm``: :class:`~landcover.models.layers.StreamedConvLSTM`), else ``model`` itself for
    the patch size in float32, else the same network built for the window (recurrent
    convolutions need static spatial shapes).

    Args:
        model: the bundle's loaded Keras model.
        meta: the bundle's :class:`~landcover.bundle.meta.BundleMeta` (older bundles upgraded:
            without ``variable_time_steps`` the registry decides).

    Raises:
        ModelError: the bundle's architecture is not known to this landcover.
    """
    inp, spec = meta.input, meta.architecture
    try:
        arch = architecture(spec["architecture"])
    except ValueError as exc:
        from landcover.errors import ModelError

        raise ModelError(f"the bundle's network cannot be rebuilt: {exc}") from None
    if arch.pixel:
        return model  # a landcover.pixel_model.PixelClassifier takes any window as it is
    t = None if inp.variable_time_steps else inp.time_steps
    shape = (t, window, window, len(inp.features))
    args = (len(meta.classes), meta.output.absent_classes, inp.valid_channel)
    streamed = streams_dates(spec)
    if not streamed and window == inp.patch_size and precision == "float32":
        return model
    with _dtype_policy(precision):
        net = build_model(spec, shape, *args, streamed=streamed)
    take_weights(net, model)
    return net


def with_input_features(network, spec, dn_dtype: str = "uint16"):
    """``network`` behind an :class:`~landcover.models.layers.InputFeatures` layer: a model that
    takes ``[dn (N, T, B, H, W) of dn_dtype, valid (N, T, H, W) uint8, dates (N, T, 4B + 2)
    float32]`` (and ``days``, where ``network`` takes them) instead of the float32 features, and
    gives the same logits. ``spec``: the bundle's :class:`~landcover.features.FeatureSpec`
    (``fill: zero``; the caller checks; its normalisation travels in ``dates``); the weights are
    ``network``'s own, not copies."""
    import keras

    from landcover.models.layers import InputFeatures

    t, h, w, _ = network.inputs[0].shape[1:]
    nb = len(spec.bands)
    dn = keras.Input((t, nb, h, w), dtype=dn_dtype, name="dn")
    valid = keras.Input((t, h, w), dtype="uint8", name="valid")
    dates = keras.Input((t, 4 * nb + 2), dtype="float32", name="dates")
    inputs = [dn, valid, dates]
    x = InputFeatures(spec.doy, name="input_features")(inputs)
    if len(network.inputs) > 1:  # the acquisition days, as the network takes them
        days = keras.Input(network.inputs[1].shape[1:], dtype=network.inputs[1].dtype,
                           name="days")
        inputs.append(days)
        x = [x, days]
    return keras.Model(inputs, network(x), name=f"{network.name}_from_dn")


def take_weights(net, trained) -> None:
    """``trained``'s weights into ``net``, layer by layer name (a layer with a ``take_weights``
    method takes its own)."""
    for layer in net.layers:
        if hasattr(layer, "take_weights"):
            layer.take_weights(trained)
        elif layer.weights:
            layer.set_weights(trained.get_layer(layer.name).get_weights())


_POLICY_LOCK = threading.Lock()


@contextlib.contextmanager
def _dtype_policy(precision: str):
    """Keras mixed precision (``mixed_<precision>``) while building, for float16/bfloat16: the
    policy is global, so it is set only inside (and one build at a time)."""
    if precision == "float32":
        yield
        return
    import keras

    with _POLICY_LOCK:
        before = keras.config.dtype_policy()
        keras.config.set_dtype_policy(f"mixed_{precision}")
        try:
            yield
        finally:
            keras.config.set_dtype_policy(before)


def valid_channel_of(inp: Mapping) -> int | None:
    """The index of the ``valid`` feature in a bundle's ``input`` or a dataset's attributes."""
    features = list(inp.get("features") or ())
    return features.index("valid") if "valid" in features else None


def custom_objects() -> dict:
    """The custom Keras classes of the networks, by name, for ``keras.models.load_model`` (they
    are registered as ``landcover>NAME`` anyway once imported)."""
    from landcover.runtime import import_keras

    import_keras()
    from landcover.models.layers import CUSTOM_OBJECTS

    return dict(CUSTOM_OBJECTS)


__all__ = [
    "ATTENTION_KEYS",
    "DEFAULT_HEADS",
    "DEFAULT_KEY_DIM",
    "MODEL_KEYS",
    "NORMS",
    "Architecture",
    "architecture",
    "architecture_names",
    "architectures",
    "build_model",
    "check_patch",
    "custom_objects",
    "default_architecture",
    "is_pixel",
    "model_input_shape",
    "model_inputs",
    "norm_of",
    "pixel_architectures",
    "rebuild_for_window",
    "streams_dates",
    "take_weights",
    "takes_dates",
    "valid_channel_of",
    "variable_date_architectures",
    "with_input_features",
]
