"""``landcover classify``: scenes + a model bundle -> a seamless, georeferenced classification.

How a scene is cut (all sizes in pixels; ``s`` = ``classify.window``, ``o`` = ``classify.overlap``,
``d = s - o`` the stride; defaults in :func:`tiling`):

* **Windows** lie on one lattice of the whole grid: window ``k`` of an axis starts at
  ``k d - o // 2`` and *keeps* the pixels ``[k d, (k + 1) d)``, with ``o // 2`` pixels of context
  before them and the rest after. Each pixel is predicted ``(s / d)^2`` times (about 1.15 with the
  defaults: ``s`` at most 256, fitted to the grid, ``o = 16``), and taken from the one window where
  it lies furthest from the edge. Outside the grid the series is *reflected* (pixel ``-1`` is pixel
  ``1``). The context was measured: with 4 or 8 px of it the maps of the demo and of real
  sperrorest-maipo equal those of the earlier 30 px windows blended four times (README, "Tiling").
* **Blending** (``classify.blend`` > 0): a ``sin^2`` ramp of that width across each seam, inside
  the overlap; ramps of neighbouring windows sum to exactly 1. Off by default (it costs the windows
  at block edges a second prediction).
* **Blocks**: the grid is processed in ``classify.block_size`` blocks by dask (a multiple of the
  stride: no window is predicted for two blocks; by default 1024 px for up to 12 dates and smaller
  for longer series, so memory stays flat). A block task reads the pixels of every window that
  keeps pixels of the block, opening the scene files by path, and keeps each date's reflectance
  and validity (:class:`BlockData`); it builds a window's features (with reflection at the grid's
  edges) only when the window is predicted, in global lattice order, one model call of
  ``classify.batch_pixels`` window pixels at a time (one 256 px window: the fastest on the 2-core
  CPU measured), and writes its part of the result into a Zarr store next to the output, which it
  also opens by path. The model's calls are serialised; while one block is in the model, the
  other thread reads the next and builds the features of its next window. A block's result is
  therefore the same whichever way the grid is cut and whichever scheduler runs it; memory is
  bounded by the block size, not the scene size.
* **Missing data**: windows without any valid observation are not predicted; pixels without a
  valid observation on any date are nodata (255).
* **The network**: the bundle's network restated for prediction where its architecture has one
  (:func:`landcover.models.rebuild_for_window`): the default network streams the dates through
  every layer at once, so its memory does not grow with the series.
* **Precision**: ``classify.precision`` ``bfloat16``/``float16`` runs the network under Keras mixed
  precision (float32 weights and softmax); ``auto`` (the default) is bfloat16 where the CPU computes
  it natively, else float32 (:func:`landcover.runtime.auto_precision`; README, "Tiling").

Inputs are built exactly as in training, from the bundle: bands, normalisation statistics, gap
filling, validity channel and day-of-year features, dates dropped in training. The model is loaded
once per worker process (and shared by its threads).

When every block is done, the Zarr store is turned into a Cloud Optimized GeoTIFF (tiled, DEFLATE,
internal overviews with nearest resampling; colour table, class names, tags) under a temporary
name and renamed; a QGIS ``.qml`` style and a quicklook PNG are written beside it. An interrupted
run leaves only the hidden ``.OUT.partial`` store, which ``--resume`` continues.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from landcover.bundle import check_bundle, is_pixel
from landcover.catalog import item_path, write_map_item
from landcover.classes import ClassTable, class_table
from landcover.config import Config, MaskConfig, load_config
from landcover.contract import NODATA, PARTIAL_FORMAT, PROBABILITY_SCALE
from landcover.dataset import compressor, file_crc
from landcover.errors import ConfigError, ModelError, ResumeError, UsageError
from landcover.features import (
    DAYS_REFERENCE,
    DAYS_TOLERANCE,
    FeatureSpec,
    days_outside,
    feature_names,
    features_by_date,
    season_days,
)
from landcover.grid import Grid
from landcover.lattice import (
    OVERLAP,
    aligned_block,
    auto_window,
    block_side,
    reflect_index,
    support,
    taper,
    window_origins,
)
from landcover.maps import (
    FULL_DISK,
    class_areas,
    encode_classes,
    encode_probabilities,
    map_tags,
    write_errors,
    write_failed,
    write_map,
    write_probabilities,
    write_quicklook,
    write_style,
)
from landcover.models import variable_date_architectures
from landcover.outputs import OutputSet, check_space, remove
from landcover.postprocess import apply_steps, check_steps, configured_steps, halo_of
from landcover.postprocess import describe as describe_steps
from landcover.runtime import auto_precision, check_memory, import_keras
from landcover.scenes import Scene, SceneSource, as_scenes, scene_source

log = logging.getLogger(__name__)



# ------------------------------------------------------------------------------------------ paths
def output_paths(out: str | Path, probabilities: bool, quicklook: bool) -> dict[str, Path]:
    """The files a run writes: the map, its legend (GDAL category names, ``MAP.tif.aux.xml``), its
    QGIS style, its STAC item (``MAP.stac.json``, :mod:`landcover.catalog`), and optional
    probabilities/quicklook."""
    out = Path(out).absolute()
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"{out.name}: the classification is a GeoTIFF; give a name ending in "
                         ".tif", flag="--out")
    paths = {"map": out, "legend": out.with_name(out.name + ".aux.xml"),
             "style": out.with_suffix(".qml"), "item": item_path(out)}
    if probabilities:
        paths["probabilities"] = out.with_name(f"{out.stem}_probabilities.tif")
    if quicklook:
        paths["quicklook"] = out.with_name(f"{out.stem}_quicklook.png")
    return paths


def partial_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


# ---------------------------------------------------------------------------------- configuration
def resolve_config(model_dir: str | Path, config_path=None, overrides: Sequence[str] = ()):
    """``(bundle metadata, Config)``: the bundle's saved config (scenes mask and grid rules as in
    training), then ``--config``, then ``--set``. The bundle is checked (format, content hash).

    A bundle is not trusted (anyone who edits it recomputes its hash): settings that run code or
    open an address (:data:`landcover.config.UNTRUSTED_KEYS`: ``scenes.stac.signer``,
    ``scenes.grid.like``) are taken from the user's config and ``--set`` only, a
    ``scenes.profile`` that names a file becomes the profile recorded in the bundle (no file
    it names is read), and its settings are validated like the user's (a ModelError naming the
    bundle)."""
    from landcover.bundle import read_metadata
    from landcover.config import trusted_base
    from landcover.profiles import shipped_profiles

    meta = read_metadata(model_dir)
    saved = meta.get("config") or {}
    if not isinstance(saved, dict):
        raise ModelError(f"{model_dir}: the bundle's saved config is not a mapping; train again")
    base, dropped = trusted_base({k: saved[k] for k in ("scenes",) if k in saved})
    scenes = base.get("scenes")
    if isinstance(scenes, dict) and isinstance(scenes.get("profile"), str):
        records = meta.get("profiles") if isinstance(meta.get("profiles"), list) else []
        recorded = [r.get("name") for r in records if isinstance(r, dict)]
        known = {"auto", *(p.name for p in shipped_profiles()), *recorded}
        if scenes["profile"] not in known:  # a path: read with the recorded profile instead
            dropped.append(("scenes.profile", scenes.pop("profile")))
            if recorded and isinstance(recorded[0], str):
                scenes["profile"] = recorded[0]
    for key, value in dropped:
        log.warning("%s: the bundle's %s (%r) is not used: a bundle may not name code, files "
                    "or addresses (set it in your own --config or with --set)", model_dir, key,
                    value)
    try:
        load_config(None, (), base=base)
    except ConfigError as exc:
        raise ModelError(f"{model_dir}: the bundle's saved config is invalid ({exc}); train "
                         "again or restore the bundle") from None
    cfg = load_config(config_path, overrides, base=base)
    trained = (saved.get("scenes") or {}).get("mask")
    if trained is not None and _plain(asdict(cfg.scenes.mask)) != _plain(trained):
        log.warning("scenes.mask differs from the one the model was trained with (%s); the "
                    "validity channel will not mean the same thing", trained)
    return meta, cfg


def _plain(value):
    return json.loads(json.dumps(value))


# --------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Plan:
    """Everything a block task needs (small and picklable: it travels to dask workers)."""

    bundle: str
    content_hash: str
    groups: tuple  # scenes per date, in date order
    dates: tuple  # their dates
    features: FeatureSpec
    grid: Grid
    mask: MaskConfig
    window: int
    overlap: int
    batch_size: int  # windows per model call
    codes: tuple[int, ...]
    block: int
    store: str
    probabilities: bool
    probability_dtype: str
    uncertainty: str
    post: tuple = ()  # post-processing steps (landcover.postprocess)
    days: tuple | None = None  # the dates' days, for a network with a days input (else None)
    blend: int = 0  # width of the blended seam between windows (0: each pixel from one window)
    precision: str = "float32"  # the network's compute dtype policy
    temperature: float = 1.0  # logits are divided by it before the softmax (landcover.calibration)

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    @property
    def num_classes(self) -> int:
        return len(self.codes)

    def blocks(self) -> list[tuple[int, int]]:
        ny = math.ceil(self.grid.height / self.block)
        nx = math.ceil(self.grid.width / self.block)
        return [(i, j) for i in range(ny) for j in range(nx)]

    def origins(self) -> tuple[np.ndarray, np.ndarray]:
        """Window origins along y and x: the lattice over the whole grid."""
        return (window_origins(self.grid.height, self.window, self.overlap),
                window_origins(self.grid.width, self.window, self.overlap))

    def support(self) -> tuple[int, int]:
        """The positions of a window whose blending weight is not 0 (:func:`support`)."""
        return support(self.window, self.overlap, self.blend)

    def block_window(self, i: int, j: int) -> tuple[int, int, int, int]:
        r0, c0 = i * self.block, j * self.block
        return r0, min(r0 + self.block, self.grid.height), c0, min(c0 + self.block,
                                                                    self.grid.width)


# ------------------------------------------------------------------------------------- the model
_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def load_model(bundle: str | Path, window: int, precision: str = "float32"):
    """The bundle's network for ``window`` x ``window`` inputs (recurrent layers need static
    spatial shapes, so another window size rebuilds the network and copies the weights), computing
    in ``precision`` (``bfloat16``/``float16``: Keras mixed precision, float32 weights). A pixel
    classifier's bundle gives its :class:`landcover.pixel.PixelClassifier` (any window, float32,
    no Keras): its ``predict_on_batch`` returns log-probabilities as the logits."""
    from landcover.bundle import load_bundle, read_metadata
    from landcover.models import rebuild_for_window

    if is_pixel(read_metadata(bundle, verify=False)):
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


_LOADING: dict = {}  # model key -> (the loading thread, the first reader's lock)


def _load_in_background(plan: Plan) -> threading.Thread:
    """Load the worker model in a thread, so that Keras starts while the first block is read;
    a block that needs the model first waits for it (an error is raised again by the block's own
    :func:`worker_model`). The first block's call traces the network (a warm-up call on zeros
    cost one more call of the network's time before any block was predicted). Until the load
    ends, only one block task of this process reads (:func:`_wait_for_model`)."""
    def load():
        try:
            worker_model(plan)
        except Exception:  # noqa: BLE001 - reported by the block tasks
            log.debug("loading the model in the background failed", exc_info=True)

    thread = threading.Thread(target=load, name="landcover-model", daemon=True)
    _LOADING[_model_key(plan)] = (thread, threading.Lock())
    thread.start()
    return thread


def _wait_for_model(plan: Plan) -> None:
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
    """Class probabilities ``(n, s, s, K)`` of ``x (n, T, s, s, F)``, in batches of exactly
    ``batch_size`` (the last one padded) so every call has the same shape. ``days (T,)``: the
    dates' ``days`` input, for a network that takes one. ``temperature``: the bundle's
    (:mod:`landcover.calibration`), dividing the logits before the softmax."""
    from landcover.models import model_inputs

    out = []
    for a in range(0, len(x), batch_size):
        part = x[a:a + batch_size]
        n = len(part)
        if n < batch_size:
            part = np.concatenate([part, np.zeros((batch_size - n,) + part.shape[1:], part.dtype)])
        with lock:
            logits = np.asarray(model.predict_on_batch(model_inputs(model, part, days)))
        logits = logits[:n]
        if temperature != 1.0:
            logits = logits / np.float32(temperature)
        out.append(softmax(logits))
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


# ------------------------------------------------------------------------------------ block tasks
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
    straight into its batch.
    """

    def __init__(self, plan: Plan, rows: np.ndarray, cols: np.ndarray):
        from landcover.stack import read_date_block, read_scene_dn

        g, bands = plan.grid, plan.features.bands
        self.plan = plan
        ry, rx = reflect_index(rows, g.height), reflect_index(cols, g.width)
        y0, y1, x0, x1 = int(ry.min()), int(ry.max()) + 1, int(rx.min()), int(rx.max()) + 1
        h, w = y1 - y0, x1 - x0
        self.iy, self.ix = ry - y0, rx - x0  # row/col of the box for each of rows/cols
        self.dates = []  # per date: (scene or None, values (B, h, w), valid (h, w))
        any_valid = np.zeros((h, w), bool)
        for group in plan.groups:
            if len(group) > 1:  # a mosaic: its float32 reflectance
                layers = read_date_block(group, bands, g, plan.mask, y0, x0, h, w)[0]
                entry = (None, layers[:-1], layers[-1] > 0.5)
            else:
                got = read_scene_dn(group[0], bands, g, plan.mask, y0, x0, h, w)
                entry = (None, None, np.zeros((h, w), bool)) if got is None \
                    else (group[0], got[0], got[1])  # None: the scene misses the box
            self.dates.append(entry)
            any_valid |= entry[2]
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
            scene, values, valid = self.dates[t]
            valid = valid[ys][:, xs]
            if values is None:  # no data: features 0 (every pixel invalid)
                return np.zeros((h, w, len(bands)), np.float32), valid
            values = values[:, ys][:, :, xs]
            refl = values if scene is None else scale_dn(values, scene, bands,
                                                         out=np.empty(values.shape, np.float32))
            return np.moveaxis(refl, 0, -1), valid

        return features_by_date(read_date, self.plan.features, self.plan.dates, out)


def read_features(plan: Plan, rows: np.ndarray, cols: np.ndarray):
    """Model inputs over the global pixel rows/cols (ascending ranges, which may lie outside the
    grid: reflected), built as in training (:class:`BlockData`). Returns ``(features (T,
    len(rows), len(cols), F), valid (T, len(rows), len(cols)))``."""
    return BlockData(plan, rows, cols).features(0, 0, len(rows), len(cols))


def _marker(plan: Plan, i: int, j: int) -> Path:
    return Path(plan.store) / "done" / f"{i}_{j}.json"


def _network(plan: Plan):
    """:func:`worker_model`, with a network that Keras cannot build from the bundle (its
    ``bundle.json`` describes another architecture than ``model.keras`` holds, e.g. edited and
    its hash recomputed: "No such layer: convlstm1") reported as a :class:`ModelError`."""
    from landcover.errors import LandcoverError

    try:
        return worker_model(plan)
    except LandcoverError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ModelError(f"{plan.bundle}: the network described by its bundle.json cannot be "
                         f"built from its model.keras ({detail}); use the bundle as 'landcover "
                         "train' wrote it, or train the model again") from exc


def block_probabilities(plan: Plan, r0: int, r1: int, c0: int, c1: int):
    """Blended class probabilities of the pixels ``[r0:r1, c0:c1]``.

    Every lattice window whose weights are not 0 somewhere in the area is read (with reflection
    outside the grid) and, if it holds a valid observation, predicted; windows are visited in
    global lattice order, so a pixel's value is the same whichever area it is computed in. Without
    blending (``plan.blend == 0``) each pixel is copied from the one window that keeps it. Returns
    ``(prob (h, w, K) float32, observed (h, w) bool, windows predicted, windows skipped)``.
    """
    s = plan.window
    first, end = plan.support()
    oy, ox = plan.origins()
    oy = oy[(oy + first < r1) & (oy + end > r0)]
    ox = ox[(ox + first < c1) & (ox + end > c0)]
    gy0, gx0 = int(oy[0]), int(ox[0])
    data = BlockData(plan, np.arange(gy0, int(oy[-1]) + s), np.arange(gx0, int(ox[-1]) + s))

    # windows with at least one valid observation (summed-area table of "any date valid")
    anyv = np.pad(data.any_valid.astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = []
    for y in oy:
        for x in ox:
            a, b = y - gy0, x - gx0
            if anyv[a + s, b + s] - anyv[a, b + s] - anyv[a + s, b] + anyv[a, b] > 0:
                windows.append((int(y), int(x)))

    h, w, K = r1 - r0, c1 - c0, plan.num_classes
    acc = np.zeros((h, w, K), np.float32)
    wsum = np.zeros((h, w), np.float32)
    weights = taper(s, plan.overlap, plan.blend) if plan.blend else None
    if windows:
        model, lock = _network(plan)
        for a in range(0, len(windows), plan.batch_size):
            batch = windows[a:a + plan.batch_size]
            x = np.empty((len(batch), len(plan.dates), s, s, len(plan.features.names)),
                         np.float32)
            for k, (y, x0) in enumerate(batch):
                data.features(y - gy0, x0 - gx0, s, s, out=x[k])
            probs = predict_windows(model, lock, x, plan.batch_size, plan.days,
                                    plan.temperature)
            del x
            for (y, x), p in zip(batch, probs):  # global lattice order: same sums in any block
                ya, yb = max(y + first, r0), min(y + end, r1)
                xa, xb = max(x + first, c0), min(x + end, c1)
                if ya >= yb or xa >= xb:
                    continue
                out = (slice(ya - r0, yb - r0), slice(xa - c0, xb - c0))
                inside = (slice(ya - y, yb - y), slice(xa - x, xb - x))
                if plan.blend == 0:  # the window keeps these pixels alone: a copy, no weights
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


def _chunk_sums(plan: Plan, group, i: int, j: int) -> dict:
    """CRC32 of the store's chunk files of block ``(i, j)`` (one per array: chunks are whole
    blocks), by path relative to the store; None for a chunk not written (all fill value)."""
    coords = {"classes": (i, j), "probabilities": (0, i, j)}
    sums = {}
    for name in ["classes"] + (["probabilities"] if plan.probabilities else []):
        rel = f"{name}/{group[name].metadata.encode_chunk_key(coords[name])}"
        f = Path(plan.store) / rel
        sums[rel] = file_crc(f) if f.is_file() else None
    return sums


def _marker_fits(plan: Plan, group, marker: Path, record) -> bool:
    """A finished block's record agrees with its name and with the block's class codes in the
    store: the counts per class and of nodata are those of the codes (a record with edited
    counts would otherwise make the summary: 4,154,545 pixels on a 65,536-pixel grid)."""
    try:
        i, j = (int(v) for v in marker.stem.split("_"))
        if list(record["block"]) != [i, j] or (i, j) not in plan.blocks():
            return False
        counts, nodata = record["counts"], record["nodata"]
        if len(counts) != plan.num_classes or not all(
                isinstance(v, int) and v >= 0 for v in (*counts, nodata)):
            return False
        for key in ("windows", "windows_skipped"):
            if not isinstance(record[key], int) or record[key] < 0:
                return False
    except (ValueError, KeyError, TypeError):
        return False
    r0, r1, c0, c1 = plan.block_window(i, j)
    codes = group["classes"][r0:r1, c0:c1]
    lut = np.full(256, plan.num_classes, np.int64)
    lut[list(plan.codes)] = np.arange(plan.num_classes)
    found = np.bincount(lut[codes].ravel(), minlength=plan.num_classes + 1)
    missing = int((codes == NODATA).sum())  # every other code is a class: found[K] is nodata
    return found[:plan.num_classes].tolist() == list(counts) and missing == nodata == found[-1]


def _damaged_blocks(plan: Plan, group=None) -> list[Path]:
    """Markers of finished blocks whose chunks are missing or changed since they were written,
    or whose record does not fit the block (with the store's ``group``: :func:`_marker_fits`)."""
    bad = []
    for marker in sorted((Path(plan.store) / "done").glob("*.json")):
        try:
            record = json.loads(marker.read_text())
            sums = record["chunks"]
            if not isinstance(sums, dict):
                raise TypeError("chunks")
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(marker)
            continue
        for rel, crc in sums.items():
            f = Path(plan.store) / rel
            if (crc is None and f.exists()) or (crc is not None and (
                    not f.is_file() or file_crc(f) != crc)):
                bad.append(marker)
                break
        else:
            if group is not None and not _marker_fits(plan, group, marker, record):
                bad.append(marker)
    return bad


def classify_block(plan: Plan, i: int, j: int) -> dict:
    """Block ``(i, j)``: probabilities over the block and the post-processing halo, the
    post-processing steps, then class codes (and probabilities) of the block into the store;
    returns its counts."""
    import zarr

    marker = _marker(plan, i, j)
    if marker.exists():  # finished by an earlier (interrupted) run
        return json.loads(marker.read_text())
    _wait_for_model(plan)
    t0 = time.perf_counter()
    r0, r1, c0, c1 = plan.block_window(i, j)
    halo, g = halo_of(plan.post), plan.grid
    R0, R1 = max(0, r0 - halo), min(g.height, r1 + halo)
    C0, C1 = max(0, c0 - halo), min(g.width, c1 + halo)
    prob, observed, n_windows, n_skipped = block_probabilities(plan, R0, R1, C0, C1)
    prob = apply_steps(plan.post, prob, observed)
    core = (slice(r0 - R0, r1 - R0), slice(c0 - C0, c1 - C0))
    prob, observed = prob[core], observed[core]
    codes, index = encode_classes(prob, observed, plan.codes)

    store = zarr.open_group(plan.store, mode="r+")
    store["classes"][r0:r1, c0:c1] = codes
    if plan.probabilities:
        store["probabilities"][:, r0:r1, c0:c1] = encode_probabilities(
            prob, observed, plan.probability_dtype, plan.uncertainty)
    result = {"block": [i, j], "chunks": _chunk_sums(plan, store, i, j),
              "counts": np.bincount(index[observed], minlength=plan.num_classes).tolist(),
              "nodata": int((~observed).sum()), "windows": n_windows,
              "windows_skipped": n_skipped,
              "seconds": round(time.perf_counter() - t0, 3)}
    tmp = marker.with_name(f"tmp.{marker.name}")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, marker)  # the block counts as done only once its data is written
    return result


# ------------------------------------------------------------------------------------ the run
def _dates(meta: dict, groups: list, model_dir: Path) -> list:
    """The dates to classify: the scenes' dates minus those the model dropped in training."""
    dropped = set(meta.get("dates_dropped") or [])
    kept = [(d, g) for d, g in groups if d.isoformat() not in dropped]
    if len(kept) < len(groups):
        log.warning("leaving out %d date(s) that were dropped in training (too few valid "
                    "observations): %s", len(groups) - len(kept),
                    ", ".join(d.isoformat() for d, _ in groups if d.isoformat() in dropped))
    inp = meta["input"]
    if not kept:
        raise ModelError(f"{model_dir}: every date of the scenes was dropped in training")
    if not inp.get("variable_time_steps") and len(kept) != inp["time_steps"]:
        raise ModelError(
            f"{model_dir}: this {meta['architecture']['architecture']} model takes exactly "
            f"{inp['time_steps']} dates, the scenes give {len(kept)}; classify a series with as "
            f"many dates, or train a {'/'.join(variable_date_architectures())} model (any "
            "number of dates)")
    trained = meta.get("dates") or []
    ours = [d.isoformat() for d, _ in kept]
    days = kept_days(meta, [d for d, _ in kept])
    if days is not None:
        seen = inp["days"]["trained"]
        outside = days_outside(days, seen)
        if outside.any():
            log.warning("%d of %d dates lie more than %g days outside the seasonal range the "
                        "model was trained on (day %g .. %g of the season's year): %s; the "
                        "model has not seen these times of the season", int(outside.sum()),
                        len(days), DAYS_TOLERANCE, seen[0], seen[1],
                        ", ".join(d.isoformat() for (d, _), o in zip(kept, outside) if o))
    if ours != trained:
        log.info("classifying %d dates (%s .. %s); the model was trained on %d dates (%s .. %s)",
                 len(ours), ours[0], ours[-1], len(trained), trained[0] if trained else "-",
                 trained[-1] if trained else "-")
    return kept


def _warn_unlike_training(meta: dict, grid: Grid, dates: Sequence, model_dir: Path) -> None:
    """Warn, naming both, when the scenes' pixel size differs from the training grid's, or
    their dates span a very different time (half or twice as many dates or days, or one date
    against a series): the model runs, but on what it has not seen."""
    trained_grid = meta.get("grid") or {}
    try:
        t = trained_grid["transform"]
        trained_res = (abs(float(t[0])), abs(float(t[4])))
    except (KeyError, TypeError, IndexError, ValueError):
        trained_res = None
    if trained_res is not None and not all(
            math.isclose(a, b, rel_tol=0.01) for a, b in zip(trained_res, grid.res)):
        log.warning("%s: the model was trained on %s pixels, the scenes are on %s pixels (%s); "
                    "a model applied to another pixel size sees fields and edges at another "
                    "scale: expect a poorer map, or train on scenes of this resolution",
                    model_dir, _pixel_size(trained_res), _pixel_size(grid.res),
                    grid.describe())
    trained = [_iso_date(d) for d in meta.get("dates") or []]
    if not trained or not dates:
        return
    span_t, span_o = (trained[-1] - trained[0]).days, (dates[-1] - dates[0]).days
    n_t, n_o = len(trained), len(dates)
    if max(n_t, n_o) >= 2 * min(n_t, n_o) or (max(span_t, span_o) > 0 and (
            min(span_t, span_o) == 0 or max(span_t, span_o) >= 2 * min(span_t, span_o))):
        log.warning("%s: the model was trained on %d date(s) over %d days (%s .. %s), the scenes "
                    "give %d date(s) over %d days (%s .. %s); the model has not seen a series "
                    "like this one: expect a poorer map", model_dir, n_t, span_t, trained[0],
                    trained[-1], n_o, span_o, dates[0], dates[-1])


def _pixel_size(res) -> str:
    rx, ry = res
    return f"{rx:g} m" if math.isclose(rx, ry, rel_tol=1e-6) else f"{rx:g} x {ry:g} m"


def _iso_date(text: str):
    import datetime

    return datetime.date.fromisoformat(text)


def kept_days(meta: dict, dates: Sequence) -> np.ndarray | None:
    """The ``days`` input of ``dates`` for a bundle whose network takes the dates, else None:
    counted as in training, from the 1 January that puts most dates in the trained range
    (:func:`landcover.features.season_days`; another year's series lands on the same days)."""
    inp = meta.get("input") or {}
    if not inp.get("takes_dates"):
        return None
    reference = (inp.get("days") or {}).get("reference")
    if reference != DAYS_REFERENCE:
        raise ModelError(f"the bundle counts the days of its dates as {reference!r}; this "
                         f"landcover counts them as {DAYS_REFERENCE!r}; train the model again")
    return season_days(list(dates), (inp.get("days") or {}).get("trained"))


def _check_bundle(meta: dict, model_dir: Path) -> tuple[list[str], ClassTable]:
    inp = meta.get("input") or {}
    bands = list(inp.get("bands") or [])
    norm = meta.get("normalisation") or {}
    if not bands or inp.get("features") != feature_names(bands, bool(inp.get("doy"))) or \
            len(norm.get("mean", [])) != len(bands) or len(norm.get("std", [])) != len(bands):
        raise ModelError(f"{model_dir}: the bundle's input description (bands, features, "
                         "normalisation) is inconsistent; train the model again")
    table = class_table([{"code": c["code"], "name": c["name"], "color": c["color"]}
                         for c in meta["classes"]], source=f"{model_dir}/bundle.json")
    return bands, table


def _check_bands(scenes, bands: Sequence[str], model_dir: Path) -> None:
    from landcover.stack import scene_lacking

    lacking = scene_lacking(scenes, bands)
    if lacking:
        scene, missing = lacking
        raise ModelError(
            f"{model_dir}: the model was trained on bands {', '.join(bands)}, but "
            f"{scene.source} ({scene.sensor}) has no {', '.join(missing)}; classify scenes "
            "that provide these bands, or train a model on bands they share")


def _profile_spec(spec: str, meta: dict):
    """The sensor profiles to read the scenes with: those the bundle was trained with (its
    ``profiles`` records, so a user profile YAML need not be passed again, nor still exist), first
    under ``auto``, or alone when ``spec`` names one of them or a YAML that is gone."""
    from landcover.profiles import profile_from_record, shipped_profiles

    recorded = tuple(profile_from_record(r) for r in meta.get("profiles") or ())
    if not recorded:
        return spec
    names = {p.name for p in recorded}
    if spec == "auto":
        return recorded + tuple(p for p in shipped_profiles() if p.name not in names)
    if spec in names or (spec.endswith((".yaml", ".yml")) and not Path(spec).exists()):
        return recorded
    return spec


def model_scenes(paths: Sequence[str], meta: dict, cfg: Config) -> SceneSource:
    """The scenes of ``paths`` (folders, archives, STAC documents), read with the profiles the
    model was trained with (see :func:`_profile_spec`)."""
    from landcover.stac import signer_of

    return scene_source(paths, _profile_spec(cfg.scenes.profile, meta),
                        signer_of(cfg.scenes.stac.signer))


def build_plan(scenes: SceneSource | Sequence[Scene], model_dir: str | Path, cfg: Config,
               meta: dict, store: str | Path, probabilities: bool = False, post: Sequence = ()):
    """Check the bundle and the scenes against each other and plan the run (reads no pixels).

    Returns ``(plan, kept dates [(date, scenes)], class table)``.
    """
    from landcover.stack import date_groups, stack_grid

    model_dir = Path(model_dir).absolute()
    c = cfg.classify
    bands, table = _check_bundle(meta, model_dir)
    scenes = as_scenes(scenes)
    _check_bands(scenes, bands, model_dir)
    grid = stack_grid(scenes, cfg.scenes, bands)  # checks bands and grids; reads nothing
    kept = _dates(meta, date_groups(scenes), model_dir)
    _warn_unlike_training(meta, grid, [d for d, _ in kept], model_dir)
    inp = meta["input"]
    tiles = tiling(c, grid, inp["patch_size"], len(kept),
                   window_statistics=(meta.get("architecture") or {}).get("norm") == "group")
    plan = Plan(
        bundle=str(model_dir), content_hash=meta["content_hash"],
        groups=tuple(g for _, g in kept), dates=tuple(d for d, _ in kept),
        features=FeatureSpec.from_record({**inp, "normalisation": meta["normalisation"]}),
        grid=grid, mask=cfg.scenes.mask, codes=tuple(table.codes), **tiles,
        store=str(Path(store).absolute()),
        probabilities=probabilities, probability_dtype=c.probability_dtype,
        uncertainty=c.uncertainty, post=check_steps(post),
        days=_as_days(kept_days(meta, [d for d, _ in kept])),
        precision="float32" if is_pixel(meta) else  # a pixel classifier computes in float32
        auto_precision() if c.precision == "auto" else c.precision,
        temperature=float((meta.get("output") or {}).get("temperature") or 1.0))
    return plan, kept, table


def tiling(c, grid: Grid, patch_size: int, dates: int, window_statistics: bool = False) -> dict:
    """Window, overlap, blend, block and batch sizes of a run from ``classify.*`` (null keys
    derived: see :mod:`landcover.lattice`, :data:`~landcover.lattice.WINDOW`,
    :data:`~landcover.lattice.OVERLAP`, :func:`~landcover.lattice.block_side`).

    ``window_statistics``: the network normalises over the window (``norm: group``), so a window
    larger than the training patches would change its statistics: the defaults are then the
    patch size, half a patch of overlap, blended across the whole overlap.
    """
    if window_statistics and c.window is None:
        window = patch_size
        overlap = c.overlap if c.overlap is not None else patch_size // 2
        blend = c.blend or overlap
    else:
        window = c.window or auto_window(grid, patch_size,
                                         c.overlap if c.overlap is not None else OVERLAP)
        overlap = c.overlap if c.overlap is not None else min(OVERLAP, window // 2)
        blend = c.blend
    if overlap >= window:
        raise ConfigError(f"classify.overlap: {overlap} must be smaller than the window ({window})")
    if blend > overlap:
        raise ConfigError(f"classify.blend: {blend} must be at most the overlap ({overlap})")
    block = block_side(c.block_size, dates)
    batch = c.batch_size or max(1, c.batch_pixels // (window * window))
    return {"window": window, "overlap": overlap, "blend": blend, "batch_size": batch,
            "block": aligned_block(block, window - overlap)}


def _as_days(days) -> tuple | None:
    return None if days is None else tuple(float(v) for v in days)


def classify(scenes: SceneSource | Sequence[Scene], model_dir: str | Path, out: str | Path,
             cfg: Config | None = None, *, meta: dict | None = None,
             probabilities: bool = False, overwrite: bool = False, resume: bool = False,
             post: Sequence = (), progress=None) -> dict:
    """Classify the scenes with a model bundle; returns a summary of the run.

    Args:
        scenes: a :class:`~landcover.scenes.SceneSource` or :class:`~landcover.scenes.Scene`
            objects (:func:`model_scenes` reads local paths with the bundle's sensor profiles).
        post: post-processing steps (:mod:`landcover.postprocess`), applied to the probabilities
            of every block with the halo they need; the config's steps (``classify.smooth``,
            when enabled) follow them.
        progress: a :mod:`landcover.progress` reporter (``True`` logs stages; ``None`` silent).

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`). Everything that can be
    checked (bundle, scenes, bands, grids, dates, outputs) is checked before anything is written.

    Raises:
        ModelError, OutputExistsError, OutputLockedError, ResumeError, SceneError,
        GridMismatchError, ConfigError.
    """
    t_start = time.perf_counter()
    model_dir = Path(model_dir).absolute()
    if meta is None or cfg is None:
        meta, cfg = resolve_config(model_dir)
    post = (*post, *configured_steps(cfg, sorted(c["code"] for c in meta["classes"])))
    paths = output_paths(out, probabilities, cfg.classify.quicklook)
    with OutputSet(list(paths.values()), overwrite, folders=[False] * len(paths)) as outputs:
        try:
            return _run(scenes, model_dir, cfg, meta, paths, outputs, probabilities, resume,
                        post, progress, t_start)
        except write_errors() as exc:
            stopped = _full_disk(exc, paths["map"])
            if stopped is None:
                raise
            raise stopped from exc


def _full_disk(exc: BaseException, out: Path):
    """The one-line error of a run stopped by a full disk, or by a disk error (EIO, EROFS,
    EACCES, EPERM) while its block store exists; None for any other failure. The finished blocks
    stay in the ``.OUT.partial`` store, so it says to resume (a plain "left no output" would
    hide the store and the work in it)."""
    import errno
    import shutil

    from landcover.errors import OutputError

    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        free = None
    code = getattr(exc, "errno", None)
    full = code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < FULL_DISK)
    other = isinstance(exc, OSError) and code in (errno.EIO, errno.EROFS, errno.EACCES,
                                                  errno.EPERM)
    if not (full or other):
        return None
    partial = partial_path(out)
    where = getattr(exc, "filename", None) or out
    if not (partial / "run.json").is_file():
        return write_failed(out, exc) if full else None
    done = len(list((partial / "done").glob("*.json")))
    what = "the disk is full" if full else (exc.strerror or str(exc))
    todo = "free some space" if full else "make the folder writable or check the disk"
    return OutputError(f"{where}: {what}; the run stopped before writing {out.name}, and its "
                       f"{done} finished block(s) are kept in {partial}; {todo}, then run the "
                       "same command with --resume")


def _run(scenes, model_dir: Path, cfg: Config, meta: dict, paths: dict[str, Path],
         outputs: OutputSet, probabilities: bool, resume: bool, post, progress,
         t_start: float) -> dict:
    """The classification, under the output lock."""
    import dask

    from landcover.scheduler import compute

    out = paths["map"]
    plan, kept, table = build_plan(scenes, model_dir, cfg, meta, partial_path(out),
                                   probabilities, post)
    check_resources(plan, meta, out.parent)
    check_bundle(model_dir)  # a truncated or foreign model fails here, before anything is written
    resumed = _open_store(plan, _fingerprint(plan, kept, cfg), resume)
    log.info("%d dates, grid %s, window %d px (overlap %d), %d blocks of %d px%s", len(kept),
             plan.grid.describe(), plan.window, plan.overlap, len(plan.blocks()), plan.block,
             f", {resumed} already done" if resumed else "")

    shared = dask.delayed(plan, traverse=False)  # one graph key: its fields are not walked
    tasks = [dask.delayed(classify_block, pure=False)(shared, i, j) for i, j in plan.blocks()]
    import dask.threaded  # noqa: F401 - the scheduler's imports before the model's, not beside
    # the model loads while the first block is read; started after this thread's own imports,
    # which would otherwise compete with Keras's for Python's lock (README, "Benchmarks")
    loading = _load_in_background(plan)
    try:
        (results,) = compute(tasks, label="Classifying", show=progress)
    except ModelError:  # the model would not load: nothing of this run is worth resuming
        if not resume:
            remove(Path(plan.store))
        raise
    finally:
        loading.join()
        _LOADING.pop(_model_key(plan), None)
    t_model = time.perf_counter()
    counts = np.sum([r["counts"] for r in results], axis=0)
    _write_products(plan, kept, table, meta, cfg, paths, outputs, counts)
    remove(Path(plan.store))
    return {
        "output": str(out), "files": {k: str(v) for k, v in paths.items()},
        "grid": plan.grid.to_dict(), "dates": [d.isoformat() for d, _ in kept],
        "window": plan.window, "overlap": plan.overlap, "blend": plan.blend,
        "block_size": plan.block, "batch_size": plan.batch_size, "precision": plan.precision,
        "predictions_per_pixel": round(predictions_per_pixel(plan, results), 3),
        "post": describe_steps(plan.post),
        "blocks": len(results), "blocks_resumed": resumed,
        "windows": int(sum(r["windows"] for r in results)),
        "windows_skipped": int(sum(r["windows_skipped"] for r in results)),
        "nodata_pixels": int(sum(r["nodata"] for r in results)),
        "classified_pixels": int(counts.sum()), "classes": class_areas(table, counts, plan.grid),
        "model": str(model_dir), "content_hash": meta["content_hash"],
        "seconds": round(time.perf_counter() - t_start, 2),
        "seconds_classifying": round(t_model - t_start, 2),
    }


def _write_products(plan: Plan, kept, table: ClassTable, meta: dict, cfg: Config,
                    paths: dict[str, Path], outputs: OutputSet, counts) -> None:
    """The map products from the finished store, each under a temporary name, then put in place
    as one set (the map last: its presence means the run completed)."""
    resolved = cfg.to_dict()
    config = {"scenes": resolved["scenes"],
              "classify": {**resolved["classify"], "window": plan.window,
                           "overlap": plan.overlap, "blend": plan.blend,
                           "block_size": plan.block, "batch_size": plan.batch_size,
                           "precision": plan.precision, "post": describe_steps(plan.post)},
              "model": meta.get("config", {})}
    tags = map_tags(meta, [d for d, _ in kept], ["+".join(s.scene_id for s in g) for _, g in kept],
                    config, plan.bundle)
    windows = [plan.block_window(i, j) for i, j in plan.blocks()]
    tmp = {k: outputs.temporary(p) for k, p in paths.items()}
    write_map(plan.store, plan.grid, windows, table, tmp["map"], tags, legend=tmp["legend"])
    write_style(table, tmp["style"])
    if plan.probabilities:
        write_probabilities(plan.store, plan.grid, windows, table, tmp["probabilities"], tags,
                            plan.probability_dtype, plan.uncertainty)
    if "quicklook" in paths:
        write_quicklook(tmp["map"], table, counts, tmp["quicklook"],
                        title=f"{paths['map'].name}: {kept[0][0]} .. {kept[-1][0]}, "
                              f"{len(kept)} dates")
    # the STAC item last: sizes and checksums of the temporaries (renaming keeps the bytes)
    write_map_item(tmp["item"], paths, plan.grid, kept, table, meta, files=tmp,
                   probability_dtype=plan.probability_dtype, uncertainty=plan.uncertainty)
    outputs.commit({paths[k]: tmp[k] for k in paths})


def predictions_per_pixel(plan: Plan, results: list[dict]) -> float:
    """Window pixels predicted per pixel of the grid (1.0: no pixel predicted twice)."""
    windows = sum(r["windows"] for r in results)
    return windows * plan.window ** 2 / max(1, plan.grid.width * plan.grid.height)


def block_memory(plan: Plan, meta: dict) -> int:
    """Bytes one block task needs at its peak (an estimate): the rasters of the block and the
    halo its windows read (:class:`BlockData`: reflectance and validity per date), the blend
    accumulators, one batch of windows' features and the network's activations on it (the widest
    layer, a few tensors alive at once, for every date; a network that streams the dates holds
    its input three times, as the loop reads it, and one date's activations)."""
    from landcover.models import streams_dates

    T, F = len(plan.dates), len(plan.features.names)
    s, K = plan.window, plan.num_classes
    side = plan.block + 2 * halo_of(plan.post) + s
    features = T * side * side * 4 * (len(plan.features.bands) + 1)
    blend = (plan.block + 2 * halo_of(plan.post)) ** 2 * (K + 2) * 4 * 2
    arch = meta.get("architecture") or {}
    filters = int(arch.get("filters", 16))
    if "architecture" in arch and streams_dates(arch):
        batch = plan.batch_size * s * s * 4 * (3 * T * F + 24 * max(filters, K))
    elif is_pixel(meta):  # a pixel classifier: the batch as pixels, their features, the outputs
        batch = plan.batch_size * s * s * 4 * (3 * T * F + 4 * K)
    else:
        width = max(filters * 2 ** int(arch.get("layers", 1)), F, K)
        batch = plan.batch_size * T * s * s * (4 * F + 4 * width * 4)
    return int(features + blend + batch)


def check_resources(plan: Plan, meta: dict, folder: Path) -> None:
    """Refuse, before any work, settings whose block tasks cannot fit in the memory available
    (ConfigError naming the keys to lower), or outputs that cannot fit on the disk."""
    from landcover.scheduler import parallel_tasks

    check_memory(block_memory(plan, meta) * parallel_tasks(),
                 f"classify.window={plan.window}, classify.batch_size={plan.batch_size}, "
                 f"classify.block_size={plan.block}", "the block tasks need",
                 "classify.window, classify.batch_size or classify.block_size")
    px = plan.grid.width * plan.grid.height
    per_px = 1 + (plan.num_classes + 1) * np.dtype(plan.probability_dtype).itemsize * \
        plan.probabilities
    check_space(folder, 3 * px * per_px, "the map (block store, GeoTIFF, COG)")


def _fingerprint(plan: Plan, kept, cfg: Config) -> dict:
    return {"format": PARTIAL_FORMAT, "content_hash": plan.content_hash,
            "scenes": [[s.source for s in g] for _, g in kept],
            "grid": plan.grid.to_dict(), "window": plan.window, "overlap": plan.overlap,
            "blend": plan.blend, "precision": plan.precision,
            "block": plan.block, "probabilities": plan.probabilities,
            "probability_dtype": plan.probability_dtype, "uncertainty": plan.uncertainty,
            "post": describe_steps(plan.post),
            "scenes_config": _plain(cfg.to_dict()["scenes"])}


def _reopen_store(plan: Plan):
    """The interrupted run's Zarr group, checked to hold the arrays of this plan (its
    ``zarr.json`` files can be gone or garbled: KeyError, FileNotFoundError, JSONDecodeError)."""
    import zarr

    H, W = plan.grid.height, plan.grid.width
    K = plan.num_classes
    expected = {"classes": ((H, W), "uint8", (plan.block, plan.block))}
    if plan.probabilities:
        expected["probabilities"] = ((K + 1, H, W), plan.probability_dtype,
                                     (K + 1, plan.block, plan.block))
    try:
        group = zarr.open_group(plan.store, mode="r+")
        for name, (shape, dtype, chunks) in expected.items():
            arr = group[name]
            if (tuple(arr.shape), str(arr.dtype), tuple(arr.chunks)) != (shape, dtype, chunks):
                raise ValueError(f"{name} is {arr.dtype} {arr.shape} in chunks {arr.chunks}")
    except Exception as exc:  # noqa: BLE001 - any damage to the store's metadata
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ResumeError(f"{plan.store}: the interrupted run's block store is damaged "
                          f"({type(exc).__name__}: {detail})",
                          hint="run again without --resume (the store is then started "
                               "afresh)") from None
    return group


def _open_store(plan: Plan, fingerprint: dict, resume: bool) -> int:
    """Create the block store, or reopen it for ``--resume``; returns the blocks already done."""
    import zarr

    store = Path(plan.store)
    run_file = store / "run.json"
    if resume:
        if not run_file.is_file():
            raise ResumeError(f"{store}: nothing to resume (no interrupted run of this output)")
        try:
            saved = json.loads(run_file.read_text())
        except (OSError, ValueError):
            raise ResumeError(f"{run_file}: the interrupted run's record is damaged") from None
        if saved != _plain(fingerprint):
            diff = sorted(k for k in fingerprint if saved.get(k) != _plain(fingerprint[k]))
            raise ResumeError(f"{store}: the interrupted run used other settings "
                              f"({', '.join(diff)})")
        group = _reopen_store(plan)
        damaged = _damaged_blocks(plan, group)
        for marker in damaged:
            marker.unlink()
        if damaged:
            log.warning("%s: %d finished block(s) of the interrupted run are missing or damaged "
                        "(%s); computing them again", store, len(damaged),
                        ", ".join(m.stem for m in damaged))
        return len(list((store / "done").glob("*.json")))
    if store.exists():
        log.info("removing the unfinished run %s (use --resume to continue it)", store)
        remove(store)
    H, W = plan.grid.height, plan.grid.width
    group = zarr.open_group(str(store), mode="w")
    group.create_array("classes", shape=(H, W), dtype="uint8", chunks=(plan.block, plan.block),
                       fill_value=NODATA, compressors=[compressor()])
    if plan.probabilities:
        _, nodata = PROBABILITY_SCALE[plan.probability_dtype]
        group.create_array("probabilities", shape=(plan.num_classes + 1, H, W),
                           dtype=plan.probability_dtype,
                           chunks=(plan.num_classes + 1, plan.block, plan.block),
                           fill_value=nodata, compressors=[compressor()])
    (store / "done").mkdir()
    run_file.write_text(json.dumps(fingerprint, indent=1))
    return 0


__all__ = ["classify", "resolve_config", "build_plan", "window_origins", "reflect_index",
           "taper"]
