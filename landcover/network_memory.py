"""How much memory a training step needs, and the batch that fits: the estimates
:func:`landcover.network_training.train_network` and ``landcover pretrain`` check before they start."""

from __future__ import annotations

import dataclasses
import logging

from landcover.config import TrainConfig
from landcover.dataset import PreparedDataset
from landcover.models import architecture
from landcover.runtime import check_memory

log = logging.getLogger(__name__)


MODEL_OVERHEAD = 128 * 2**20  # the backend's graph, weights and optimizer state of a small network


def batch_memory(tc: TrainConfig, shape, chunk: int, *, activations_only: bool = False) -> float:
    """Estimated bytes of one training step at ``tc.batch_size``: every layer keeps a few tensors
    of ``filters`` channels per pixel (and per date, for the networks that keep the dates), twice
    (the gradients); plus, unless ``activations_only``, the shuffle buffer of the input pipeline.
    A U-Net level ``l`` has ``2**l`` times the filters on a quarter of the pixels of the level
    above, so its levels add up to about twice the first. Each architecture's ``memory`` factor
    (:class:`landcover.models.Architecture`) brings the estimate within 0.77-1.90x of the peak
    measured by ``benchmarks/train_memory.py`` (12 and 47 dates, 30 px, batch 8; the old rule
    was 57x too high for the U-Net at 47 dates and refused batches that used 1.1 GB)."""
    t, h, w, f = shape
    m = tc.model
    arch = architecture(m.architecture)
    layers = int(m.layers)
    if arch.downsamples:  # sum over levels of 2**l channels on 4**-l of the pixels
        depth = sum(2.0 ** l / 4.0 ** l for l in range(layers))
    else:
        depth = layers
    factor, per_date = arch.memory
    activations = 12 * int(m.filters) * depth * factor * (t if per_date else 1)
    need = tc.batch_size * h * w * 4 * (f * t + activations) * 2 + MODEL_OVERHEAD
    if not activations_only:
        need += tc.shuffle_chunks * chunk * t * h * w * f * 4 * 2
    return need


def fit_batch_size(tc: TrainConfig, ds: PreparedDataset) -> int:
    """``train.batch_size``, or the largest half, quarter, ... of it whose step fits in the memory
    available (:func:`batch_memory`), with a warning; a batch of 1 that does not fit is refused
    (ConfigError naming ``train.batch_size``)."""
    import psutil

    available = psutil.virtual_memory().available
    batch = int(tc.batch_size)
    while batch > 1 and batch_memory(dataclasses.replace(tc, batch_size=batch), ds.input_shape,
                                     ds.chunk) > available:
        batch //= 2
    need = batch_memory(dataclasses.replace(tc, batch_size=batch), ds.input_shape, ds.chunk)
    t, h, w, _ = ds.input_shape
    check_memory(need, f"train.batch_size={batch}",
                 f"a training batch of {t} dates of {h}x{w} px needs",
                 "train.shuffle_chunks or train.model.filters")
    if batch < tc.batch_size:
        log.warning("train.batch_size=%d: a batch of %d dates of %dx%d px needs about %.1f GB, "
                    "%.1f GB is available; training with batches of %d instead", tc.batch_size,
                    t, h, w, batch_memory(tc, ds.input_shape, ds.chunk) / 1e9, available / 1e9,
                    batch)
    return batch


def checkpoint_bytes(model) -> int:
    """Bytes of one ``.weights.h5`` checkpoint: the weights and Adam's two moments (float32),
    with room for HDF5's overhead."""
    return int(model.count_params() * 4 * 3 * 1.2 + 1e6)
