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

import datetime as dt
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

from landcover import __version__
from landcover.classes import ClassTable, class_table
from landcover.config import Config, MaskConfig, load_config
from landcover.dataset import compressor
from landcover.errors import ConfigError, ModelError, OutputExistsError, UsageError
from landcover.features import FeatureSpec, feature_names, features_by_date
from landcover.grid import Grid, pixel_area_m2
from landcover.outputs import check_output, remove, temporary_path
from landcover.runtime import import_keras

log = logging.getLogger(__name__)

NODATA = 255
PARTIAL_FORMAT = 1
PROBABILITY_SCALE = {"uint8": (250, 255), "uint16": (10000, 65535)}  # dtype: (p = 1, nodata)
TIFF_BLOCK = 512


# ------------------------------------------------------------------------------------------ paths
def output_paths(out: str | Path, probabilities: bool, quicklook: bool) -> dict[str, Path]:
    """The files a run writes: the map, its QGIS style, and optional probabilities/quicklook."""
    out = Path(out).absolute()
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"--out {out.name}: the classification is a GeoTIFF; give a name ending "
                         "in .tif")
    paths = {"map": out, "style": out.with_suffix(".qml")}
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
    """The bundle's network for ``window`` x ``window`` inputs (ConvLSTM layers need static
    spatial shapes, so another window size rebuilds the network and copies the weights)."""
    import_keras()
    from landcover.bundle import load_bundle
    from landcover.models import build_model

    model, meta = load_bundle(bundle)
    inp = meta["input"]
    if window == inp["patch_size"]:
        return model
    t = None if inp.get("variable_time_steps") else inp["time_steps"]
    wide = build_model(meta["architecture"], (t, window, window, len(inp["features"])),
                       len(meta["classes"]), meta["output"].get("absent_classes", ()))
    wide.set_weights(model.get_weights())
    return wide


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


def predict_windows(model, lock, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities ``(n, s, s, K)`` of ``x (n, T, s, s, F)``, in batches of exactly
    ``batch_size`` (the last one padded) so every call has the same shape."""
    out = []
    for a in range(0, len(x), batch_size):
        part = x[a:a + batch_size]
        n = len(part)
        if n < batch_size:
            part = np.concatenate([part, np.zeros((batch_size - n,) + part.shape[1:], part.dtype)])
        with lock:
            logits = np.asarray(model.predict_on_batch(part))
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


def classify_block(plan: Plan, i: int, j: int) -> dict:
    """Classify block ``(i, j)`` and write it into the store; returns its counts."""
    import zarr

    marker = _marker(plan, i, j)
    if marker.exists():  # finished by an earlier (interrupted) run
        return json.loads(marker.read_text())
    t0 = time.perf_counter()
    r0, r1, c0, c1 = plan.block_window(i, j)
    s = plan.window
    oy, ox = plan.origins()
    oy = oy[(oy < r1) & (oy + s > r0)]
    ox = ox[(ox < c1) & (ox + s > c0)]
    gy0, gx0 = int(oy[0]), int(ox[0])
    rows = np.arange(gy0, int(oy[-1]) + s)
    cols = np.arange(gx0, int(ox[-1]) + s)
    feats, valid = read_features(plan, rows, cols)

    # windows with at least one valid observation (summed-area table of "any date valid")
    anyv = np.pad(valid.any(axis=0).astype(np.int32), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = []
    for y in oy:
        for x in ox:
            a, b = y - gy0, x - gx0
            if anyv[a + s, b + s] - anyv[a, b + s] - anyv[a + s, b] + anyv[a, b] > 0:
                windows.append((int(y), int(x)))
    n_all = len(oy) * len(ox)

    h, w, K = r1 - r0, c1 - c0, plan.num_classes
    acc = np.zeros((h, w, K), np.float32)
    wsum = np.zeros((h, w), np.float32)
    weights = taper(s, plan.overlap)
    if windows:
        model, lock = worker_model(plan)
        for a in range(0, len(windows), plan.batch_size):
            batch = windows[a:a + plan.batch_size]
            x = np.stack([feats[:, y - gy0:y - gy0 + s, x - gx0:x - gx0 + s] for y, x in batch])
            probs = predict_windows(model, lock, x, plan.batch_size)
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
    index = prob.argmax(axis=-1)
    codes = np.asarray(plan.codes, np.uint8)[index]
    codes[~observed] = NODATA

    store = zarr.open_group(plan.store, mode="r+")
    store["classes"][r0:r1, c0:c1] = codes
    if plan.probabilities:
        scale, nodata = PROBABILITY_SCALE[plan.probability_dtype]
        unc = uncertainty(prob, plan.uncertainty)
        layers = np.concatenate([np.moveaxis(prob, -1, 0), unc[None]])
        q = np.rint(layers * scale).astype(plan.probability_dtype)
        q[:, ~observed] = nodata
        store["probabilities"][:, r0:r1, c0:c1] = q
    result = {"block": [i, j],
              "counts": np.bincount(index[observed], minlength=K).tolist(),
              "nodata": int((~observed).sum()), "windows": len(windows),
              "windows_skipped": n_all - len(windows),
              "seconds": round(time.perf_counter() - t0, 3)}
    tmp = marker.with_name(f"tmp.{marker.name}")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, marker)  # the block counts as done only once its data is written
    return result


def uncertainty(prob: np.ndarray, kind: str) -> np.ndarray:
    """``(h, w)`` in [0, 1]: normalised Shannon entropy, or the margin ``1 - (p1 - p2)``."""
    K = prob.shape[-1]
    if kind == "margin":
        if K < 2:
            return np.zeros(prob.shape[:-1], np.float32)
        top = np.sort(prob, axis=-1)[..., -2:]
        return (1.0 - (top[..., 1] - top[..., 0])).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(prob > 0, prob * np.log(prob), 0.0), axis=-1)
    return (ent / math.log(K) if K > 1 else np.zeros_like(ent)).astype(np.float32)


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
            "many dates, or train a convlstm/unet_convlstm model (any number of dates)")
    trained = meta.get("dates") or []
    ours = [d.isoformat() for d, _ in kept]
    if ours != trained:
        log.info("classifying %d dates (%s .. %s); the model was trained on %d dates (%s .. %s)",
                 len(ours), ours[0], ours[-1], len(trained), trained[0] if trained else "-",
                 trained[-1] if trained else "-")
    return kept


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
    for scene in scenes:
        missing = [b for b in bands if b not in scene.bands]
        if missing:
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


def build_plan(scene_paths: Sequence[str], model_dir: str | Path, cfg: Config, meta: dict,
               store: str | Path, probabilities: bool = False):
    """Check the bundle and the scenes against each other and plan the run (reads no pixels).

    Returns ``(plan, kept dates [(date, scenes)], class table)``.
    """
    from landcover.scenes import find_scenes
    from landcover.stack import date_groups, grid_of, stack_scenes

    model_dir = Path(model_dir).absolute()
    c = cfg.classify
    bands, table = _check_bundle(meta, model_dir)
    scenes = find_scenes([str(Path(sp).absolute()) for sp in scene_paths],
                         profile=_profile_spec(cfg.scenes.profile, meta))
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
        uncertainty=c.uncertainty)
    return plan, kept, table


def classify(scene_paths: Sequence[str], model_dir: str | Path, out: str | Path,
             cfg: Config | None = None, *, meta: dict | None = None,
             probabilities: bool = False, overwrite: bool = False, resume: bool = False,
             progress: bool = True) -> dict:
    """Classify the scenes with a model bundle; returns a summary of the run.

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`). Everything that can be
    checked (bundle, scenes, bands, grids, dates, outputs) is checked before anything is written.

    Raises:
        ModelError, OutputExistsError, SceneError, GridMismatchError, ConfigError.
    """
    import dask

    from landcover.scheduler import compute

    t_start = time.perf_counter()
    model_dir = Path(model_dir).absolute()
    if meta is None or cfg is None:
        meta, cfg = resolve_config(model_dir)
    c = cfg.classify
    paths = output_paths(out, probabilities, c.quicklook)
    out = paths["map"]
    for path in paths.values():
        check_output(path, overwrite)
    store = partial_path(out)
    plan, kept, table = build_plan(scene_paths, model_dir, cfg, meta, store, probabilities)
    worker_model(plan)  # a corrupt model fails here, before anything is written
    grid = plan.grid
    fingerprint = _fingerprint(plan, kept, cfg)
    resumed = _open_store(plan, fingerprint, resume)
    log.info("%d dates, grid %s, window %d px (overlap %d), %d blocks of %d px%s", len(kept),
             grid.describe(), plan.window, plan.overlap, len(plan.blocks()), plan.block,
             f", {resumed} already done" if resumed else "")

    tasks = [dask.delayed(classify_block, pure=False)(plan, i, j) for i, j in plan.blocks()]
    (results,) = compute(tasks, label="Classifying", show=progress)
    t_model = time.perf_counter()

    tmp_paths = {k: temporary_path(p, "tmp") for k, p in paths.items()}
    try:
        tags = _tags(meta, kept, cfg, plan)
        write_map(plan, table, tmp_paths["map"], tags)
        write_style(table, tmp_paths["style"])
        if probabilities:
            write_probabilities(plan, table, tmp_paths["probabilities"], tags)
        counts = np.sum([r["counts"] for r in results], axis=0)
        if c.quicklook:
            write_quicklook(tmp_paths["map"], table, counts, tmp_paths["quicklook"],
                            title=f"{out.name}: {kept[0][0]} .. {kept[-1][0]}, {len(kept)} dates")
        for key, path in paths.items():  # the map last: its presence means the run completed
            if key != "map":
                os.replace(tmp_paths[key], path)
        os.replace(tmp_paths["map"], out)
    finally:
        for p in tmp_paths.values():
            remove(p)
    remove(store)

    px_area = pixel_area_m2(grid.crs, grid.transform)
    total = int(counts.sum())
    classes = []
    for cl, n in zip(table.classes, counts):
        row = {"code": cl.code, "name": cl.name, "pixels": int(n),
               "share": round(float(n) / total, 6) if total else None}
        if px_area is not None:
            row["hectares"] = round(float(n) * px_area / 1e4, 2)
        classes.append(row)
    return {
        "output": str(out), "files": {k: str(v) for k, v in paths.items()},
        "grid": grid.to_dict(), "dates": [d.isoformat() for d, _ in kept],
        "window": plan.window, "overlap": plan.overlap, "block_size": plan.block,
        "blocks": len(results), "blocks_resumed": resumed,
        "windows": int(sum(r["windows"] for r in results)),
        "windows_skipped": int(sum(r["windows_skipped"] for r in results)),
        "nodata_pixels": int(sum(r["nodata"] for r in results)),
        "classified_pixels": total, "classes": classes,
        "model": str(model_dir), "content_hash": meta["content_hash"],
        "seconds": round(time.perf_counter() - t_start, 2),
        "seconds_classifying": round(t_model - t_start, 2),
    }


def _fingerprint(plan: Plan, kept, cfg: Config) -> dict:
    return {"format": PARTIAL_FORMAT, "content_hash": plan.content_hash,
            "scenes": [[s.source for s in g] for _, g in kept],
            "grid": plan.grid.to_dict(), "window": plan.window, "overlap": plan.overlap,
            "block": plan.block, "probabilities": plan.probabilities,
            "probability_dtype": plan.probability_dtype, "uncertainty": plan.uncertainty,
            "scenes_config": _plain(cfg.to_dict()["scenes"])}


def _open_store(plan: Plan, fingerprint: dict, resume: bool) -> int:
    """Create the block store, or reopen it for ``--resume``; returns the blocks already done."""
    import zarr

    store = Path(plan.store)
    run_file = store / "run.json"
    if resume:
        if not run_file.is_file():
            raise OutputExistsError(f"{store}: nothing to resume (no interrupted run of this "
                                    "output); run without --resume")
        saved = json.loads(run_file.read_text())
        if saved != _plain(fingerprint):
            diff = sorted(k for k in fingerprint if saved.get(k) != _plain(fingerprint[k]))
            raise OutputExistsError(f"{store}: the interrupted run used other settings "
                                    f"({', '.join(diff)}); run without --resume to start over")
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


# ------------------------------------------------------------------------------------ GeoTIFFs
def _tags(meta: dict, kept, cfg: Config, plan: Plan) -> dict:
    return {
        "LANDCOVER_PRODUCT": "classification",
        "LANDCOVER_VERSION": __version__,
        "LANDCOVER_CREATED": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "LANDCOVER_MODEL": plan.bundle,
        "LANDCOVER_MODEL_HASH": meta["content_hash"],
        "LANDCOVER_DATES": json.dumps([d.isoformat() for d, _ in kept]),
        "LANDCOVER_SCENES": json.dumps(["+".join(s.scene_id for s in g) for _, g in kept]),
        "LANDCOVER_CLASSES": json.dumps([{"code": c["code"], "name": c["name"],
                                          "color": c["color"]} for c in meta["classes"]]),
        "LANDCOVER_CONFIG": json.dumps({"scenes": cfg.to_dict()["scenes"],
                                        "classify": {**cfg.to_dict()["classify"],
                                                     "window": plan.window,
                                                     "overlap": plan.overlap},
                                        "model": meta.get("config", {})}),
    }


def tiff_block(width: int, height: int) -> int:
    """Tile size: 512, smaller for small maps so that they still get internal overviews."""
    size = TIFF_BLOCK
    while size > 64 and max(width, height) <= size:
        size //= 2
    return size


def _cog(src: Path, dst: Path, resampling: str, block: int) -> None:
    from rasterio.shutil import copy

    copy(str(src), str(dst), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=block,
         OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")


def _write_blocks(plan: Plan, name: str, path: Path, count: int, dtype: str, nodata,
                  decorate) -> None:
    """Stream a store array into a tiled GeoTIFF, block by block, then convert it to a COG."""
    import rasterio
    import zarr
    from rasterio.windows import Window

    g = plan.grid
    arr = zarr.open_group(plan.store, mode="r")[name]
    plain = path.with_name(path.name + ".plain.tif")
    block = tiff_block(g.width, g.height)
    try:
        with rasterio.open(plain, "w", driver="GTiff", width=g.width, height=g.height,
                           count=count, dtype=dtype, crs=g.crs, transform=g.affine, nodata=nodata,
                           tiled=True, blockxsize=block, blockysize=block,
                           compress="deflate", BIGTIFF="IF_SAFER") as dst:
            for i, j in plan.blocks():
                r0, r1, c0, c1 = plan.block_window(i, j)
                data = arr[r0:r1, c0:c1] if count == 1 else arr[:, r0:r1, c0:c1]
                window = Window(c0, r0, c1 - c0, r1 - r0)
                if count == 1:
                    dst.write(data, 1, window=window)
                else:
                    dst.write(data, window=window)
            decorate(dst)
        _cog(plain, path, "NEAREST" if name == "classes" else "AVERAGE", block)
    finally:
        remove(plain)


def write_map(plan: Plan, table: ClassTable, path: Path, tags: dict) -> None:
    def decorate(dst):
        cmap = {code: (0, 0, 0, 0) for code in range(256)}
        for cl in table.classes:
            cmap[cl.code] = (*cl.rgb, 255)
        dst.write_colormap(1, cmap)
        dst.set_band_description(1, "land cover class")
        dst.update_tags(**tags)
        dst.update_tags(1, CLASSES=json.dumps({str(cl.code): cl.name for cl in table.classes}),
                        **{f"CLASS_{cl.code}": cl.name for cl in table.classes},
                        NODATA_MEANING="no valid observation on any date")

    _write_blocks(plan, "classes", path, 1, "uint8", NODATA, decorate)


def write_probabilities(plan: Plan, table: ClassTable, path: Path, tags: dict) -> None:
    scale, nodata = PROBABILITY_SCALE[plan.probability_dtype]

    def decorate(dst):
        K = len(table)
        for b, cl in enumerate(table.classes, start=1):
            dst.set_band_description(b, f"p({cl.name})")
            dst.update_tags(b, CLASS_CODE=str(cl.code), CLASS_NAME=cl.name)
        dst.set_band_description(K + 1, f"uncertainty ({plan.uncertainty})")
        dst.update_tags(K + 1, UNCERTAINTY=plan.uncertainty,
                        MEANING="normalised Shannon entropy of the class probabilities (0 certain, "
                                "1 uniform)" if plan.uncertainty == "entropy" else
                                "1 - (largest - second largest probability)")
        dst.scales = [1.0 / scale] * (K + 1)
        dst.offsets = [0.0] * (K + 1)
        dst.update_tags(**{**tags, "LANDCOVER_PRODUCT": "probabilities",
                           "LANDCOVER_SCALE": f"value / {scale} = probability; {nodata} = nodata "
                                              "(no valid observation)"})

    _write_blocks(plan, "probabilities", path, len(table) + 1, plan.probability_dtype, nodata,
                  decorate)


def write_style(table: ClassTable, path: Path) -> None:
    """A QGIS style: a paletted renderer with one entry (colour, class name) per class code."""
    import xml.etree.ElementTree as ET

    root = ET.Element("qgis", version="3.28.0", styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", band="1", opacity="1",
                             alphaBand="-1", nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for cl in table.classes:
        ET.SubElement(palette, "paletteEntry", value=str(cl.code), color=cl.color.lower(),
                      label=cl.name, alpha="255")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    text = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + \
        ET.tostring(root, encoding="unicode") + "\n"
    path.write_text(text, encoding="utf-8")


def write_quicklook(map_path: Path, table: ClassTable, counts, path: Path, *, title: str,
                    max_size: int = 1000) -> None:
    """A PNG of the map (read from its overviews, at most ``max_size`` px) with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.patches import Patch
    from rasterio.enums import Resampling

    with rasterio.open(map_path) as src:
        f = max(1.0, max(src.width, src.height) / max_size)
        shape = (max(1, round(src.height / f)), max(1, round(src.width / f)))
        codes = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    rgba = np.zeros(shape + (4,), np.uint8)
    for cl in table.classes:
        rgba[codes == cl.code] = (*cl.rgb, 255)
    total = max(int(np.sum(counts)), 1)
    fig, ax = plt.subplots(figsize=(9, 7 * shape[0] / max(shape[1], 1) + 1), dpi=110)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=cl.color, edgecolor="0.3",
                     label=f"{cl.code} {cl.name} ({100 * n / total:.1f}%)")
               for cl, n in zip(table.classes, counts)]
    handles.append(Patch(facecolor="white", edgecolor="0.3", label="no data"))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
              frameon=False)
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)


__all__ = ["classify", "resolve_config", "build_plan", "window_origins", "reflect_index",
           "taper"]
