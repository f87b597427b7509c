"""``landcover classify``: scenes + a model bundle -> a seamless, georeferenced classification.

How a scene is cut and blended (all sizes in pixels; ``s`` = ``classify.window``, by default the
model's patch size, ``o`` = ``classify.overlap``, by default ``s // 2``):

* **Windows** lie on one lattice of the whole grid: origins at ``-s//2 + k (s - o)`` along each
  axis, so the first window is centred on the first pixel and the last one on or beyond the last
  pixel. Outside the grid the series is *reflected* (pixel ``-1`` is pixel ``1``).
* **Blending**: each window's class probabilities (softmax of the model's logits) are weighted by
  a window that is 1 in the middle and falls off as ``sin^2`` over the ``o`` pixels at each edge;
  the weighted sums are divided by the summed weights. With ``o <= s/2`` the weights of
  overlapping windows add up to exactly 1, so the blend is a partition of unity.
* **Blocks**: the grid is processed in ``classify.block_size`` blocks by dask. A block task reads
  the pixels of every window that touches the block (the block plus a halo of up to ``s`` pixels,
  with reflection at the grid's edges), opening the scene files by path, predicts the windows in
  global lattice order and writes its part of the result into a Zarr store next to the output,
  which it also opens by path. A block's result is therefore the same whichever way the grid is
  cut and whichever scheduler runs it; memory is bounded by the block size, not the scene size.
* **Missing data**: windows without any valid observation are not predicted; pixels without a
  valid observation on any date are nodata (255).

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
from landcover.maps import (
    class_areas,
    encode_classes,
    encode_probabilities,
    map_tags,
    write_map,
    write_probabilities,
    write_quicklook,
    write_style,
)
from landcover.models import variable_date_architectures
from landcover.outputs import OutputSet, check_space, remove
from landcover.postprocess import apply_steps, check_steps, configured_steps, halo_of
from landcover.postprocess import describe as describe_steps
from landcover.runtime import check_memory, import_keras
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
    training), then ``--config``, then ``--set``. The bundle is checked (format, content hash)."""
    from landcover.bundle import read_metadata

    meta = read_metadata(model_dir)
    saved = meta.get("config") or {}
    base = {k: saved[k] for k in ("scenes",) if k in saved}
    cfg = load_config(config_path, overrides, base=base)
    trained = (saved.get("scenes") or {}).get("mask")
    if trained is not None and _plain(asdict(cfg.scenes.mask)) != _plain(trained):
        log.warning("scenes.mask differs from the one the model was trained with (%s); the "
                    "validity channel will not mean the same thing", trained)
    return meta, cfg


def _plain(value):
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------------------------ the lattice
def window_origins(n: int, window: int, stride: int) -> np.ndarray:
    """Origins of the windows along an axis of ``n`` pixels: the first window is centred on pixel 0,
    the last on pixel ``n - 1`` or beyond."""
    count = math.ceil((n - 1) / stride) + 1 if n > 1 else 1
    return -(window // 2) + stride * np.arange(count)


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Map indices outside ``0..n-1`` back into the grid by reflection (``-1 -> 1``, ``n -> n-2``)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = np.mod(index, period)
    return np.where(m >= n, period - m, m)


def aligned_block(block_size: int, stride: int) -> int:
    """``block_size`` rounded down to a multiple of the window stride (at least one stride).

    Block edges then fall on window origins, so one window per row/column straddles an edge
    instead of two: fewer windows are predicted twice (once for each block they touch).
    """
    return max(stride, block_size // stride * stride)


def taper(window: int, overlap: int) -> np.ndarray:
    """2-D blending weights: 1 inside, ``sin^2`` ramps over ``overlap`` pixels at each edge.

    Ramps of neighbouring windows (stride ``window - overlap``) sum to exactly 1.
    """
    w = np.ones(window, np.float64)
    ramp = min(overlap, window // 2)
    if ramp > 0:
        up = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
        w[:ramp] = up
        w[window - ramp:] = up[::-1]
    return np.outer(w, w).astype(np.float32)


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
    batch_size: int
    codes: tuple[int, ...]
    block: int
    store: str
    probabilities: bool
    probability_dtype: str
    uncertainty: str
    post: tuple = ()  # post-processing steps (landcover.postprocess)
    days: tuple | None = None  # the dates' days, for a network with a days input (else None)

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
        return (window_origins(self.grid.height, self.window, self.stride),
                window_origins(self.grid.width, self.window, self.stride))

    def block_window(self, i: int, j: int) -> tuple[int, int, int, int]:
        r0, c0 = i * self.block, j * self.block
        return r0, min(r0 + self.block, self.grid.height), c0, min(c0 + self.block,
                                                                    self.grid.width)


# ------------------------------------------------------------------------------------- the model
_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()


def load_model(bundle: str | Path, window: int):
    """The bundle's network for ``window`` x ``window`` inputs (recurrent layers need static
    spatial shapes, so another window size rebuilds the network and copies the weights)."""
    import_keras()
    from landcover.bundle import load_bundle
    from landcover.models import rebuild_for_window

    model, meta = load_bundle(bundle)
    return rebuild_for_window(model, meta, window)


def worker_model(plan: Plan):
    """``(model, lock)``, loaded once per process and shared by its threads; model calls are
    serialised (the backend already uses every core for one call) while other threads read,
    blend and write."""
    key = (plan.bundle, plan.content_hash, plan.window)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = (load_model(plan.bundle, plan.window), threading.Lock())
        return _MODELS[key]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def predict_windows(model, lock, x: np.ndarray, batch_size: int, days=None) -> np.ndarray:
    """Class probabilities ``(n, s, s, K)`` of ``x (n, T, s, s, F)``, in batches of exactly
    ``batch_size`` (the last one padded) so every call has the same shape. ``days (T,)``: the
    dates' ``days`` input, for a network that takes one."""
    from landcover.models import model_inputs

    out = []
    for a in range(0, len(x), batch_size):
        part = x[a:a + batch_size]
        n = len(part)
        if n < batch_size:
            part = np.concatenate([part, np.zeros((batch_size - n,) + part.shape[1:], part.dtype)])
        with lock:
            logits = np.asarray(model.predict_on_batch(model_inputs(model, part, days)))
        out.append(softmax(logits[:n]))
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


# ------------------------------------------------------------------------------------ block tasks
def read_features(plan: Plan, rows: np.ndarray, cols: np.ndarray):
    """Model inputs over the global pixel rows/cols (which may lie outside the grid: reflected).

    Built date by date by :func:`landcover.features.features_by_date`, the code that made the
    training inputs. Returns ``(features (T, len(rows), len(cols), F), valid (T, len(rows),
    len(cols)))``.
    """
    from landcover.stack import read_date_block

    g = plan.grid
    ry, rx = reflect_index(rows, g.height), reflect_index(cols, g.width)
    y0, y1, x0, x1 = int(ry.min()), int(ry.max()) + 1, int(rx.min()), int(rx.max()) + 1

    def read_date(t):
        block = read_date_block(plan.groups[t], plan.features.bands, g, plan.mask, y0, x0,
                                y1 - y0, x1 - x0)[0]
        return np.moveaxis(block[:-1], 0, -1), block[-1] > 0.5

    feats, valid = features_by_date(read_date, plan.features, plan.dates)
    if len(ry) == y1 - y0 and len(rx) == x1 - x0 and (ry == np.arange(y0, y1)).all() and \
            (rx == np.arange(x0, x1)).all():
        return feats, valid  # nothing reflected: no copy
    iy, ix = (ry - y0)[:, None], (rx - x0)[None, :]
    return feats[:, iy, ix], valid[:, iy, ix]


def _marker(plan: Plan, i: int, j: int) -> Path:
    return Path(plan.store) / "done" / f"{i}_{j}.json"


def block_probabilities(plan: Plan, r0: int, r1: int, c0: int, c1: int):
    """Blended class probabilities of the pixels ``[r0:r1, c0:c1]``.

    Every lattice window that touches the area is read (with reflection outside the grid) and,
    if it holds a valid observation, predicted; windows are visited in global lattice order, so
    a pixel's sum is the same whichever area it is computed in. Returns ``(prob (h, w, K)
    float32, observed (h, w) bool, windows predicted, windows skipped)``.
    """
    s = plan.window
    oy, ox = plan.origins()
    oy = oy[(oy < r1) & (oy + s > r0)]
    ox = ox[(ox < c1) & (ox + s > c0)]
    gy0, gx0 = int(oy[0]), int(ox[0])
    feats, valid = read_features(plan, np.arange(gy0, int(oy[-1]) + s),
                                 np.arange(gx0, int(ox[-1]) + s))

    # windows with at least one valid observation (summed-area table of "any date valid")
    anyv = np.pad(valid.any(axis=0).astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = []
    for y in oy:
        for x in ox:
            a, b = y - gy0, x - gx0
            if anyv[a + s, b + s] - anyv[a, b + s] - anyv[a + s, b] + anyv[a, b] > 0:
                windows.append((int(y), int(x)))

    h, w, K = r1 - r0, c1 - c0, plan.num_classes
    acc = np.zeros((h, w, K), np.float32)
    wsum = np.zeros((h, w), np.float32)
    weights = taper(s, plan.overlap)
    if windows:
        model, lock = worker_model(plan)
        for a in range(0, len(windows), plan.batch_size):
            batch = windows[a:a + plan.batch_size]
            x = np.stack([feats[:, y - gy0:y - gy0 + s, x - gx0:x - gx0 + s] for y, x in batch])
            probs = predict_windows(model, lock, x, plan.batch_size, plan.days)
            for (y, x), p in zip(batch, probs):  # global lattice order: same sums in any block
                ya, yb, xa, xb = max(y, r0), min(y + s, r1), max(x, c0), min(x + s, c1)
                if ya >= yb or xa >= xb:
                    continue
                wt = weights[ya - y:yb - y, xa - x:xb - x]
                acc[ya - r0:yb - r0, xa - c0:xb - c0] += wt[..., None] * p[ya - y:yb - y,
                                                                             xa - x:xb - x]
                wsum[ya - r0:yb - r0, xa - c0:xb - c0] += wt
    del feats
    observed = valid[:, r0 - gy0:r1 - gy0, c0 - gx0:c1 - gx0].any(axis=0) & (wsum > 0)
    prob = acc / np.where(wsum > 0, wsum, 1)[..., None]
    return prob, observed, len(windows), len(oy) * len(ox) - len(windows)


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


def _damaged_blocks(plan: Plan) -> list[Path]:
    """Markers of finished blocks whose chunks are missing or changed since they were written."""
    bad = []
    for marker in sorted((Path(plan.store) / "done").glob("*.json")):
        try:
            sums = json.loads(marker.read_text())["chunks"]
        except (OSError, ValueError, KeyError):
            bad.append(marker)
            continue
        for rel, crc in sums.items():
            f = Path(plan.store) / rel
            if (crc is None and f.exists()) or (crc is not None and (
                    not f.is_file() or file_crc(f) != crc)):
                bad.append(marker)
                break
    return bad


def classify_block(plan: Plan, i: int, j: int) -> dict:
    """Block ``(i, j)``: probabilities over the block and the post-processing halo, the
    post-processing steps, then class codes (and probabilities) of the block into the store;
    returns its counts."""
    import zarr

    marker = _marker(plan, i, j)
    if marker.exists():  # finished by an earlier (interrupted) run
        return json.loads(marker.read_text())
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
    from landcover.stack import date_groups, grid_of, stack_scenes

    model_dir = Path(model_dir).absolute()
    c = cfg.classify
    bands, table = _check_bundle(meta, model_dir)
    scenes = as_scenes(scenes)
    _check_bands(scenes, bands, model_dir)
    stack = stack_scenes(scenes, cfg.scenes, bands=bands)  # checks grids; reads nothing
    grid = grid_of(stack)
    kept = _dates(meta, date_groups(scenes), model_dir)
    inp = meta["input"]
    window = c.window or inp["patch_size"]
    overlap = c.overlap if c.overlap is not None else window // 2
    if overlap >= window:
        raise ConfigError(f"classify.overlap: {overlap} must be smaller than the window ({window})")
    plan = Plan(
        bundle=str(model_dir), content_hash=meta["content_hash"],
        groups=tuple(g for _, g in kept), dates=tuple(d for d, _ in kept),
        features=FeatureSpec.from_record({**inp, "normalisation": meta["normalisation"]}),
        grid=grid, mask=cfg.scenes.mask, window=window, overlap=overlap, batch_size=c.batch_size,
        codes=tuple(table.codes), block=aligned_block(c.block_size, window - overlap),
        store=str(Path(store).absolute()),
        probabilities=probabilities, probability_dtype=c.probability_dtype,
        uncertainty=c.uncertainty, post=check_steps(post),
        days=_as_days(kept_days(meta, [d for d, _ in kept])))
    return plan, kept, table


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
        return _run(scenes, model_dir, cfg, meta, paths, outputs, probabilities, resume, post,
                    progress, t_start)


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
    worker_model(plan)  # a corrupt model fails here, before anything is written
    resumed = _open_store(plan, _fingerprint(plan, kept, cfg), resume)
    log.info("%d dates, grid %s, window %d px (overlap %d), %d blocks of %d px%s", len(kept),
             plan.grid.describe(), plan.window, plan.overlap, len(plan.blocks()), plan.block,
             f", {resumed} already done" if resumed else "")

    tasks = [dask.delayed(classify_block, pure=False)(plan, i, j) for i, j in plan.blocks()]
    (results,) = compute(tasks, label="Classifying", show=progress)
    t_model = time.perf_counter()
    counts = np.sum([r["counts"] for r in results], axis=0)
    _write_products(plan, kept, table, meta, cfg, paths, outputs, counts)
    remove(Path(plan.store))
    return {
        "output": str(out), "files": {k: str(v) for k, v in paths.items()},
        "grid": plan.grid.to_dict(), "dates": [d.isoformat() for d, _ in kept],
        "window": plan.window, "overlap": plan.overlap, "block_size": plan.block,
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
                           "overlap": plan.overlap, "post": describe_steps(plan.post)},
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


def block_memory(plan: Plan, meta: dict) -> int:
    """Bytes one block task needs at its peak (an estimate): the features of the block and the
    halo its windows read, the blend accumulators, one batch of windows and the network's
    activations on it (the widest layer, a few tensors alive at once)."""
    T, F = len(plan.dates), len(plan.features.names)
    s, K = plan.window, plan.num_classes
    side = plan.block + 2 * halo_of(plan.post) + s
    features = T * side * side * (4 * F + 1)
    blend = (plan.block + 2 * halo_of(plan.post)) ** 2 * (K + 2) * 4 * 2
    arch = meta.get("architecture") or {}
    width = max(int(arch.get("filters", 16)) * 2 ** int(arch.get("layers", 1)), F, K)
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
            "block": plan.block, "probabilities": plan.probabilities,
            "probability_dtype": plan.probability_dtype, "uncertainty": plan.uncertainty,
            "post": describe_steps(plan.post),
            "scenes_config": _plain(cfg.to_dict()["scenes"])}


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
        damaged = _damaged_blocks(plan)
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
