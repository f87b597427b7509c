"""The training input pipeline: stream a prepared dataset from disk into ``(x, y, sample_weight)``.

Reading and shuffling are chunk-aware: each epoch visits the stored chunks (32 patches each) of a
split in a random order, reads ``shuffle_chunks`` of them at a time (in background threads, ahead of
use), shuffles the patches of those chunks together, augments them and cuts batches. Memory is
bounded by about ``3 x shuffle_chunks`` chunks (read-ahead, group, prefetched batches) whatever
the dataset size. :meth:`PatchStream.keras_dataset` wraps this in a ``keras.utils.PyDataset``
with a background thread that keeps a shuffle group of batches ready: ``keras.Model.fit`` takes
it on every backend (TensorFlow, JAX, PyTorch). :meth:`PatchStream.tf_dataset`, the former
``tf.data`` wrapper (``from_generator`` + ``prefetch``), is kept for
``benchmarks/bench_train.py``'s side-by-side figures.

**Randomness is a function of (seed, epoch) only**, not of how many times the pipeline was iterated,
so an interrupted run resumed at epoch *e* sees exactly the batches the uninterrupted run saw
(``tf.data``'s own ``shuffle`` cannot promise that). The epoch is set by the training loop
(:attr:`PatchStream.epoch`) before each epoch begins.

Augmentation (training split only) is applied identically to inputs, labels and weights: random
90-degree rotations and flips of the patch, and optionally hiding random dates (bands and the
validity channel set to 0, i.e. "missing" in the dataset's encoding; day of year kept; at least one
date kept per patch).

For networks that take the dates (``days``: the dataset's dates as days since the reference of
:func:`landcover.features.days_since_reference`), ``x`` is the pair ``(series, days (B, T))``.
"""

from __future__ import annotations

import collections
import itertools
import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from landcover.dataset import PreparedDataset


class PatchStream:
    """Batches of one split of a prepared dataset, as numpy arrays or a ``tf.data.Dataset``.

    Args:
        ds: the opened dataset.
        split: ``train``, ``validation`` or ``test``.
        batch_size: patches per batch (the last batch of an epoch may be smaller).
        shuffle: visit chunks and patches in a random order (training).
        augment: ``train.augment`` config (or None for no augmentation).
        seed: base seed; epoch *e* uses ``default_rng([seed, e])``.
        class_weights: use the stored per-pixel class weights; False = 1 on every usable pixel.
        shuffle_chunks: chunks read and shuffled together.
        days: the acquisition days ``(T,)`` of the dataset's dates, for networks with a ``days``
            input: then every batch's ``x`` is ``(series, days (B, T))``; None = ``x`` alone.
    """

    def __init__(self, ds: PreparedDataset, split: str | tuple[str, ...], *, batch_size: int,
                 shuffle: bool = False, augment=None, seed: int = 0, class_weights: bool = True,
                 shuffle_chunks: int = 8, repeats: int = 1, days=None, exclude_groups=None):
        self.ds = ds
        self.split = split
        self.splits = (split,) if isinstance(split, str) else tuple(split)
        # cross-validation folds: the pixels of these spatial groups (the dataset's ``groups``)
        # are ignored (label 255, weight 0), so a fold's held-out pixels never train it
        self.exclude_groups = None if exclude_groups is None else np.asarray(exclude_groups)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.class_weights = class_weights
        self.shuffle_chunks = max(1, int(shuffle_chunks))
        self.repeats = max(1, int(repeats))
        self.epoch = 0
        self.days = None if days is None else np.asarray(days, np.float32)
        features = ds.features
        self._bands = [features.index(b) for b in ds.bands]
        self._valid = features.index("valid") if "valid" in features else None

    @property
    def size(self) -> int:
        return sum(self.ds.split_size(s) for s in self.splits
                   if s in self.ds.attrs.get("splits", {}))

    def _pieces(self) -> list[tuple[int, int]]:
        return [p for s in self.splits if s in self.ds.attrs.get("splits", {})
                for p in self.ds.pieces(s)]

    def _read(self, start: int, stop: int):
        x, y, w = self.ds.read(start, stop)
        if self.exclude_groups is not None:
            held = np.isin(np.asarray(self.ds.group["groups"][start:stop]), self.exclude_groups)
            y = np.where(held, self.ds.ignore_label, y).astype(y.dtype)
            w = np.where(held, 0.0, w).astype(w.dtype)
        return x, y, w

    def __len__(self) -> int:
        """Batches per epoch (``repeats`` passes over the split)."""
        return math.ceil(self.size / self.batch_size) * self.repeats

    # ------------------------------------------------------------------------------ numpy batches
    def batches(self, epoch: int | None = None):
        """Yield ``(x float32 (B,T,H,W,F), y uint8 (B,H,W), w float32 (B,H,W))`` for one epoch:
        ``repeats`` passes over the split, each shuffled and augmented anew."""
        epoch = self.epoch if epoch is None else epoch
        for r in range(self.repeats):
            rng = np.random.default_rng([self.seed, epoch] if r == 0 else [self.seed, epoch, r])
            yield from self._pass(rng)

    def _pass(self, rng):
        pieces = self._pieces()
        if self.shuffle:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        k = self.shuffle_chunks if self.shuffle else 1
        groups = [pieces[i:i + k] for i in range(0, len(pieces), k)]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="landcover-read") as pool:
            pending = collections.deque()

            def submit(group):
                pending.append([pool.submit(self._read, a, b) for a, b in group])

            for group in groups[:2]:
                submit(group)
            carry = None
            for gi in range(len(groups)):
                parts = [f.result() for f in pending.popleft()]
                if gi + 2 < len(groups):
                    submit(groups[gi + 2])
                if carry is not None:
                    parts.insert(0, carry)
                x, y, w = (np.concatenate([p[i] for p in parts]) for i in range(3))
                order = rng.permutation(len(x)) if self.shuffle else None
                n_full = len(x) // self.batch_size * self.batch_size
                for s in range(0, n_full, self.batch_size):
                    yield self._batch(x, y, w, order, s, s + self.batch_size, rng)
                if n_full < len(x):  # the remainder joins the next group
                    rest = order[n_full:] if order is not None else slice(n_full, None)
                    carry = (x[rest], y[rest], w[rest])
                else:
                    carry = None
            if carry is not None:
                yield self._batch(*carry, None, 0, len(carry[0]), rng)

    def _batch(self, x, y, w, order, start: int, stop: int, rng):
        """One batch: gathered (copied) from the group, then augmented in place."""
        if order is not None:
            idx = order[start:stop]
            bx, by, bw = x[idx], y[idx], w[idx]
        else:
            bx, by, bw = x[start:stop].copy(), y[start:stop].copy(), w[start:stop].copy()
        if self.augment is not None:
            self._augment(bx, by, bw, rng)
        if not self.class_weights:
            bw = (bw > 0).astype(np.float32)
        if self.days is not None:
            return (bx, np.repeat(self.days[None], len(bx), axis=0)), by, bw
        return bx, by, bw

    def _augment(self, x, y, w, rng) -> None:
        """In place: the same rotation/flip for a patch's inputs, labels and weights."""
        aug = self.augment
        square = x.shape[2] == x.shape[3]
        for i in range(len(x)):
            k = int(rng.integers(4)) if aug.rotations and square else 0
            flip = bool(rng.random() < 0.5) if aug.flips else False
            if k:
                x[i] = np.rot90(x[i], k, axes=(1, 2))
                y[i] = np.rot90(y[i], k, axes=(0, 1))
                w[i] = np.rot90(w[i], k, axes=(0, 1))
            if flip:
                x[i] = x[i][:, :, ::-1]
                y[i] = y[i][:, ::-1]
                w[i] = w[i][:, ::-1]
            if aug.drop_dates > 0 and x.shape[1] > 1:
                drop = rng.random(x.shape[1]) < aug.drop_dates
                if drop.all():
                    drop[rng.integers(x.shape[1])] = False
                for t in np.flatnonzero(drop):
                    x[i, t, :, :, self._bands] = 0.0
                    if self._valid is not None:
                        x[i, t, :, :, self._valid] = 0.0

    # ------------------------------------------------------------------------------ keras, tf.data
    def prefetch_depth(self) -> int:
        """Batches kept ready: a whole shuffle group (the generator's work comes in bursts at
        group boundaries, which this hides behind the model's steps), at least 2."""
        group = self.shuffle_chunks * self.ds.chunk // self.batch_size if self.shuffle else 1
        return max(2, min(group + 1, len(self)))

    def keras_dataset(self):
        """A ``keras.utils.PyDataset`` of the batches of the current :attr:`epoch` (read when
        Keras begins the epoch, so after the callbacks' ``on_epoch_begin`` set it), filled ahead
        by one background thread; no TensorFlow needed."""
        return _keras_batches()(self)

    def tf_dataset(self):
        """``tf.data.Dataset`` of the batches of the current :attr:`epoch`, prefetched."""
        import tensorflow as tf

        t, h, w, f = self.ds.input_shape
        series = tf.TensorSpec((None, t, h, w, f), tf.float32)
        if self.days is not None:
            series = (series, tf.TensorSpec((None, t), tf.float32))
        signature = (series,
                     tf.TensorSpec((None, h, w), tf.uint8),
                     tf.TensorSpec((None, h, w), tf.float32))
        data = tf.data.Dataset.from_generator(lambda: self.batches(), output_signature=signature)
        data = data.apply(tf.data.experimental.assert_cardinality(len(self)))
        options = tf.data.Options()
        # tf.data's autotuner is of no use here (nothing is AUTOTUNE) and its thread made the
        # iterator of each finished epoch wait seconds before it could be destroyed (measured:
        # 20 s stalls at epoch boundaries, see benchmarks/bench_train.py).
        options.autotune.enabled = False
        return data.prefetch(self.prefetch_depth()).with_options(options)


_DONE = object()


def _keras_batches():
    """The :class:`keras.utils.PyDataset` class of :meth:`PatchStream.keras_dataset` (defined on
    first use: importing Keras is left to the callers that train)."""
    global _KerasBatches
    if _KerasBatches is not None:
        return _KerasBatches
    import keras

    class KerasBatches(keras.utils.PyDataset):
        """Batch ``i`` of the epoch, in order, from a thread that runs
        :meth:`PatchStream.batches` ahead of the model; any other index (Keras reads the first
        batches to learn their shapes before training) is computed directly, which the
        determinism of :meth:`PatchStream.batches` (a function of seed and epoch) allows."""

        def __init__(self, stream: PatchStream):
            super().__init__(workers=1, use_multiprocessing=False)
            self.stream = stream
            self._queue = None
            self._stop = None
            self._next = 0

        def __len__(self) -> int:
            return len(self.stream)

        def on_epoch_begin(self):
            self.on_epoch_end()
            self._queue = q = queue.Queue(maxsize=self.stream.prefetch_depth())
            self._stop = stop = threading.Event()
            self._next = 0
            batches = self.stream.batches(self.stream.epoch)

            def fill():
                try:
                    for b in batches:
                        while not stop.is_set():
                            try:
                                q.put(b, timeout=0.1)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                    q.put(_DONE)
                except BaseException as exc:  # handed to the training thread, raised there
                    q.put(exc)

            threading.Thread(target=fill, name="landcover-batches", daemon=True).start()

        def on_epoch_end(self):
            if self._stop is not None:
                self._stop.set()
            self._queue = self._stop = None

        def __getitem__(self, i: int):
            if self._queue is not None and i == self._next:
                item = self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item is _DONE:
                    raise IndexError(f"batch {i} of an epoch of {len(self)}")
                self._next += 1
                return item
            return next(itertools.islice(self.stream.batches(self.stream.epoch), i, None))

    _KerasBatches = KerasBatches
    return KerasBatches


_KerasBatches = None
