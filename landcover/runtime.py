"""The numerical runtime: importing Keras quietly, and the library versions written with outputs."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import threading

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


class _RefuseScikitLearn(importlib.abc.MetaPathFinder):
    """Refuses ``sklearn`` to the one thread that imports Keras (other threads import it as
    usual)."""

    def __init__(self):
        self.thread = threading.get_ident()

    def find_spec(self, fullname, path=None, target=None):
        if (fullname == "sklearn" or fullname.startswith("sklearn.")) and \
                threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"No module named {fullname!r} (deferred by landcover "
                                      "while Keras is imported)", name=fullname)
        # else None: the next finders look for it


@contextlib.contextmanager
def _scikit_learn_deferred():
    """Import Keras without scikit-learn, whose import costs about 1.1 s of one core (2-3 s on a
    loaded 2-core machine; scipy.stats is most of it) of Keras's 4-7 s, though only the
    ``keras.wrappers`` scikit-learn wrappers use it. Those wrappers then find no scikit-learn;
    they are put back to be imported again, with it, on first use (:func:`_wrappers_on_first_use`).
    Nothing changes where scikit-learn or Keras is already imported."""
    if "sklearn" in sys.modules or "keras" in sys.modules:
        yield
        return
    finder = _RefuseScikitLearn()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        _wrappers_on_first_use()


def _wrappers_on_first_use() -> None:
    """``keras.wrappers``, imported without scikit-learn, as a module that imports itself again
    (and scikit-learn) when first used (``importlib.util.LazyLoader``)."""
    utils = sys.modules.get("keras.src.wrappers.utils")
    if utils is None or getattr(utils, "sklearn", True) is not None:
        return  # not imported, or imported with scikit-learn (by another thread)
    for name in [m for m in sys.modules
                 if m in ("keras.wrappers", "keras.src.wrappers")
                 or m.startswith("keras.src.wrappers.")]:
        del sys.modules[name]
    src = sys.modules.get("keras.src")
    if src is not None and "wrappers" in vars(src):
        delattr(src, "wrappers")
    spec = importlib.util.find_spec("keras.wrappers")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["keras.wrappers"] = module
    spec.loader.exec_module(module)
    sys.modules["keras"].wrappers = module


def import_keras():
    """The ``keras`` module, with TensorFlow's start-up noise silenced when it is the backend,
    and without importing scikit-learn for it (:func:`_scikit_learn_deferred`)."""
    with _scikit_learn_deferred():
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
