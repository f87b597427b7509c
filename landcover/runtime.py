"""The numerical runtime: importing Keras quietly, and the library versions written with outputs."""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.util
import logging
import os
import sys
import threading
import types

log = logging.getLogger(__name__)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with file descriptor 2 silenced.

    TensorFlow's C++ start-up lines (oneDNN notes, CUDA probing on machines without a GPU) are
    written before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them. They are
    shown with ``-vv`` (debug logging). Import errors still raise normally.
    """
    if "tensorflow" in sys.modules or logging.getLogger("landcover").isEnabledFor(logging.DEBUG):
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


DEFERRED = {"sklearn": ("keras.wrappers",), "matplotlib": ("keras.visualization",),
            "pandas": ("keras.src.trainers.data_adapters.array_slicing",)}
"""Libraries that Keras imports at start-up for one part of it alone, and the Keras modules of
that part: scikit-learn (with scipy.stats) for the ``keras.wrappers`` estimators, about 1.1 s of
one core (2-3 s on a loaded 2-core machine); matplotlib's pyplot for the ``keras.visualization``
galleries, about 0.6 s; pandas for the data adapters' slicing of DataFrames and Series (``fit``
or ``predict`` of a DataFrame), 0.3-0.4 s. :func:`import_keras` imports Keras without them (Keras
runs without each) and puts those modules back to be imported again, with them, on first use."""


class _Refuse(importlib.abc.MetaPathFinder):
    """Refuses the :data:`DEFERRED` libraries to the one thread that imports Keras (other threads
    import them as usual) and notes which it refused."""

    def __init__(self):
        self.thread, self.refused = threading.get_ident(), set()

    def find_spec(self, fullname, path=None, target=None):
        root = fullname.partition(".")[0]
        if root in DEFERRED and threading.get_ident() == self.thread:
            self.refused.add(root)
            raise ModuleNotFoundError(f"No module named {fullname!r} (deferred by landcover "
                                      "while Keras is imported)", name=fullname)
        # else None: the next finders look for it


@contextlib.contextmanager
def _deferring():
    """The ``with`` block imports Keras without the :data:`DEFERRED` libraries; the parts of
    Keras that went without them are then imported again, with them, on first use
    (:func:`_again_on_first_use`). For a Keras not yet imported (:func:`import_keras` checks)."""
    finder = _Refuse()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for root in finder.refused:
            for name in DEFERRED[root]:
                _again_on_first_use(name)


def _again_on_first_use(name: str) -> None:
    """Keras's module ``name``, imported without a library it uses, forgotten with its
    submodules (for a public ``keras.<part>``, its ``keras.src.<part>`` too); ``name`` becomes a
    module that imports itself again, with the library, when first used
    (``importlib.util.LazyLoader``), under every Keras module's name for it (``tf.keras``'s
    too)."""
    private = name if name.startswith("keras.src.") else "keras.src." + name[len("keras."):]
    old = sys.modules.get(name)
    for module in [m for m in sys.modules
                   if m in (name, private) or m.startswith(private + ".")]:
        del sys.modules[module]
        parent, _, child = module.rpartition(".")
        if parent in sys.modules and child in vars(sys.modules[parent]):
            delattr(sys.modules[parent], child)
    if old is None or "keras" not in sys.modules:  # not imported, or Keras's import failed
        return
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    for other_name, other in list(sys.modules.items()):  # e.g. keras._tf_keras.keras (tf.keras)
        if other_name.startswith("keras.") and type(other) is types.ModuleType:
            for attr, value in list(vars(other).items()):
                if value is old:
                    setattr(other, attr, module)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused while the ``with`` block imports the framework,
    then the objects alive at its end set aside for good (``gc.freeze``).

    Importing TensorFlow and Keras makes about 600,000 objects that live as long as the process.
    The collector went over them six times in full while they were made, and each full
    collection afterwards went over them again (0.15-0.2 s each): the import took 3.71-4.33 s
    against 3.20-3.64 s now (six alternating pairs), and a 2048^2 classify spent 1.08 s in the
    collector (7 full collections) against 0.08 s now (1). What the import leaves as cyclic
    garbage (about 1,900 objects) is kept. Where the collector is already off (another thread's
    import, or the caller's choice), nothing changes."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def import_keras():
    """The ``keras`` module, with TensorFlow's start-up noise silenced when it is the backend,
    imported without the libraries in :data:`DEFERRED` (:func:`_deferring`) and without Python's
    garbage collector going over the objects the import makes (:func:`_collector_paused`)."""
    if "keras" in sys.modules:
        import keras

        return keras
    with _collector_paused(), _deferring():
        if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
            _import_tensorflow_quietly()
        import keras

    return keras


# classify.precision: auto, measured (landcover.precision); kept here for its callers
from landcover.precision import BF16_CPU_FLAGS, auto_precision  # noqa: F401


def versions(*, data: bool = False, model: bool = False) -> dict:
    """Versions of landcover and numpy, plus the data libraries (dask, xarray, zarr, rasterio,
    GDAL) and/or the model libraries (keras, its backend, TensorFlow)."""
    import numpy as np

    from landcover import __version__

    v = {"landcover": __version__, "numpy": np.__version__}
    if data:
        import dask
        import rasterio
        import xarray
        import zarr

        v.update(dask=dask.__version__, xarray=xarray.__version__, zarr=zarr.__version__,
                 rasterio=rasterio.__version__, gdal=rasterio.__gdal_version__)
    if model:
        keras = import_keras()
        v.update(keras=keras.__version__, backend=keras.backend.backend())
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            v["tensorflow"] = tf.__version__
    return v


def check_memory(need: float, settings: str, what: str, lower: str) -> None:
    """Refuse work whose estimated peak ``need`` (bytes) exceeds the memory available now:
    ``ConfigError("SETTINGS: WHAT about X GB, Y GB is available; lower LOWER")``."""
    import psutil

    from landcover.errors import ConfigError

    available = psutil.virtual_memory().available
    if need > available:
        raise ConfigError(f"{settings}: {what} about {need / 1e9:.1f} GB, {available / 1e9:.1f} "
                          f"GB is available; lower {lower}")


def _seed_generators(model):
    keras = import_keras()
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator):
                found.append(value)
    return found


def reseed(model, seed: int, epoch: int) -> None:
    """Dropout randomness as a function of (seed, epoch): Keras does not save seed-generator
    states with the weights, so this is what makes a resumed run repeat an uninterrupted one."""
    import numpy as np

    keras = import_keras()
    for i, gen in enumerate(_seed_generators(model)):
        start = np.random.default_rng([seed, epoch, i]).integers(0, 2**31 - 1, size=2)
        gen.state.assign(keras.ops.convert_to_tensor(start.astype(gen.state.dtype)))
