"""Block tasks: the rasters of a block and the halo its windows read (:class:`BlockData`), the
windows that keep its pixels predicted and blended (:func:`block_probabilities`), the
post-processing steps, and the block's codes and probabilities written into the store
(:func:`classify_block`); the blocks read ahead of the model (:class:`ReadAhead`,
:func:`reading_ahead`)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from landcover.classify.plan import Plan
from landcover.classify.store import chunk_sums, done_marker
from landcover.classify.worker import (
    checked_model,
    model_for,
    predict_windows,
    wait_for_model,
)
from landcover.features import date_features, doy_sin_cos, features_by_date
from landcover.gdalio import keep_open
from landcover.lattice import reflect_index, taper
from landcover.maps import encode_classes, encode_probabilities
from landcover.postprocess import apply_steps, halo_of
from landcover.progress import part


class BlockData:
    """The rasters of every date over the global pixel ``rows`` x ``cols`` (ascending ranges,
    which may reach outside the grid: reflected), and the model inputs of any window of them.

    Each date's in-grid box is read once. A date of one scene keeps its digital numbers in the
    rasters' own type (:func:`landcover.stack.read_scene_dn`: 2 bytes a band for Landsat) and its
    validity; a mosaic of several scenes keeps the float32 reflectance and validity that
    :func:`landcover.stack.read_date_block` makes. A window's features are built only when the
    window is predicted: reflectance by :func:`landcover.stack.scale_dn` (the float32 operations
    of the training reads), then :func:`landcover.features.features_by_date`, the code that made
    the training inputs. A block therefore holds about 13 bytes per pixel and date instead of 37
    for every feature, reflection costs no copy of the block, and a window's features are written
    straight into its batch. Where the network makes the features (``plan.features_on ==
    "model"``), a window's digital numbers and validity are copied into its batch instead
    (:meth:`inputs`).
    """

    def __init__(self, plan: Plan, rows: np.ndarray, cols: np.ndarray, share=None,
                 entries=None):
        g = plan.grid
        self.plan = plan
        ry, rx = reflect_index(rows, g.height), reflect_index(cols, g.width)
        y0, x0, h, w = read_box(plan, rows, cols)
        self.iy, self.ix = ry - y0, rx - x0  # row/col of the box for each of rows/cols
        self.dates = []  # per date: (scene or None, values (B, h, w), valid (h, w))
        any_valid = np.zeros((h, w), bool)
        for t, group in enumerate(plan.groups):
            entry = read_date_entry(plan, group, y0, x0, h, w) if entries is None else \
                entries[t].result()  # read ahead (ReadAhead): its error is raised here
            self.dates.append(entry)
            any_valid |= entry[2]
            if share is not None:  # a landcover.progress.Part: one unit a date
                share.advance()
        self.any_valid = any_valid[self._index(self.iy, 0, len(rows))][
            :, self._index(self.ix, 0, len(cols))]  # (rows, cols): a valid date somewhere

    @staticmethod
    def _index(index: np.ndarray, a: int, n: int):
        """Positions ``a .. a + n`` of the box: a slice where they are consecutive (no copy),
        else the reflected indices."""
        part = index[a:a + n]
        if n == 1 or (np.diff(part) == 1).all():
            return slice(int(part[0]), int(part[0]) + n)
        return part

    def features(self, a: int, b: int, h: int, w: int, out: np.ndarray | None = None):
        """``(features (T, h, w, F), valid (T, h, w))`` of rows ``a .. a + h`` and columns
        ``b .. b + w`` (counted from the first of ``rows``/``cols``), into ``out`` if given."""
        from landcover.stack import scale_dn

        ys, xs = self._index(self.iy, a, h), self._index(self.ix, b, w)
        bands = self.plan.features.bands

        def read_date(t):
            scene, values, valid = self._window_of(t, ys, xs)
            if values is None:  # no data: features 0 (every pixel invalid)
                return np.zeros((h, w, len(bands)), np.float32), valid
            refl = values if scene is None else scale_dn(values, scene, bands,
                                                         out=np.empty(values.shape, np.float32))
            return np.moveaxis(refl, 0, -1), valid

        return features_by_date(read_date, self.plan.features, self.plan.dates, out)

    def inputs(self, a: int, b: int, h: int, w: int, dn: np.ndarray, valid: np.ndarray) -> None:
        """The digital numbers ``(T, B, h, w)`` and validity ``(T, h, w)`` of rows ``a .. a + h``
        and columns ``b .. b + w`` into ``dn`` and ``valid``, for a network that makes its
        features (:func:`landcover.models.with_input_features`; one scene per date)."""
        ys, xs = self._index(self.iy, a, h), self._index(self.ix, b, w)
        for t in range(len(self.dates)):
            _, values, valid[t] = self._window_of(t, ys, xs)
            dn[t] = 0 if values is None else values  # None: every pixel invalid

    def _window_of(self, t: int, ys, xs) -> tuple:
        """``(scene, values (B, h, w) or None, valid (h, w))`` of date ``t`` over the box's rows
        ``ys`` and columns ``xs`` (views where they are slices)."""
        scene, values, valid = self.dates[t]
        return scene, None if values is None else values[:, ys][:, :, xs], valid[ys][:, xs]

    @property
    def dn_dtype(self) -> np.dtype:
        """The type that holds every date's digital numbers."""
        kinds = [values.dtype for scene, values, _ in self.dates if values is not None]
        return np.result_type(*kinds) if kinds else np.dtype(np.uint16)


def dates_input(plan: Plan) -> np.ndarray:
    """The ``dates`` input of :class:`landcover.models.layers.InputFeatures` for the plan's dates
    ``(T, 4B + 2)`` float32: per band each date's scene's scale and offset, the normalisation's
    mean and std, then the sine and cosine of the day of year (0 without ``doy``)."""
    spec = plan.features
    bands, T = spec.bands, len(plan.dates)
    out = np.zeros((T, 4 * len(bands) + 2), np.float32)
    _, doy = date_features(plan.dates, spec.doy)
    for t, group in enumerate(plan.groups):
        scene = group[0]
        out[t, :len(bands)] = [np.float32(scene.scale[b]) for b in bands]
        out[t, len(bands):2 * len(bands)] = [np.float32(scene.offset[b]) for b in bands]
        if doy is not None:
            out[t, -2:] = doy_sin_cos(doy[t])
    out[:, 2 * len(bands):3 * len(bands)] = np.asarray(spec.mean).astype(np.float32)
    out[:, 3 * len(bands):4 * len(bands)] = np.asarray(spec.std).astype(np.float32)
    return out


def read_box(plan: Plan, rows: np.ndarray, cols: np.ndarray) -> tuple[int, int, int, int]:
    """``(row0, col0, height, width)``: the box of the grid that the global pixel ``rows`` x
    ``cols`` (reflected at the grid's edges) lie in, read once per date by :class:`BlockData`."""
    g = plan.grid
    ry, rx = reflect_index(rows, g.height), reflect_index(cols, g.width)
    y0, x0 = int(ry.min()), int(rx.min())
    return y0, x0, int(ry.max()) + 1 - y0, int(rx.max()) + 1 - x0


def read_date_entry(plan: Plan, group, y0: int, x0: int, h: int, w: int) -> tuple:
    """One date of a :class:`BlockData` over the box ``(y0, x0, h, w)``: ``(scene, digital
    numbers (B, h, w), valid (h, w))`` for one scene, ``(None, reflectance, valid)`` for a mosaic
    of several, ``(None, None, all False)`` where the scene misses the box."""
    from landcover.stack import read_date_block, read_scene_dn

    bands = plan.features.bands
    if len(group) > 1:  # a mosaic: its float32 reflectance
        layers = read_date_block(group, bands, plan.grid, plan.mask, y0, x0, h, w)[0]
        return None, layers[:-1], layers[-1] > 0.5
    got = read_scene_dn(group[0], bands, plan.grid, plan.mask, y0, x0, h, w)
    if got is None:
        return None, None, np.zeros((h, w), bool)
    return group[0], got[0], got[1]


def read_features(plan: Plan, rows: np.ndarray, cols: np.ndarray):
    """Model inputs over the global pixel rows/cols (ascending ranges, which may lie outside the
    grid: reflected), built as in training (:class:`BlockData`). Returns ``(features (T,
    len(rows), len(cols), F), valid (T, len(rows), len(cols)))``."""
    return BlockData(plan, rows, cols).features(0, 0, len(rows), len(cols))


def block_origins(plan: Plan, r0: int, r1: int, c0: int, c1: int):
    """``(origins y, origins x, rows, cols)``: the lattice windows whose weights are not 0
    somewhere in the pixels ``[r0:r1, c0:c1]``, and the global pixel rows and columns they read
    (which may reach outside the grid)."""
    s = plan.window
    first, end = plan.support()
    oy, ox = plan.origins()
    oy = oy[(oy + first < r1) & (oy + end > r0)]
    ox = ox[(ox + first < c1) & (ox + end > c0)]
    return oy, ox, np.arange(int(oy[0]), int(oy[-1]) + s), np.arange(int(ox[0]), int(ox[-1]) + s)


def block_probabilities(plan: Plan, r0: int, r1: int, c0: int, c1: int, *, block=None):
    """Blended class probabilities of the pixels ``[r0:r1, c0:c1]``.

    Every lattice window whose weights are not 0 somewhere in the area is read (with reflection
    outside the grid) and, if it holds a valid observation, predicted; windows are visited in
    global lattice order, so a pixel's value is the same whichever area it is computed in. Without
    blending (``plan.blend == 0``) each pixel is copied from the one window that keeps it. Returns
    ``(prob (h, w, K) float32, observed (h, w) bool, windows predicted, windows skipped)``.

    ``block``: the block ``(i, j)`` the area belongs to, when this process reads blocks ahead
    (:func:`reading_ahead`): its rasters are taken from the read-ahead (with its windows and first
    batch, readied during the block before's last call), and the next block's are read while this
    one is predicted. A batch's inputs (:func:`window_batch`) are made in a thread of their own
    while the model predicts the batch before (the same arrays, in the same order: the same
    result).
    """
    s = plan.window
    first, end = plan.support()
    oy, ox, rows, cols = block_origins(plan, r0, r1, c0, c1)
    gy0, gx0 = int(oy[0]), int(ox[0])
    # the block's progress: a unit per date read, one for the model, one per lattice window
    share = part(len(plan.groups) + 1 + len(oy) * len(ox))
    reader = READERS.get(plan.store) if block is not None else None
    prepared = reader.take_prepared(block, rows, cols, share) if reader is not None else None
    if prepared is not None:  # rasters, windows and first batch built beside the block before
        data, windows, first_batch = prepared
    else:
        data = reader.take(block, rows, cols, share) if reader is not None else \
            BlockData(plan, rows, cols, share)
        windows, first_batch = predicted_windows(plan, data, oy, ox), None
    # windows without a valid observation (and the model's unit when none needs it)
    share.advance(len(oy) * len(ox) - len(windows) + (not windows))

    h, w, K = r1 - r0, c1 - c0, plan.num_classes
    acc = np.zeros((h, w, K), np.float32)
    wsum = np.zeros((h, w), np.float32)
    weights = taper(s, plan.overlap, plan.blend) if plan.blend else None
    if not windows and reader is not None:
        reader.prefetch_after(block)
    if windows:
        model, lock = checked_model(plan)
        if reader is not None:  # once the model is loaded: its import holds Python's lock
            reader.prefetch_after(block)
        share.advance()

        batches = [windows[a:a + plan.batch_size]
                   for a in range(0, len(windows), plan.batch_size)]
        with ThreadPoolExecutor(1, thread_name_prefix="landcover-features") as builder:
            ahead = builder.submit(window_batch, plan, data, batches[0], gy0, gx0) \
                if first_batch is None else done(first_batch)
            del first_batch
            for n, batch in enumerate(batches):
                x = ahead.result()
                if n + 1 < len(batches):  # the next batch's features while this one is predicted
                    ahead = builder.submit(window_batch, plan, data, batches[n + 1], gy0, gx0)
                elif reader is not None:  # beside this block's last call (Python's lock)
                    builder.submit(reader.prepare_next, block)
                    if (idle := reader.idle_work()) is not None:
                        builder.submit(idle)
                probs = predict_windows(model_for(plan, model, x), lock, x, plan.batch_size,
                                        plan.days, plan.temperature)
                share.advance(len(batch))
                del x
                for (y, x), p in zip(batch, probs):  # global lattice order: same sums anywhere
                    ya, yb = max(y + first, r0), min(y + end, r1)
                    xa, xb = max(x + first, c0), min(x + end, c1)
                    if ya >= yb or xa >= xb:
                        continue
                    out = (slice(ya - r0, yb - r0), slice(xa - c0, xb - c0))
                    inside = (slice(ya - y, yb - y), slice(xa - x, xb - x))
                    if plan.blend == 0:  # the window keeps these pixels alone: a copy
                        acc[out] = p[inside]
                        wsum[out] = 1.0
                    else:
                        wt = weights[inside]
                        acc[out] += wt[..., None] * p[inside]
                        wsum[out] += wt
    observed = data.any_valid[r0 - gy0:r1 - gy0, c0 - gx0:c1 - gx0] & (wsum > 0)
    del data
    if plan.blend:
        acc /= np.where(wsum > 0, wsum, 1)[..., None]
    return acc, observed, len(windows), len(oy) * len(ox) - len(windows)


def predicted_windows(plan: Plan, data: BlockData, oy: np.ndarray, ox: np.ndarray) -> list:
    """The origins ``(y, x)`` of the lattice windows ``oy`` x ``ox`` that hold at least one valid
    observation in ``data`` (whose first row and column are ``oy[0]``, ``ox[0]``), in global
    lattice order: the windows a block predicts."""
    s, gy0, gx0 = plan.window, int(oy[0]), int(ox[0])
    # a summed-area table of "any date valid"
    anyv = np.pad(data.any_valid.astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = []
    for y in oy:
        for x in ox:
            a, b = y - gy0, x - gx0
            if anyv[a + s, b + s] - anyv[a, b + s] - anyv[a + s, b] + anyv[a, b] > 0:
                windows.append((int(y), int(x)))
    return windows


def window_batch(plan: Plan, data: BlockData, batch, gy0: int, gx0: int):
    """The model inputs of the windows ``batch`` (origins ``(y, x)``) from ``data``, whose first
    row and column are ``gy0``, ``gx0``: features ``(len(batch), T, s, s, F)``, or with
    ``plan.features_on == "model"`` the tuple ``(dn (n, T, B, s, s), valid (n, T, s, s) uint8,
    dates (n, T, 4B + 2))`` of :func:`landcover.models.with_input_features`."""
    s, T, n = plan.window, len(plan.dates), len(batch)
    if plan.features_on == "model":
        dn = np.empty((n, T, len(plan.features.bands), s, s), data.dn_dtype)
        valid = np.empty((n, T, s, s), np.uint8)
        for k, (y, x0) in enumerate(batch):
            data.inputs(y - gy0, x0 - gx0, s, s, dn[k], valid[k])
        dates = dates_input(plan)
        return dn, valid, np.broadcast_to(dates, (n,) + dates.shape)
    x = np.empty((n, T, s, s, len(plan.features.names)), np.float32)
    for k, (y, x0) in enumerate(batch):
        data.features(y - gy0, x0 - gx0, s, s, out=x[k])
    return x


def done(value) -> Future:
    """A future that already holds ``value``."""
    future = Future()
    future.set_result(value)
    return future


def block_area(plan: Plan, i: int, j: int) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: the pixels whose probabilities block ``(i, j)`` computes, its own
    and the halo its post-processing steps need, clipped to the grid."""
    r0, r1, c0, c1 = plan.block_window(i, j)
    halo, g = halo_of(plan.post), plan.grid
    return max(0, r0 - halo), min(g.height, r1 + halo), max(0, c0 - halo), min(g.width, c1 + halo)


def classify_block(plan: Plan, i: int, j: int) -> dict:
    """Block ``(i, j)``: probabilities over the block and the post-processing halo, the
    post-processing steps, then class codes (and probabilities) of the block into the store;
    returns its counts."""
    import zarr

    marker = done_marker(plan, i, j)
    if marker.exists():  # finished by an earlier (interrupted) run
        return json.loads(marker.read_text())
    wait_for_model(plan)
    t0 = time.perf_counter()
    r0, r1, c0, c1 = plan.block_window(i, j)
    R0, R1, C0, C1 = block_area(plan, i, j)
    prob, observed, n_windows, n_skipped = block_probabilities(plan, R0, R1, C0, C1,
                                                               block=(i, j))
    prob = apply_steps(plan.post, prob, observed)
    core = (slice(r0 - R0, r1 - R0), slice(c0 - C0, c1 - C0))
    prob, observed = prob[core], observed[core]
    codes, index = encode_classes(prob, observed, plan.codes)

    store = zarr.open_group(plan.store, mode="r+")
    store["classes"][r0:r1, c0:c1] = codes
    if plan.probabilities:
        store["probabilities"][:, r0:r1, c0:c1] = encode_probabilities(
            prob, observed, plan.probability_dtype, plan.uncertainty)
    result = {"block": [i, j], "chunks": chunk_sums(plan, store, i, j),
              "counts": np.bincount(index[observed], minlength=plan.num_classes).tolist(),
              "nodata": int((~observed).sum()), "windows": n_windows,
              "windows_skipped": n_skipped,
              "seconds": round(time.perf_counter() - t0, 3)}
    tmp = marker.with_name(f"tmp.{marker.name}")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, marker)  # the block counts as done only once its data is written
    return result


# ------------------------------------------------------------------------------------ read-ahead
READ_AHEAD = 1
"""Blocks read ahead of the one in the model (each holds its rasters: about 13 bytes per pixel
and date, :func:`landcover.classify.plan.block_memory`)."""

READERS: dict = {}  # plan.store -> the ReadAhead of the run in this process


class ReadAhead:
    """The blocks of a run read ahead of the model, in the order of ``plan.blocks()``, by a pool of
    threads (one date of a block a task: GDAL decodes without Python's lock), at most ``ahead``
    blocks beyond the one being predicted; blocks already finished (``--resume``) are skipped.
    The block tasks take their rasters with :meth:`take` and ask for the next with
    :meth:`prefetch_after`; a block not read ahead is read by its task, as without read-ahead.
    While a block's last call runs, its features thread readies the next block
    (:meth:`prepare_next`: its windows and first batch's features too), so that the model does
    not wait for them between the blocks (about 0.05 s a block on 2 cores). ``when_idle``: called
    once when no block is left to read, by the block task whose window features are all built
    (:meth:`idle_work`): warming up what the products need while the last windows are predicted,
    not while their features are built (its imports hold Python's lock: run in the read pool, it
    once held the last window's features up 0.44 s)."""

    def __init__(self, plan: Plan, ahead: int = READ_AHEAD, workers: int | None = None,
                 when_idle=None):
        self.plan, self.ahead, self.when_idle = plan, max(0, int(ahead)), when_idle
        self.order = plan.blocks()
        workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="landcover-read")
        self.pending: dict = {}  # (i, j) -> (rows, cols, the dates' futures)
        self.prepared: dict = {}  # (i, j) -> (rows, cols, future of prepare_next's readying)
        self.lock = threading.Lock()
        self.idle_called = False
        self.all_read = False  # every block left has been given to the pool

    def take(self, block, rows: np.ndarray, cols: np.ndarray, share=None) -> BlockData:
        """The rasters of ``block`` over ``rows`` x ``cols``: read ahead, or read now."""
        with self.lock:
            got = self.pending.pop(tuple(block), None)
        if got is not None and np.array_equal(got[0], rows) and np.array_equal(got[1], cols):
            return BlockData(self.plan, rows, cols, share, entries=got[2])
        return BlockData(self.plan, rows, cols, share)

    def prepare_next(self, block) -> None:
        """Ready the block read ahead after ``block`` for its task: its rasters (waiting for its
        reads), its windows and its first batch's features (:meth:`take_prepared`). Called in
        ``block``'s features thread once its last features are built, so the next block's first
        call follows ``block``'s last without the features in between; an error (a failed read)
        is kept for the next block's task to raise."""
        with self.lock:
            later = self.order[self.order.index(tuple(block)) + 1:] \
                if tuple(block) in self.order else []
            nxt = next((b for b in later if b in self.pending), None)
            if nxt is None:
                return
            rows, cols, entries = self.pending.pop(nxt)
            future = Future()
            self.prepared[nxt] = (rows, cols, future)
        try:
            data = BlockData(self.plan, rows, cols, entries=entries)
            oy, ox = block_origins(self.plan, *block_area(self.plan, *nxt))[:2]
            windows = predicted_windows(self.plan, data, oy, ox)
            batch = windows[:self.plan.batch_size]
            future.set_result((data, windows, window_batch(self.plan, data, batch, int(oy[0]),
                                                           int(ox[0])) if batch else None))
        except BaseException as exc:  # noqa: BLE001 - raised by the block that needs it
            future.set_exception(exc)

    def take_prepared(self, block, rows: np.ndarray, cols: np.ndarray, share=None):
        """``(BlockData, windows, first batch's features or None)`` of ``block`` as
        :meth:`prepare_next` readied it over ``rows`` x ``cols``; None where it did not."""
        with self.lock:
            got = self.prepared.pop(tuple(block), None)
        if got is None or not (np.array_equal(got[0], rows) and np.array_equal(got[1], cols)):
            return None
        prepared = got[2].result()
        if share is not None:
            share.advance(len(self.plan.groups))  # its dates, read
        return prepared

    def prefetch_after(self, block) -> None:
        """Start reading the blocks after ``block`` (in plan order, not finished, not already
        being read), up to ``ahead`` of them."""
        plan = self.plan
        try:
            k = self.order.index(tuple(block))
        except ValueError:
            return
        with self.lock:
            for i, j in self.order[k + 1:]:
                if len(self.pending) >= self.ahead:
                    return
                if (i, j) in self.pending or (i, j) in self.prepared or \
                        done_marker(plan, i, j).exists():
                    continue
                rows, cols = block_origins(plan, *block_area(plan, i, j))[2:]
                box = read_box(plan, rows, cols)
                self.pending[i, j] = (rows, cols, [
                    self.pool.submit(read_date_entry, plan, group, *box) for group in plan.groups])
            self.all_read = True

    def idle_work(self):
        """``when_idle``, once, when every block left is being read or done; else None."""
        with self.lock:
            if not self.all_read or self.when_idle is None or self.idle_called:
                return None
            self.idle_called = True
            return self.when_idle

    def close(self) -> None:
        """Drop what was read ahead and not taken; wait for the reads under way."""
        with self.lock:
            for _, _, futures in self.pending.values():
                for f in futures:
                    f.cancel()
            self.pending.clear()
            self.prepared.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def reading_ahead(plan: Plan, ahead: int = READ_AHEAD, when_idle=None):
    """Inside the ``with`` block, the block tasks of ``plan`` that run in this process read the
    next block while they predict theirs (:class:`ReadAhead`). Run the tasks one at a time, in
    the order of ``plan.blocks()``, so that each finds its rasters read (any order stays
    correct: a block not read ahead is read by its own task). The scene's rasters stay open
    until the block ends (:func:`landcover.gdalio.keep_open`: a file is opened once, and the
    tile column two neighbouring blocks share is decoded once)."""
    with keep_open():
        reader = ReadAhead(plan, ahead, when_idle=when_idle)
        READERS[plan.store] = reader
        try:
            yield reader
        finally:
            READERS.pop(plan.store, None)
            reader.close()
