"""``landcover prepare``: scenes + labels -> a Zarr dataset of spatio-temporal patches with weights.

The work runs in dask graphs whose tasks open their files by path, tile by tile, so memory is
bounded by ``prepare.patches.tile_size`` whatever the size of the scenes:

1. **Label survey** (labels only): class codes per pixel of the grid, counted per code, and the
   labelled pixels of every candidate window (``size`` x ``size`` every ``stride`` pixels).
   Derives the class table when none is configured; unknown codes are counted and reported.
2. **Extraction**: windows with enough labelled pixels are cut from all dates at once (reflectance,
   validity, label index) into a work store next to the output.
3. **Finalise**: dates whose valid share in those windows is too low are dropped; pixels with too
   few valid observations get the ignore label; windows failing ``min_labelled``/``min_valid`` are
   dropped; the rest are split into train/validation/test by blocks of the grid (a window belongs
   to the block that contains it whole, so windows of different splits never overlap);
   normalisation statistics come from valid observations of training windows only; class weights
   from the training split's pixel counts; the features are written.

The output is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover import __version__
from landcover.classes import IGNORE, ClassTable, load_class_table
from landcover.config import Config
from landcover.dataset import DATASET_FORMAT, SPLITS
from landcover.errors import DatasetError, LabelError
from landcover.grid import Grid
from landcover.labels import NOT_A_CODE, open_labels, window_codes
from landcover.outputs import check_output, remove, replace_output, temporary_path

log = logging.getLogger(__name__)

CHUNK_PATCHES = 32  # patches per Zarr chunk of the output


# --------------------------------------------------------------------------------- window geometry
@dataclass(frozen=True)
class Layout:
    """Window lattice and processing tiles over a grid."""

    height: int
    width: int
    size: int
    stride: int
    tile: int  # tile side in pixels, a multiple of stride

    @property
    def n_rows(self) -> int:
        return 0 if self.height < self.size else (self.height - self.size) // self.stride + 1

    @property
    def n_cols(self) -> int:
        return 0 if self.width < self.size else (self.width - self.size) // self.stride + 1

    def tiles(self):
        """Yield ``(core, windows)``: core ``(r0, c0, r1, c1)`` and the (row, col) of the windows
        whose top-left pixel lies in it."""
        m = self.tile // self.stride
        for ti in range(math.ceil(self.height / self.tile)):
            for tj in range(math.ceil(self.width / self.tile)):
                core = (ti * self.tile, tj * self.tile, min(self.height, (ti + 1) * self.tile),
                        min(self.width, (tj + 1) * self.tile))
                rows = [i * self.stride for i in range(ti * m, min(self.n_rows, (ti + 1) * m))]
                cols = [j * self.stride for j in range(tj * m, min(self.n_cols, (tj + 1) * m))]
                yield core, [(r, c) for r in rows for c in cols]


def make_layout(grid: Grid, cfg: Config) -> Layout:
    p = cfg.prepare.patches
    tile = max(p.stride, (p.tile_size // p.stride) * p.stride)
    layout = Layout(grid.height, grid.width, p.size, p.stride, tile)
    if layout.n_rows == 0 or layout.n_cols == 0:
        raise DatasetError(f"the stack grid ({grid.width} x {grid.height} px) is smaller than one "
                           f"window; lower prepare.patches.size ({p.size})")
    return layout


# ------------------------------------------------------------------------------------ label survey
def survey_tile(labels, grid: Grid, layout: Layout, core, windows, known: np.ndarray, erode: int):
    """Code histogram of the tile's core pixels and labelled pixels of each window."""
    r0, c0, r1, c1 = core
    if windows:
        r1w = max(r + layout.size for r, _ in windows)
        c1w = max(c + layout.size for _, c in windows)
    else:
        r1w, c1w = r1, c1
    R1, C1 = max(r1, r1w), max(c1, c1w)
    codes = window_codes(labels, grid, r0, c0, R1 - r0, C1 - c0, erode)
    body = codes[:r1 - r0, :c1 - c0]
    hist = np.bincount(body[(body >= 0) & (body < 256)].ravel(), minlength=256)
    not_a_code = int((body == NOT_A_CODE).sum())
    usable = np.zeros(codes.shape, bool)
    inside = (codes >= 0) & (codes < 256)
    usable[inside] = known[codes[inside]]
    s = layout.size
    counts = np.array([usable[r - r0:r - r0 + s, c - c0:c - c0 + s].sum() for r, c in windows],
                      np.int64)
    return hist, not_a_code, counts


# -------------------------------------------------------------------------------------- extraction
def extract_tile(groups, bands, grid: Grid, mask, labels, lut: np.ndarray, layout: Layout,
                 windows, erode: int):
    """Cut ``windows`` from every date: reflectance ``(k, T, s, s, B)`` float32 (NaN = no data),
    valid ``(k, T, s, s)`` bool and label indices ``(k, s, s)`` uint8 (255 = ignore)."""
    from landcover.stack import read_date_block

    s = layout.size
    r0 = min(r for r, _ in windows)
    c0 = min(c for _, c in windows)
    h = max(r for r, _ in windows) + s - r0
    w = max(c for _, c in windows) + s - c0
    codes = window_codes(labels, grid, r0, c0, h, w, erode)
    index = np.full(codes.shape, IGNORE, np.uint8)
    inside = (codes >= 0) & (codes < 256)
    index[inside] = lut[codes[inside]]
    k, T, B = len(windows), len(groups), len(bands)
    refl = np.empty((k, T, s, s, B), np.float32)
    valid = np.empty((k, T, s, s), bool)
    lab = np.empty((k, s, s), np.uint8)
    for n, (r, c) in enumerate(windows):
        lab[n] = index[r - r0:r - r0 + s, c - c0:c - c0 + s]
    for t, g in enumerate(groups):  # one date in memory at a time, cut straight into the output
        block = read_date_block(g, bands, grid, mask, r0, c0, h, w)[0]
        for n, (r, c) in enumerate(windows):
            cut = block[:, r - r0:r - r0 + s, c - c0:c - c0 + s]
            refl[n, t] = np.moveaxis(cut[:-1], 0, -1)
            valid[n, t] = cut[-1] > 0.5
    return refl, valid, lab


# ------------------------------------------------------------------------------------------ splits
def assign_splits(rows: np.ndarray, cols: np.ndarray, size: int, block: int, gap: int,
                  fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split code per window (0 train, 1 validation, 2 test; -1 = dropped: not inside one block).

    Blocks are ``block`` x ``block`` pixel squares from the grid origin; a window belongs to the
    block that contains it whole, at least ``gap`` pixels from the block's edges. Blocks are shuffled
    with ``seed`` and each goes to the split furthest below its target share of windows.
    """
    rows, cols = np.asarray(rows), np.asarray(cols)
    bi, bj = rows // block, cols // block
    inside = ((rows - bi * block >= gap) & (cols - bj * block >= gap)
              & (rows + size + gap <= (bi + 1) * block) & (cols + size + gap <= (bj + 1) * block))
    split = np.full(len(rows), -1, np.int8)
    keys = bi * (10 ** 9) + bj
    blocks, inverse, counts = np.unique(keys[inside], return_inverse=True, return_counts=True)
    if len(blocks) == 0:
        return split
    order = np.random.default_rng(seed).permutation(len(blocks))
    targets = np.asarray(list(fractions) + [0.0] * (3 - len(fractions)), float)
    have = np.zeros(3)
    block_split = np.empty(len(blocks), np.int8)
    total = counts.sum()
    for b in order:
        deficit = np.where(targets > 0, targets * total - have, -np.inf)
        k = int(np.argmax(deficit))
        block_split[b] = k
        have[k] += counts[b]
    split[np.flatnonzero(inside)] = block_split[inverse]
    return split


# ---------------------------------------------------------------------------------------- features
def feature_names(bands: Sequence[str], doy: bool) -> list[str]:
    return list(bands) + ["valid"] + (["doy_sin", "doy_cos"] if doy else [])


def interpolate_time(z: np.ndarray, valid: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Fill invalid observations of ``z (k, T, s, s, B)`` linearly in time between the nearest
    valid dates (the nearest valid value before the first or after the last); 0 where a pixel has
    no valid observation."""
    k, T = valid.shape[:2]
    idx = np.arange(T).reshape(1, T, 1, 1)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, idx, T), 1), axis=1), 1)
    has_prev, has_next = prev >= 0, nxt < T
    p, q = np.clip(prev, 0, T - 1), np.clip(nxt, 0, T - 1)
    zp = np.take_along_axis(z, p[..., None], axis=1)
    zq = np.take_along_axis(z, q[..., None], axis=1)
    t = days.astype(np.float64)
    span = t[q] - t[p]
    frac = np.where(span > 0, (t[idx] - t[p]) / np.where(span > 0, span, 1), 0.0)
    frac = np.where(has_prev & has_next, frac, np.where(has_next, 1.0, 0.0)).astype(np.float32)
    filled = zp * (1 - frac[..., None]) + zq * frac[..., None]
    filled = np.where((has_prev | has_next)[..., None], filled, 0.0)
    return np.where(valid[..., None], z, filled).astype(np.float32)


def make_features(refl: np.ndarray, valid: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  days: np.ndarray, doy: np.ndarray | None, fill: str) -> np.ndarray:
    """``(k, T, s, s, B)`` reflectance + ``(k, T, s, s)`` validity -> ``(k, T, s, s, F)`` features.

    Bands are standardised with ``mean``/``std``; invalid observations become 0 (the mean) or are
    interpolated in time; then the validity channel and optional day-of-year sin/cos follow.
    """
    B = refl.shape[-1]
    out = np.empty(refl.shape[:-1] + (B + 1 + (2 if doy is not None else 0),), np.float32)
    z = out[..., :B]  # filled in place: no extra copies of the chunk
    np.subtract(refl, mean.astype(np.float32), out=z)
    np.divide(z, std.astype(np.float32), out=z)
    z[~valid] = 0.0
    if fill == "linear":
        z[...] = interpolate_time(z, valid, days)
    out[..., B] = valid
    if doy is not None:
        angle = 2 * np.pi * doy.astype(np.float64) / 365.25
        out[..., B + 1] = np.sin(angle).astype(np.float32).reshape(1, -1, 1, 1)
        out[..., B + 2] = np.cos(angle).astype(np.float32).reshape(1, -1, 1, 1)
    return out


def _read_work(work: str, name: str, index: np.ndarray, t_idx=None) -> np.ndarray:
    import zarr

    z = zarr.open_array(f"{work}/{name}", mode="r")
    if t_idx is None:
        return z.get_orthogonal_selection((index,))
    return z.get_orthogonal_selection((index, t_idx))


def _final_inputs(index, *, work, t_idx, **kwargs):
    """Features of the samples ``index`` (one output chunk), read from the work store."""
    refl = _read_work(work, "reflectance", index, t_idx)
    valid = _read_work(work, "valid", index, t_idx)
    return make_features(refl, valid, **kwargs)


def ignore_unobserved(lab, valid, min_valid_dates: int):
    """The ignore label where a pixel has fewer than ``min_valid_dates`` valid observations
    (``lab (k, s, s)``, ``valid (k, T, s, s)``; numpy or dask)."""
    return np.where(valid.sum(axis=1) >= min_valid_dates, lab, np.uint8(IGNORE)).astype(np.uint8)


def _final_labels(index, *, work, t_idx, min_valid_dates):
    return ignore_unobserved(_read_work(work, "labels", index),
                             _read_work(work, "valid", index, t_idx), min_valid_dates)


def class_weights(counts: np.ndarray, table: ClassTable, cfg) -> np.ndarray:
    """Weight per class index: ``balanced`` = n / (K * n_c) on the training split, capped."""
    K = len(table)
    if cfg.mode == "uniform":
        weights = np.ones(K)
    elif cfg.mode == "manual":
        unknown = sorted(set(cfg.manual) - set(table.codes))
        if unknown:
            raise LabelError(f"prepare.weights.manual: class code {unknown[0]} is not in the class "
                             f"table ({table.describe()})")
        weights = np.array([cfg.manual.get(code, 1.0) for code in table.codes], float)
    else:
        total = counts.sum()
        present = counts > 0
        weights = np.ones(K)
        weights[present] = total / (present.sum() * counts[present])
        for i in np.flatnonzero(~present):
            log.warning("class %s (%d) has no training pixels; its weight is set to the cap",
                        table.names[i], table.codes[i])
            weights[i] = cfg.cap
    capped = weights > cfg.cap
    if capped.any():
        log.info("class weights capped at %g for %s", cfg.cap,
                 ", ".join(np.asarray(table.names)[capped]))
    return np.minimum(weights, cfg.cap).astype(np.float32)


# ---------------------------------------------------------------------------------------- helpers
def _versions() -> dict:
    import dask
    import rasterio
    import xarray
    import zarr

    return {"landcover": __version__, "numpy": np.__version__, "dask": dask.__version__,
            "xarray": xarray.__version__, "zarr": zarr.__version__,
            "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__}


def _compressor():
    """Blosc (lz4, byte shuffle): compresses float32 features well and decodes fast."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


# ------------------------------------------------------------------------------------------- main
def prepare(scene_paths: Sequence[str], labels_path: str | Path, out: str | Path, cfg: Config,
            *, overwrite: bool = False, progress: bool = True) -> dict:
    """Build the patch dataset; returns the summary (also stored in the dataset's attributes).

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`).

    Raises:
        OutputExistsError, SceneError, LabelError, ClassTableError, DatasetError.
    """
    import dask
    import dask.array as da
    import zarr

    from landcover.scenes import find_scenes
    from landcover.scheduler import compute
    from landcover.stack import date_groups, grid_of, stack_scenes

    # absolute paths: dask workers (other processes, other machines) open files by path
    out = Path(out).absolute()
    scene_paths = [str(Path(sp).absolute()) for sp in scene_paths]
    labels_path = Path(labels_path).absolute()
    check_output(out, overwrite)
    p = cfg.prepare
    table = load_class_table(p.classes) if p.classes else None
    scenes = find_scenes(scene_paths, profile=cfg.scenes.profile)
    stack = stack_scenes(scenes, cfg.scenes)  # validates bands and grids; nothing is read
    grid = grid_of(stack)
    bands = [str(b) for b in stack.band.values]
    groups = date_groups(scenes)
    labels = open_labels(labels_path, grid, p.labels, table)
    layout = make_layout(grid, cfg)
    tiles = list(layout.tiles())
    log.info("%d dates, grid %s, %d candidate windows in %d tiles", len(groups), grid.describe(),
             layout.n_rows * layout.n_cols, len(tiles))

    # 1. label survey -------------------------------------------------------------------------
    known = np.zeros(256, bool)
    if table is not None:
        known[table.codes] = True
    else:
        known[:255] = True
    labels_d = dask.delayed(labels, traverse=False)
    surveys = [dask.delayed(survey_tile, pure=True)(labels_d, grid, layout, core, windows, known,
                                                    p.labels.erode)
               for core, windows in tiles]
    (surveyed,) = compute(surveys, label="Reading labels", show=progress)
    hist = np.sum([s[0] for s in surveyed], axis=0)
    not_a_code = sum(s[1] for s in surveyed)
    if hist.sum() + not_a_code == 0:
        raise LabelError(f"{labels_path}: no labelled pixel falls on the scenes' grid "
                         f"({grid.describe()}); the labels do not overlap the scenes")
    if table is None:
        seen = np.flatnonzero(hist[:255])
        if len(seen) == 0:
            raise LabelError(f"{labels_path}: no usable class code (0..254) in the labels")
        table = labels.table(seen.tolist())
        log.info("class table derived from the labels: %s", table.describe())
    unknown = {int(c): int(hist[c]) for c in np.flatnonzero(hist) if c not in table.codes}
    if not_a_code:
        unknown["not a class code"] = int(not_a_code)
    if unknown:
        log.warning("%s: %d labelled pixels have codes outside the class table and are ignored: %s",
                    labels_path, sum(unknown.values()),
                    ", ".join(f"{k}: {v} px" for k, v in unknown.items()))
    lut = table.lut()
    cand_rows, cand_cols, cand_tiles = [], [], []
    s2 = layout.size ** 2
    for (core, windows), (_, _, counts) in zip(tiles, surveyed):
        keep = [w for w, n in zip(windows, counts) if n > 0 and n / s2 >= p.patches.min_labelled]
        if keep:
            cand_tiles.append(keep)
    n_cand = sum(len(t) for t in cand_tiles)
    if n_cand == 0:
        raise DatasetError(f"no window has {p.patches.min_labelled:.0%} labelled pixels; lower "
                           "prepare.patches.min_labelled or check the labels")

    # 2. extraction into a work store ---------------------------------------------------------
    T, B, s = len(groups), len(bands), layout.size
    tmp, work = temporary_path(out, "tmp"), temporary_path(out, "work")
    try:
        refl_parts, valid_parts, lab_parts = [], [], []
        group_scenes = tuple(g for _, g in groups)
        scenes_d = dask.delayed(group_scenes, traverse=False)
        for windows in cand_tiles:
            part = dask.delayed(extract_tile, pure=True, nout=3)(
                scenes_d, tuple(bands), grid, cfg.scenes.mask, labels_d, lut, layout,
                tuple(windows), p.labels.erode)
            k = len(windows)
            refl_parts.append(da.from_delayed(part[0], (k, T, s, s, B), np.float32))
            valid_parts.append(da.from_delayed(part[1], (k, T, s, s), bool))
            lab_parts.append(da.from_delayed(part[2], (k, s, s), np.uint8))
            cand_rows += [r for r, _ in windows]
            cand_cols += [c for _, c in windows]
        stores = []
        group = zarr.open_group(str(work), mode="w")
        for name, parts in (("reflectance", refl_parts), ("valid", valid_parts),
                            ("labels", lab_parts)):
            arr = da.concatenate(parts).rechunk({0: CHUNK_PATCHES})
            # Uncompressed: read several times, then deleted. Each dask chunk is one Zarr chunk.
            target = group.create_array(name, shape=arr.shape, dtype=arr.dtype,
                                        chunks=(CHUNK_PATCHES,) + arr.shape[1:],
                                        compressors=None)
            stores.append(da.store(arr, target, lock=False, compute=False))
        compute(*stores, label="Cutting patches", show=progress)
        summary = _finalise(work, tmp, np.array(cand_rows), np.array(cand_cols), groups, bands,
                            grid, layout, table, labels, scenes, cfg, unknown, progress)
        replace_output(tmp, out)
    finally:
        remove(tmp)
        remove(work)
    summary["output"] = str(out)
    return summary


def _finalise(work: Path, tmp: Path, rows, cols, groups, bands, grid: Grid, layout: Layout,
              table: ClassTable, labels, scenes, cfg: Config, unknown: dict, progress: bool):
    import dask.array as da
    import xarray as xr
    import zarr

    from landcover.scheduler import compute

    p = cfg.prepare
    def open_work(name):
        z = zarr.open_array(str(work / name), mode="r")
        return da.from_zarr(z, chunks=(CHUNK_PATCHES,) + z.shape[1:])

    refl, valid, lab = open_work("reflectance"), open_work("valid"), open_work("labels")
    s = layout.size
    dates = [d for d, _ in groups]

    # dates -----------------------------------------------------------------------------------
    per_window_date = valid.sum(axis=(2, 3), dtype=np.int64)
    (counts_wt,) = compute(per_window_date, label="Counting valid pixels", show=progress)
    date_share = counts_wt.sum(axis=0) / (len(rows) * s * s)
    keep_t = date_share >= p.features.min_date_valid
    if not keep_t.any():
        raise DatasetError(
            f"every date has less than {p.features.min_date_valid:.0%} valid observations in the "
            f"labelled windows (best {date_share.max():.1%}): the scenes are cloud-covered or the "
            "QA masks everything; add clearer scenes or lower prepare.features.min_date_valid")
    dropped = [f"{d.isoformat()} ({sh:.0%} valid)" for d, sh, k in zip(dates, date_share, keep_t)
               if not k]
    if dropped:
        log.warning("dropping %d date(s) with less than %.0f%% valid observations: %s",
                    len(dropped), 100 * p.features.min_date_valid, ", ".join(dropped))
    t_idx = np.flatnonzero(keep_t)
    valid_k = valid[:, t_idx]
    lab_final = ignore_unobserved(lab, valid_k, p.features.min_valid_dates)
    labelled = (lab_final != IGNORE).sum(axis=(1, 2), dtype=np.int64)
    (labelled_n,) = compute(labelled, label="Checking windows", show=progress)
    valid_share = counts_wt[:, t_idx].sum(axis=1) / (s * s * len(t_idx))
    ok = (labelled_n > 0) & (labelled_n / (s * s) >= p.patches.min_labelled) \
        & (valid_share >= p.patches.min_valid)
    split = np.full(len(rows), -1, np.int8)
    split[ok] = assign_splits(rows[ok], cols[ok], s, p.split.block_size, p.split.gap,
                              p.split.fractions, p.split.seed)
    straddling = int((ok & (split < 0)).sum())
    if straddling:
        log.info("%d window(s) straddle split blocks (prepare.split.block_size=%d, gap=%d) and are "
                 "left out", straddling, p.split.block_size, p.split.gap)
    ok &= split >= 0
    if not ok.any():
        raise DatasetError("no window passes prepare.patches.min_labelled="
                           f"{p.patches.min_labelled} and min_valid={p.patches.min_valid} (after "
                           "cloud masking); lower them or add clearer scenes")
    # Samples sorted by split, then in work-store (tile) order: within a split the indices ascend,
    # so each output chunk reads its samples from a few neighbouring work chunks.
    runs = [np.flatnonzero(ok & (split == k)) for k in range(3)]
    order = np.concatenate(runs)
    split_o = split[order].astype(np.uint8)
    if not (split_o == 0).any():
        raise DatasetError("the training split is empty; lower prepare.split.block_size or raise "
                           "prepare.split.fractions[0]")
    n = len(order)

    # statistics and class counts (masks over the work store, in its own order) ---------------
    chunks0 = refl.chunks[0]  # split is -1 for every window left out
    is_train = da.from_array(split == 0, chunks=chunks0)
    use = valid_k & is_train[:, None, None, None]
    x = da.where(use[..., None], refl[:, t_idx], 0.0).astype(np.float64)
    count = use.sum(dtype=np.int64)
    total = x.sum(axis=(0, 1, 2, 3))
    total2 = (x * x).sum(axis=(0, 1, 2, 3))
    split_da = da.from_array(split.astype(np.int64), chunks=chunks0)[:, None, None]
    key = da.where((split_da >= 0) & (lab_final != IGNORE),
                   split_da * 256 + lab_final.astype(np.int64), 3 * 256)
    count, total, total2, bins = compute(count, total, total2,
                                         da.bincount(key.ravel(), minlength=3 * 256 + 1),
                                         label="Statistics", show=progress)
    class_counts = [bins[k * 256:k * 256 + len(table)] for k in range(3)]
    count = int(count)
    total, total2 = total.reshape(-1), total2.reshape(-1)
    if count == 0:
        raise DatasetError("no valid observation in the training windows; add clearer scenes")
    mean = total / count
    std = np.sqrt(np.maximum(total2 / count - mean ** 2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    class_counts = np.stack(class_counts)  # (split, class)
    cw = class_weights(class_counts[0], table, p.weights)
    weight_lut = np.zeros(256, np.float32)
    weight_lut[:len(table)] = cw

    # features --------------------------------------------------------------------------------
    kept_dates = [dates[i] for i in t_idx]
    day0 = kept_dates[0]
    days = np.array([(d - day0).days for d in kept_dates], np.float64)
    doy = np.array([d.timetuple().tm_yday for d in kept_dates], np.float64) if p.features.doy \
        else None
    names = feature_names(bands, p.features.doy)
    index = da.from_array(order, chunks=CHUNK_PATCHES)
    featurize = functools.partial(_final_inputs, work=str(work), t_idx=t_idx, mean=mean, std=std,
                                  days=days, doy=doy, fill=p.features.fill)
    inputs = da.map_blocks(featurize, index, dtype=np.float32, new_axis=[1, 2, 3, 4],
                           chunks=(index.chunks[0], (len(t_idx),), (s,), (s,), (len(names),)))
    labelize = functools.partial(_final_labels, work=str(work), t_idx=t_idx,
                                 min_valid_dates=p.features.min_valid_dates)
    lab_o = da.map_blocks(labelize, index, dtype=np.uint8, new_axis=[1, 2],
                          chunks=(index.chunks[0], (s,), (s,)))
    weights = da.map_blocks(functools.partial(np.take, weight_lut), lab_o, dtype=np.float32)

    split_counts = {SPLITS[k]: int((split_o == k).sum()) for k in range(3)}
    starts = np.cumsum([0] + [split_counts[k] for k in SPLITS])
    masked = 1.0 - counts_wt[order][:, t_idx].sum() / (n * s * s * len(t_idx))
    classes = []
    for i, c in enumerate(table.classes):
        classes.append({"index": i, "code": c.code, "name": c.name, "color": c.color,
                        "weight": float(cw[i]),
                        "pixels": {SPLITS[k]: int(class_counts[k, i]) for k in range(3)}})
    summary = {
        "patches": n, "patches_per_split": split_counts,
        "dates": [d.isoformat() for d in kept_dates],
        "dates_dropped": [dates[i].isoformat() for i in np.flatnonzero(~keep_t)],
        "masked_share": round(float(masked), 4),
        "labelled_pixels": {c["name"]: sum(c["pixels"].values()) for c in classes},
        "unknown_codes": {str(k): v for k, v in unknown.items()},
    }
    attrs = {
        "landcover_dataset": DATASET_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bands": list(bands), "features": names,
        "dates": summary["dates"], "dates_dropped": summary["dates_dropped"],
        "date_valid_share": {d.isoformat(): round(float(v), 4) for d, v in zip(dates, date_share)},
        "normalisation": {
            "mean": mean.tolist(), "std": std.tolist(), "count": count,
            "bands": list(bands),
            "computed_on": "valid observations of the training windows on the kept dates"},
        "fill": p.features.fill, "doy": p.features.doy,
        "patch_size": s, "stride": layout.stride,
        "ignore_label": IGNORE,
        "classes": classes,
        "class_weights": {"mode": p.weights.mode, "cap": p.weights.cap,
                          "by_code": {str(c["code"]): c["weight"] for c in classes}},
        "splits": {k: [int(starts[i]), int(starts[i + 1])] for i, k in enumerate(SPLITS)},
        "split_codes": {k: i for i, k in enumerate(SPLITS)},
        "grid": grid.to_dict(),
        "labels": {"path": labels.path, "kind": labels.kind},
        "scenes": [{"scene_id": sc.scene_id, "date": sc.date.isoformat(), "sensor": sc.sensor,
                    "source": sc.source} for sc in scenes],
        "summary": summary,
        "config": cfg.to_dict(),
        "versions": _versions(),
    }
    a, _, c0, _, e, f0 = grid.transform
    rows_o, cols_o = rows[order].astype(np.int32), cols[order].astype(np.int32)
    ds = xr.Dataset(
        {"inputs": (("sample", "time", "patch_y", "patch_x", "feature"), inputs),
         "labels": (("sample", "patch_y", "patch_x"), lab_o),
         "weights": (("sample", "patch_y", "patch_x"), weights),
         "row": ("sample", rows_o), "col": ("sample", cols_o),
         "x_min": ("sample", c0 + cols_o * a), "y_max": ("sample", f0 + rows_o * e),
         "split": ("sample", split_o)},
        coords={"time": np.array([np.datetime64(d, "ns") for d in kept_dates]),
                "feature": np.array(names, dtype=object),
                "scene_id": ("time", np.array(["+".join(sc.scene_id for sc in groups[i][1])
                                               for i in t_idx], dtype=object))},
        attrs=json.loads(json.dumps(attrs)))
    ds["labels"].attrs.update({"meaning": "class index (see attrs classes); 255 = ignore"})
    ds["weights"].attrs.update({"meaning": "per-pixel sample weight: class weight, 0 = ignore"})
    ds["split"].attrs.update({"meaning": "0 train, 1 validation, 2 test"})
    ds["inputs"].attrs.update({"meaning": "standardised bands (invalid filled), validity, day of "
                                          "year; see attrs features and normalisation"})
    with warnings.catch_warnings():  # consolidated metadata: a zarr-python extension for v3
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        write = ds.to_zarr(str(tmp), mode="w", compute=False, consolidated=True,
                           encoding={name: {"compressors": [_compressor()]}
                                     for name in ("inputs", "labels", "weights")})
    compute(write, label="Writing dataset", show=progress)
    _preview(tmp, grid, rows_o, cols_o, split_o, s)
    return summary


def _preview(tmp: Path, grid: Grid, rows, cols, split, size: int) -> None:
    """``splits.png``: where the windows of each split lie on the grid (one image, not patches)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colors = ("#1b9e77", "#d95f02", "#7570b3")
    step = max(1, math.ceil(max(grid.width, grid.height) / 1000))  # at most ~1000 px wide
    image = np.full((math.ceil(grid.height / step), math.ceil(grid.width / step)), np.nan)
    for k in range(3):  # later splits never overlap earlier ones: windows of splits are disjoint
        for r, c in zip(rows[split == k], cols[split == k]):
            image[r // step:(r + size) // step, c // step:(c + size) // step] = k
    scale = 6.0 / max(grid.width, grid.height)
    fig, ax = plt.subplots(figsize=(max(3.0, grid.width * scale) + 1.8,
                                    max(3.0, grid.height * scale)))
    ax.imshow(image, cmap=ListedColormap(colors), vmin=-0.5, vmax=2.5, interpolation="nearest",
              extent=(0, grid.width, grid.height, 0))
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    ax.set_title("Patches by split")
    ax.legend(handles=[Patch(color=colors[k], label=f"{SPLITS[k]} ({int((split == k).sum())})")
                       for k in range(3) if (split == k).any()],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(tmp / "splits.png", dpi=100)
    plt.close(fig)
