"""The model of a worker process: loaded once per process and shared by its threads (in a
thread of its own while the first block is read), its calls serialised, in batches of one shape."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import numpy as np

from landcover.classify.plan import Plan
from landcover.errors import LandcoverError, ModelError
from landcover.runtime import import_keras

log = logging.getLogger(__package__)  # the package's: messages keep the name "landcover.classify"

_MODELS: dict = {}  # model key -> (the model, the lock serialising its calls)
_MODELS_LOCK = threading.Lock()


def load_model(bundle: str | Path, window: int, precision: str = "float32"):
    """The bundle's network for ``window`` x ``window`` inputs (recurrent layers need static
    spatial shapes, so another window size rebuilds the network and copies the weights), computing
    in ``precision`` (``bfloat16``/``float16``: Keras mixed precision, float32 weights). A pixel
    classifier's bundle gives its :class:`landcover.pixel.PixelClassifier` (any window, float32,
    no Keras): its ``predict_on_batch`` returns log-probabilities as the logits."""
    from landcover.bundle import load_bundle, read_bundle_meta
    from landcover.models import rebuild_for_window

    if read_bundle_meta(bundle, verify=False).is_pixel:
        return load_bundle(bundle)[0]
    import_keras()
    model, meta = load_bundle(bundle)
    return rebuild_for_window(model, meta, window, precision)


def _model_key(plan: Plan) -> tuple:
    return plan.bundle, plan.content_hash, plan.window, plan.precision


def worker_model(plan: Plan):
    """``(model, lock)``, loaded once per process and shared by its threads; model calls are
    serialised (the backend already uses every core for one call) while other threads read,
    blend and write."""
    key = _model_key(plan)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = (load_model(plan.bundle, plan.window, plan.precision),
                            threading.Lock())
        return _MODELS[key]


_INPUT_MODELS: dict = {}  # (model key, dn dtype) -> the network behind with_input_features


def model_for(plan: Plan, network, x):
    """The model to predict the batch ``x`` of :func:`landcover.classify.blocks.window_batch`
    with: ``network`` (the plan's :func:`worker_model`) for features; for the tuple of digital
    numbers, validity and dates, ``network`` behind the layer that makes its features from them
    (:func:`landcover.models.with_input_features`), built once per process and type of the
    digital numbers; it shares the network's weights."""
    if not isinstance(x, tuple):
        return network
    key = (*_model_key(plan), np.dtype(x[0].dtype).name)
    with _MODELS_LOCK:
        if key not in _INPUT_MODELS:
            from landcover.models import with_input_features

            _INPUT_MODELS[key] = with_input_features(network, plan.features, key[-1])
        return _INPUT_MODELS[key]


def checked_model(plan: Plan):
    """:func:`worker_model`, with a network that Keras cannot build from the bundle (its
    ``bundle.json`` describes another architecture than ``model.keras`` holds, e.g. edited and
    its hash recomputed: "No such layer: convlstm1") reported as a :class:`ModelError`."""
    try:
        return worker_model(plan)
    except LandcoverError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ModelError(f"{plan.bundle}: the network described by its bundle.json cannot be "
                         f"built from its model.keras ({detail}); use the bundle as 'landcover "
                         "train' wrote it, or train the model again") from exc


_LOADING: dict = {}  # model key -> (the loading thread, the first reader's lock)


@contextlib.contextmanager
def loading_in_background(plan: Plan):
    """Load the worker model in a thread while the ``with`` block runs the block tasks, so that
    Keras starts while the first block is read; a block that needs the model first waits for it
    (an error is raised again by the block's own :func:`worker_model`). The first block's call
    traces the network (a warm-up call on zeros cost one more call of the network's time before
    any block was predicted). Until the load ends, only one block task of this process reads
    (:func:`wait_for_model`). Leaving the block waits for the load to end."""
    def load():
        try:
            worker_model(plan)
        except Exception:  # reported by the block tasks
            log.debug("loading the model in the background failed", exc_info=True)

    thread = threading.Thread(target=load, name="landcover-model", daemon=True)
    _LOADING[_model_key(plan)] = (thread, threading.Lock())
    thread.start()
    try:
        yield thread
    finally:
        thread.join()
        _LOADING.pop(_model_key(plan), None)


def wait_for_model(plan: Plan) -> None:
    """While this process loads the model in the background, let one block task read and make
    the others wait for the load: importing the backend holds Python's lock for most of its
    3-4 s, and more readers beside it delayed the first model call (README, "Benchmarks")."""
    loading = _LOADING.get(_model_key(plan))
    if loading is None:
        return
    thread, first = loading
    if thread.is_alive() and not first.acquire(blocking=False):
        thread.join()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def predict_windows(model, lock, x: np.ndarray, batch_size: int, days=None,
                    temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``(n, s, s, K)`` of ``x (n, T, s, s, F)`` (or of a tuple of arrays of
    ``n`` windows each: the inputs of a network behind
    :func:`landcover.models.with_input_features`), in batches of exactly ``batch_size`` (the
    last one padded with copies of its last window) so every call has the same shape. ``days
    (T,)``: the dates' ``days`` input, for a network that takes one. ``temperature``: the bundle's
    (:mod:`landcover.calibration`), dividing the logits before the softmax."""
    from landcover.models import model_inputs

    arrays = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    out = []
    for a in range(0, len(arrays[0]), batch_size):
        part = [v[a:a + batch_size] for v in arrays]
        n = len(part[0])
        if n < batch_size:  # padded with copies of the last window (zeros would make a
            # network that makes its features divide by a std of 0)
            part = [np.concatenate([v, np.repeat(v[-1:], batch_size - n, axis=0)]) for v in part]
        inputs = model_inputs(model, part if len(arrays) > 1 else part[0], days)
        with lock:
            logits = np.asarray(model.predict_on_batch(inputs))
        logits = logits[:n]
        if temperature != 1.0:
            logits = logits / np.float32(temperature)
        out.append(softmax(logits))
    return np.concatenate(out) if out else np.zeros((0,), np.float32)
