"""``landcover prepare``: scenes + labels -> a Zarr dataset of spatio-temporal patches with weights.

The work runs in dask graphs whose tasks open their files by path, tile by tile, so memory is
bounded by ``prepare.patches.tile_size`` whatever the size of the scenes:

1. **Survey** (labels only): class codes per pixel, counted per code and per split group (see
   :mod:`landcover.splits`); derives the class table when none is configured; unknown codes are
   counted and reported.
2. **Assign**: split groups to train/validation/test, stratified by class (fixed assignments of a
   split column or raster kept as given).
3. **Place**: windows on the lattice (``size`` every ``stride`` pixels, plus one flush with each far
   edge) are cut per split: a window for split *k* when at least ``min_labelled`` of its pixels
   are labelled split-*k* pixels, or when it owns a labelled split-*k* pixel that no such window
   covers. So no labelled pixel is lost, however small its polygon or wherever its group's border.
4. **Extract**: the windows are cut from all dates at once (reflectance, validity, label index;
   the pixels of other splits get the ignore label) into a work store next to the output.
5. **Finalise**: dates whose valid share on the labelled pixels is too low are dropped; pixels with
   too few valid observations get the ignore label; windows whose labelled pixels are mostly
   invalid (``min_valid``) are dropped; unique labelled pixels are counted per class and split
   against the labels; normalisation statistics come from valid observations of training windows
   only; class weights from the training split's unique pixels; the features are written.

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

from landcover.classes import ClassTable, load_class_table
from landcover.config import Config
from landcover.contract import DATASET_FORMAT, IGNORE
from landcover.dataset import SPLITS, compressor
from landcover.errors import DatasetError, LabelError
from landcover.grid import Grid
from landcover.labels import NOT_A_CODE, open_labels, window_codes
from landcover.features import FeatureSpec
from landcover.outputs import check_output, remove, replace_output, temporary_path
from landcover.runtime import versions

log = logging.getLogger(__name__)

CHUNK_PATCHES = 32  # patches per Zarr chunk of the output


# --------------------------------------------------------------------------------- window geometry
def _origins(length: int, size: int, stride: int) -> tuple[int, ...]:
    """Window origins along one axis: every ``stride`` pixels, plus one flush with the far edge when
    the lattice leaves pixels uncovered there (so every pixel is inside some window)."""
    if length < size:
        return ()
    out = list(range(0, length - size + 1, stride))
    if out[-1] + size < length:
        out.append(length - size)
    return tuple(out)


@dataclass(frozen=True)
class Layout:
    """Window lattice and processing tiles over a grid."""

    height: int
    width: int
    size: int
    stride: int
    tile: int  # tile side in pixels, a multiple of stride

    @functools.cached_property
    def row_origins(self) -> tuple[int, ...]:
        return _origins(self.height, self.size, self.stride)

    @functools.cached_property
    def col_origins(self) -> tuple[int, ...]:
        return _origins(self.width, self.size, self.stride)

    @property
    def n_rows(self) -> int:
        return len(self.row_origins)

    @property
    def n_cols(self) -> int:
        return len(self.col_origins)

    def tiles(self):
        """Yield ``(core, windows)``: core ``(r0, c0, r1, c1)`` and the (row, col) of the windows
        whose top-left pixel lies in it."""
        for ti in range(math.ceil(self.height / self.tile)):
            for tj in range(math.ceil(self.width / self.tile)):
                core = (ti * self.tile, tj * self.tile, min(self.height, (ti + 1) * self.tile),
                        min(self.width, (tj + 1) * self.tile))
                rows = [r for r in self.row_origins if core[0] <= r < core[2]]
                cols = [c for c in self.col_origins if core[1] <= c < core[3]]
                yield core, [(r, c) for r in rows for c in cols]


def _owned(origins: tuple[int, ...], i: int, length: int) -> tuple[int, int]:
    """Pixels ``[a, b)`` the ``i``-th window owns along one axis: from its origin to the next."""
    return origins[i], origins[i + 1] if i + 1 < len(origins) else length


def make_layout(grid: Grid, cfg: Config) -> Layout:
    p = cfg.prepare
    tile = max(p.patches.stride, (p.patches.tile_size // p.patches.stride) * p.patches.stride)
    layout = Layout(grid.height, grid.width, p.patches.size, p.patches.stride, tile)
    if layout.n_rows == 0 or layout.n_cols == 0:
        raise DatasetError(f"the stack grid ({grid.width} x {grid.height} px) is smaller than one "
                           f"window; lower prepare.patches.size ({p.patches.size})")
    return layout


# ----------------------------------------------------------------------------- pixels and groups
def _usable(codes: np.ndarray, known: np.ndarray) -> np.ndarray:
    usable = np.zeros(codes.shape, bool)
    inside = (codes >= 0) & (codes < 256)
    usable[inside] = known[codes[inside]]
    return usable


def pixel_splits(groups, grid: Grid, r0: int, c0: int, h: int, w: int, lookup, gap: int):
    """Split code per pixel (0, 1, 2; -1 = none) from the group source and ``lookup`` = (sorted
    group ids, their split codes). With ``gap``, pixels within ``gap`` pixels of another split's
    pixel get none (a buffer between splits)."""
    R0, C0 = max(0, r0 - gap), max(0, c0 - gap)
    R1, C1 = min(grid.height, r0 + h + gap), min(grid.width, c0 + w + gap)
    g = groups.groups(grid, R0, C0, R1 - R0, C1 - C0)
    keys, values = lookup
    split = np.full(g.shape, -1, np.int8)
    if len(keys):
        idx = np.clip(np.searchsorted(keys, g), 0, len(keys) - 1)
        found = keys[idx] == g
        split[found] = values[idx[found]]
    split[split > 2] = -1  # groups of no split
    if gap > 0:
        H, W = split.shape
        padded = np.pad(split, gap, constant_values=-1)
        keep = np.ones(split.shape, bool)
        for dy in range(2 * gap + 1):
            for dx in range(2 * gap + 1):
                other = padded[dy:dy + H, dx:dx + W]
                keep &= (other < 0) | (other == split)
        split = np.where(keep, split, -1).astype(np.int8)
    return split[r0 - R0:r0 - R0 + h, c0 - C0:c0 - C0 + w]


# ------------------------------------------------------------------------------------ label survey
def survey_tile(labels, groups, grid: Grid, core, erode: int):
    """Code histogram of the tile's pixels, unusable label values, and labelled pixels per
    (group, code) as ``(keys = group * 256 + code, counts)``."""
    r0, c0, r1, c1 = core
    codes = window_codes(labels, grid, r0, c0, r1 - r0, c1 - c0, erode)
    hist = np.bincount(codes[(codes >= 0) & (codes < 256)].ravel(), minlength=256)
    not_a_code = int((codes == NOT_A_CODE).sum())
    g = groups.groups(grid, r0, c0, r1 - r0, c1 - c0)
    labelled = (codes >= 0) & (codes < 256)
    no_group = np.bincount(codes[labelled & (g < 0)].ravel(), minlength=256)
    key = g[labelled & (g >= 0)] * 256 + codes[labelled & (g >= 0)]
    keys, counts = np.unique(key, return_counts=True)
    return hist, not_a_code, keys, counts, no_group


def plan_tile(labels, groups, grid: Grid, layout: Layout, core, known: np.ndarray, erode: int,
              lookup, gap: int, min_labelled: float):
    """``(row, col, split)`` of the windows with their origin in the tile's core.

    A window is cut for split *k* when at least ``min_labelled`` of its pixels are labelled pixels of
    split *k*, or when it owns (see :func:`_owned`) a labelled split-*k* pixel that no such
    window covers: every labelled pixel ends up in a window of its own split."""
    r0, c0, r1, c1 = core
    s = layout.size
    ri = [i for i, r in enumerate(layout.row_origins) if r0 <= r < r1]
    ci = [j for j, c in enumerate(layout.col_origins) if c0 <= c < c1]
    if not ri or not ci:
        return []
    R0 = max(0, layout.row_origins[ri[0]] - s + 1)
    C0 = max(0, layout.col_origins[ci[0]] - s + 1)
    R1, C1 = layout.row_origins[ri[-1]] + s, layout.col_origins[ci[-1]] + s
    codes = window_codes(labels, grid, R0, C0, R1 - R0, C1 - C0, erode)
    usable = _usable(codes, known)
    split = pixel_splits(groups, grid, R0, C0, R1 - R0, C1 - C0, lookup, gap)
    rows = [r for r in layout.row_origins if R0 <= r <= R1 - s]
    cols = [c for c in layout.col_origins if C0 <= c <= C1 - s]
    row_at, col_at = {r: a for a, r in enumerate(rows)}, {c: b for b, c in enumerate(cols)}
    out = []
    for k in range(3):
        m = usable & (split == k)
        if not m.any():
            continue
        integral = np.pad(m.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        ra, ca = np.array(rows) - R0, np.array(cols) - C0
        n = (integral[ra[:, None] + s, ca[None, :] + s] - integral[ra[:, None], ca[None, :] + s]
             - integral[ra[:, None] + s, ca[None, :]] + integral[ra[:, None], ca[None, :]])
        passing = (n > 0) & (n >= min_labelled * s * s)
        covered = np.zeros(m.shape, bool)
        for a, b in zip(*np.nonzero(passing)):
            covered[ra[a]:ra[a] + s, ca[b]:ca[b] + s] = True
        left = m & ~covered
        for i in ri:
            a = row_at[layout.row_origins[i]]
            ya, yb = _owned(layout.row_origins, i, grid.height)
            for j in ci:
                b = col_at[layout.col_origins[j]]
                if n[a, b] == 0:
                    continue
                xa, xb = _owned(layout.col_origins, j, grid.width)
                if passing[a, b] or left[ya - R0:yb - R0, xa - C0:xb - C0].any():
                    out.append((layout.row_origins[i], layout.col_origins[j], k))
    return out


# -------------------------------------------------------------------------------------- extraction
def extract_tile(date_groups_, bands, grid: Grid, mask, labels, groups, lut: np.ndarray,
                 layout: Layout, windows, erode: int, lookup, gap: int):
    """Cut ``windows`` ``(row, col, split)`` from every date: reflectance ``(k, T, s, s, B)``
    float32 (NaN = no data), valid ``(k, T, s, s)`` bool and label indices ``(k, s, s)`` uint8
    (255 = ignore, also on the pixels of other splits)."""
    from landcover.stack import read_date_block

    s = layout.size
    r0 = min(r for r, _, _ in windows)
    c0 = min(c for _, c, _ in windows)
    h = max(r for r, _, _ in windows) + s - r0
    w = max(c for _, c, _ in windows) + s - c0
    codes = window_codes(labels, grid, r0, c0, h, w, erode)
    index = np.full(codes.shape, IGNORE, np.uint8)
    inside = (codes >= 0) & (codes < 256)
    index[inside] = lut[codes[inside]]
    split = pixel_splits(groups, grid, r0, c0, h, w, lookup, gap)
    k, T, B = len(windows), len(date_groups_), len(bands)
    refl = np.empty((k, T, s, s, B), np.float32)
    valid = np.empty((k, T, s, s), bool)
    lab = np.empty((k, s, s), np.uint8)
    for n, (r, c, sp) in enumerate(windows):
        cut = index[r - r0:r - r0 + s, c - c0:c - c0 + s]
        lab[n] = np.where(split[r - r0:r - r0 + s, c - c0:c - c0 + s] == sp, cut, IGNORE)
    for t, g in enumerate(date_groups_):  # one date in memory at a time, cut straight into the output
        block = read_date_block(g, bands, grid, mask, r0, c0, h, w)[0]
        for n, (r, c, _) in enumerate(windows):
            cut = block[:, r - r0:r - r0 + s, c - c0:c - c0 + s]
            refl[n, t] = np.moveaxis(cut[:-1], 0, -1)
            valid[n, t] = cut[-1] > 0.5
    return refl, valid, lab


# ---------------------------------------------------------------------------------------- features
def _read_work(work: str, name: str, index: np.ndarray, t_idx=None) -> np.ndarray:
    import zarr

    z = zarr.open_array(f"{work}/{name}", mode="r")
    if t_idx is None:
        return z.get_orthogonal_selection((index,))
    return z.get_orthogonal_selection((index, t_idx))


def _final_inputs(index, *, work, t_idx, spec: FeatureSpec, dates):
    """Features of the samples ``index`` (one output chunk), read from the work store."""
    refl = _read_work(work, "reflectance", index, t_idx)
    valid = _read_work(work, "valid", index, t_idx)
    return spec.make(refl, valid, dates)


def ignore_unobserved(lab, valid, min_valid_dates: int):
    """The ignore label where a pixel has fewer than ``min_valid_dates`` valid observations
    (``lab (k, s, s)``, ``valid (k, T, s, s)``; numpy or dask)."""
    return np.where(valid.sum(axis=1) >= min_valid_dates, lab, np.uint8(IGNORE)).astype(np.uint8)


def kept_pixels(lab: np.ndarray, rows, cols, split, grid: Grid, num_classes: int) -> np.ndarray:
    """Unique labelled grid pixels per split and class ``(3, K)`` over the kept windows (a pixel
    in several overlapping windows of its split counts once; splits never share a pixel)."""
    s = lab.shape[-1]
    label_map = np.full((grid.height, grid.width), IGNORE, np.uint8)
    split_map = np.zeros((grid.height, grid.width), np.uint8)
    for i in np.flatnonzero(split >= 0):
        m = lab[i] != IGNORE
        r, c = int(rows[i]), int(cols[i])
        label_map[r:r + s, c:c + s][m] = lab[i][m]
        split_map[r:r + s, c:c + s][m] = split[i]
    have = label_map != IGNORE
    bins = np.bincount(split_map[have].astype(np.int64) * num_classes + label_map[have],
                       minlength=3 * num_classes)
    return bins.reshape(3, num_classes)


def _label_report(table: ClassTable, context: dict, kept: np.ndarray, placed: np.ndarray,
                  p) -> dict:
    """Unique labelled pixels kept per class against those in the labels; warnings for classes
    that lost more than 2 % and for splits that lack a class or are a single group."""
    from landcover.splits import check_splits

    hist = context["survey"]["hist"]
    in_labels = np.array([int(hist[c]) for c in table.codes])
    no_group = np.array([int(context["survey"]["no_group"][c]) for c in table.codes])
    total = kept.sum(axis=0)
    unobserved = placed - total
    warnings_ = []
    per_class = {}
    for i, name in enumerate(table.names):
        share = total[i] / in_labels[i] if in_labels[i] else None
        per_class[name] = {"in_labels": int(in_labels[i]), "kept": int(total[i]),
                           "share": None if share is None else round(float(share), 4),
                           "unobserved": int(unobserved[i])}
        if share is not None and share < 0.98:
            why = []
            if unobserved[i]:
                why.append(f"{unobserved[i]} px with too few valid observations "
                           "(prepare.features.min_valid_dates, prepare.patches.min_valid)")
            if no_group[i]:
                why.append(f"{no_group[i]} px in no split group")
            none = int(context["assignment"]["none_pixels"][i])
            if none:
                why.append(f"{none} px in groups of no split")
            rest = in_labels[i] - total[i] - unobserved[i] - no_group[i] - none
            if rest > 0:
                why.append(f"{rest} px in the buffer between splits (prepare.split.gap)"
                           if p.split.gap else f"{rest} px not placed in any window")
            warnings_.append(f"class {name}: {total[i]} of {in_labels[i]} labelled pixels kept "
                             f"({share:.1%}); {'; '.join(why)}")
    warnings_ += check_splits(kept, np.array(context["assignment"]["groups"]), table.names,
                              p.split.fractions, context["split_kind"],
                              context["assignment"]["fixed_splits"])
    for w in warnings_:
        log.warning("%s", w)
    kept_all, all_ = int(total.sum()), int(in_labels.sum())
    return {"in_labels": all_, "kept": kept_all, "unobserved": int(unobserved.sum()),
            "share": round(kept_all / all_, 4) if all_ else None, "per_class": per_class,
            "warnings": warnings_}


def class_weights(counts: np.ndarray, table: ClassTable, cfg) -> np.ndarray:
    """Weight per class index from the training split's unique labelled pixels ``counts``.

    ``balanced`` n / (K n_c); ``inverse_sqrt`` proportional to 1 / sqrt(n_c); ``effective`` the
    inverse effective number of samples (1 - beta) / (1 - beta^n_c) (Cui et al. 2019); all three
    scaled so that the mean weight of a training pixel is 1, then capped at ``cap``. K counts only
    the classes with training pixels. A class without any is never a target in training (training
    removes it from the model's output); it keeps weight 1 so that its validation and test pixels
    still count, as errors."""
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = np.zeros(len(table))
    if cfg.mode == "manual":
        unknown = sorted(set(cfg.manual) - set(table.codes))
        if unknown:
            raise LabelError(f"prepare.weights.manual: class code {unknown[0]} is not in the class "
                             f"table ({table.describe()})")
        weights = np.array([cfg.manual.get(code, 1.0) for code in table.codes], float)
    elif cfg.mode == "uniform":
        weights[:] = 1.0
    elif present.any():
        n_c = counts[present]
        if cfg.mode == "balanced":
            raw = n_c.sum() / (present.sum() * n_c)
        elif cfg.mode == "inverse_sqrt":
            raw = 1.0 / np.sqrt(n_c)
        else:  # effective
            raw = (1.0 - cfg.beta) / (1.0 - np.power(cfg.beta, n_c))
        raw = raw * n_c.sum() / (raw * n_c).sum()  # mean weight of a training pixel = 1
        weights[present] = raw
    missing = [f"{table.names[i]} ({table.codes[i]})" for i in np.flatnonzero(~present)]
    required = [table.classes[i] for i in np.flatnonzero(~present) if table.classes[i].required]
    if required:
        c = required[0]
        raise LabelError(f"class {c.name} ({c.code}) is required by the class table "
                         f"({table.source}) but has no training pixels; label it inside the "
                         "training area, change prepare.split (seed, fractions, by), or remove "
                         "'required' from the class table")
    if missing:
        log.warning("no training pixels of %s: %s never a target and the model will not predict "
                    "%s", ", ".join(missing), "it is" if len(missing) == 1 else "they are",
                    "it" if len(missing) == 1 else "them")
    weights[~present] = 1.0
    capped = weights > cfg.cap
    if capped.any():
        log.info("class weights capped at %g for %s", cfg.cap,
                 ", ".join(np.asarray(table.names)[capped]))
    return np.minimum(weights, cfg.cap).astype(np.float32)


# ---------------------------------------------------------------------------------------- helpers
def _plain(value):
    """numpy scalars and arrays in attributes as JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------------------- main
def prepare(scene_paths: Sequence[str], labels_path: str | Path, out: str | Path, cfg: Config,
            *, overwrite: bool = False, progress: bool = True) -> dict:
    """Build the patch dataset; returns the summary (also stored in the dataset's attributes).

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`).

    Raises:
        OutputExistsError, SceneError, LabelError, ClassTableError, DatasetError.
    """
    from landcover.scenes import find_scenes
    from landcover.splits import open_groups
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
    dgroups = date_groups(scenes)
    labels = open_labels(labels_path, grid, p.labels, table)
    split_groups = open_groups(p.split, labels, labels_path, grid)
    layout = make_layout(grid, cfg)
    log.info("%d dates, grid %s, %d window positions", len(dgroups), grid.describe(),
             layout.n_rows * layout.n_cols)

    survey = _survey(labels, split_groups, grid, layout, p, progress)
    table, unknown = _resolve_table(table, survey, labels, labels_path)
    lookup, assignment = _assign(survey, table, split_groups, p.split)
    windows = _plan(labels, split_groups, grid, layout, table, lookup, p, progress)
    tmp, work = temporary_path(out, "tmp"), temporary_path(out, "work")
    try:
        _extract(work, windows, dgroups, bands, grid, labels, split_groups, table, lookup, layout,
                 cfg, progress)
        rows, cols, wsplit = (np.array([w[i] for tile in windows for w in tile]) for i in range(3))
        context = {"survey": survey, "assignment": assignment, "unknown": unknown,
                   "labels": labels, "scenes": scenes, "split_kind": split_groups.kind}
        summary = _finalise(work, tmp, rows, cols, wsplit, dgroups, bands, grid, layout, table,
                            cfg, context, progress)
        replace_output(tmp, out)
    finally:
        remove(tmp)
        remove(work)
    summary["output"] = str(out)
    return summary


def _survey(labels, split_groups, grid: Grid, layout: Layout, p, progress: bool) -> dict:
    """Stage 1: class codes per pixel, counted per code and per (split group, code)."""
    import dask

    from landcover.scheduler import compute

    labels_d = dask.delayed(labels, traverse=False)
    tasks = [dask.delayed(survey_tile, pure=True)(labels_d, split_groups, grid, core,
                                                  p.labels.erode)
             for core, _ in layout.tiles()]
    (surveyed,) = compute(tasks, label="Reading labels", show=progress)
    keys = np.concatenate([s[2] for s in surveyed])
    counts = np.concatenate([s[3] for s in surveyed])
    keys, inverse = np.unique(keys, return_inverse=True)
    return {"hist": np.sum([s[0] for s in surveyed], axis=0),
            "not_a_code": sum(s[1] for s in surveyed),
            "group_keys": keys, "group_counts": np.bincount(inverse, weights=counts,
                                                            minlength=len(keys)).astype(np.int64),
            "no_group": np.sum([s[4] for s in surveyed], axis=0)}


def _resolve_table(table: ClassTable | None, survey: dict, labels, labels_path):
    """The class table (derived from the codes seen when none is configured) and the labelled
    pixels whose codes are not in it."""
    hist, not_a_code = survey["hist"], survey["not_a_code"]
    if hist.sum() + not_a_code == 0:
        raise LabelError(f"{labels_path}: no labelled pixel falls on the scenes' grid; the labels "
                         "do not overlap the scenes")
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
    return table, unknown


def _assign(survey: dict, table: ClassTable, split_groups, sc):
    """Stage 2: every split group to a split, stratified by class; returns the lookup (sorted
    group ids, split codes) and what was assigned."""
    from landcover.splits import NONE, assign_groups

    keys, counts = survey["group_keys"], survey["group_counts"]
    lut = table.lut()
    gid, code = keys // 256, keys % 256
    cls = lut[code]
    ok = cls != IGNORE
    ids, inv = np.unique(gid, return_inverse=True)
    matrix = np.zeros((len(ids), len(table)), np.int64)
    np.add.at(matrix, (inv[ok], cls[ok].astype(np.int64)), counts[ok])
    fixed = split_groups.fixed(ids)
    split = assign_groups(matrix, sc.fractions, sc.seed, fixed)
    per_split = [int((split == k).sum()) for k in range(3)]
    log.info("split groups (%s): %d train, %d validation, %d test, %d none", split_groups.kind,
             *per_split, int((split == NONE).sum()))
    return (ids.astype(np.int64), split.astype(np.int64)), {
        "groups": per_split, "none_pixels": matrix[split == NONE].sum(axis=0).tolist(),
        "fixed_splits": sorted({int(k) for k in fixed.values() if k < NONE})}


def _plan(labels, split_groups, grid: Grid, layout: Layout, table: ClassTable, lookup, p,
          progress: bool) -> list:
    """Stage 3: the windows ``(row, col, split)`` to cut, per tile (tiles without any dropped)."""
    import dask

    from landcover.scheduler import compute

    known = np.zeros(256, bool)
    known[table.codes] = True
    labels_d = dask.delayed(labels, traverse=False)
    tasks = [dask.delayed(plan_tile, pure=True)(labels_d, split_groups, grid, layout, core, known,
                                                p.labels.erode, lookup, p.split.gap,
                                                p.patches.min_labelled)
             for core, _ in layout.tiles()]
    (planned,) = compute(tasks, label="Placing windows", show=progress)
    planned = [tile for tile in planned if tile]
    if not planned:
        raise DatasetError("no labelled pixel of a known class falls in a split (check the labels, "
                           "the class table and prepare.split)")
    return planned


def _extract(work: Path, windows, dgroups, bands, grid: Grid, labels, split_groups,
             table: ClassTable, lookup, layout: Layout, cfg: Config, progress: bool) -> None:
    """Stage 4: cut the windows from every date into an uncompressed work store."""
    import dask
    import dask.array as da
    import zarr

    from landcover.scheduler import compute

    p = cfg.prepare
    T, B, s = len(dgroups), len(bands), layout.size
    labels_d = dask.delayed(labels, traverse=False)
    scenes_d = dask.delayed(tuple(g for _, g in dgroups), traverse=False)
    parts = {"reflectance": [], "valid": [], "labels": []}
    for tile in windows:
        part = dask.delayed(extract_tile, pure=True, nout=3)(
            scenes_d, tuple(bands), grid, cfg.scenes.mask, labels_d, split_groups, table.lut(),
            layout, tuple(tile), p.labels.erode, lookup, p.split.gap)
        k = len(tile)
        parts["reflectance"].append(da.from_delayed(part[0], (k, T, s, s, B), np.float32))
        parts["valid"].append(da.from_delayed(part[1], (k, T, s, s), bool))
        parts["labels"].append(da.from_delayed(part[2], (k, s, s), np.uint8))
    stores = []
    group = zarr.open_group(str(work), mode="w")
    for name, items in parts.items():
        arr = da.concatenate(items).rechunk({0: CHUNK_PATCHES})
        # Uncompressed: read several times, then deleted. Each dask chunk is one Zarr chunk.
        target = group.create_array(name, shape=arr.shape, dtype=arr.dtype,
                                    chunks=(CHUNK_PATCHES,) + arr.shape[1:], compressors=None)
        stores.append(da.store(arr, target, lock=False, compute=False))
    compute(*stores, label="Cutting patches", show=progress)


def _finalise(work: Path, tmp: Path, rows, cols, wsplit, groups, bands, grid: Grid,
              layout: Layout, table: ClassTable, cfg: Config, context: dict, progress: bool):
    import dask.array as da
    import xarray as xr
    import zarr

    from landcover.profiles import profile_record
    from landcover.scenes import scene_profiles
    from landcover.scheduler import compute

    p = cfg.prepare
    labels, scenes, unknown = context["labels"], context["scenes"], context["unknown"]

    def open_work(name):
        z = zarr.open_array(str(work / name), mode="r")
        return da.from_zarr(z, chunks=(CHUNK_PATCHES,) + z.shape[1:])

    refl, valid, lab = open_work("reflectance"), open_work("valid"), open_work("labels")
    s = layout.size
    dates = [d for d, _ in groups]

    # dates: valid shares over the labelled pixels of the windows -----------------------------
    labelled0 = lab != IGNORE
    per_window_date = (valid & labelled0[:, None]).sum(axis=(2, 3), dtype=np.int64)
    counts_wt, n_lab0, valid_all = compute(
        per_window_date, labelled0.sum(axis=(1, 2), dtype=np.int64),
        valid.sum(axis=(2, 3), dtype=np.int64), label="Counting valid pixels", show=progress)
    date_share = counts_wt.sum(axis=0) / max(1, int(n_lab0.sum()))
    keep_t = date_share >= p.features.min_date_valid
    if not keep_t.any():
        raise DatasetError(
            f"every date has less than {p.features.min_date_valid:.0%} valid observations on the "
            f"labelled pixels (best {date_share.max():.1%}): the scenes are cloud-covered or the "
            "QA masks everything; add clearer scenes or lower prepare.features.min_date_valid")
    dropped = [f"{d.isoformat()} ({sh:.0%} valid)" for d, sh, k in zip(dates, date_share, keep_t)
               if not k]
    if dropped:
        log.warning("dropping %d date(s) with less than %.0f%% valid observations: %s",
                    len(dropped), 100 * p.features.min_date_valid, ", ".join(dropped))
    t_idx = np.flatnonzero(keep_t)
    valid_k = valid[:, t_idx]
    lab_np, lab0_np = compute(ignore_unobserved(lab, valid_k, p.features.min_valid_dates), lab,
                              label="Checking windows", show=progress)
    labelled_n = (lab_np != IGNORE).sum(axis=(1, 2))
    valid_share = counts_wt[:, t_idx].sum(axis=1) / np.maximum(1, n_lab0 * len(t_idx))
    ok = (labelled_n > 0) & (valid_share >= p.patches.min_valid)
    if not ok.any():
        raise DatasetError(f"no window passes prepare.patches.min_valid={p.patches.min_valid} on "
                           "its labelled pixels (after cloud masking); lower it or add clearer "
                           "scenes")
    split = np.where(ok, wsplit, -1).astype(np.int8)
    # Samples sorted by split, then in work-store (tile) order: within a split the indices ascend,
    # so each output chunk reads its samples from a few neighbouring work chunks.
    order = np.concatenate([np.flatnonzero(split == k) for k in range(3)])
    split_o = split[order].astype(np.uint8)
    if not (split_o == 0).any():
        raise DatasetError("the training split is empty; check prepare.split (by, fractions, the "
                           "split column or raster)")
    n = len(order)
    kept = kept_pixels(lab_np, rows, cols, split, grid, len(table))  # (3, K) unique pixels
    placed = kept_pixels(lab0_np, rows, cols, wsplit, grid, len(table)).sum(axis=0)
    del lab0_np
    report = _label_report(table, context, kept, placed, p)

    # statistics (valid observations of training windows) -------------------------------------
    chunks0 = refl.chunks[0]  # split is -1 for every window left out
    is_train = da.from_array(split == 0, chunks=chunks0)
    use = valid_k & is_train[:, None, None, None]
    x = da.where(use[..., None], refl[:, t_idx], 0.0).astype(np.float64)
    count, total, total2 = compute(use.sum(dtype=np.int64), x.sum(axis=(0, 1, 2, 3)),
                                   (x * x).sum(axis=(0, 1, 2, 3)), label="Statistics",
                                   show=progress)
    count = int(count)
    total, total2 = total.reshape(-1), total2.reshape(-1)
    if count == 0:
        raise DatasetError("no valid observation in the training windows; add clearer scenes")
    mean = total / count
    std = np.sqrt(np.maximum(total2 / count - mean ** 2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    cw = class_weights(kept[0], table, p.weights)
    weight_lut = np.zeros(256, np.float32)
    weight_lut[:len(table)] = cw

    # features --------------------------------------------------------------------------------
    kept_dates = [dates[i] for i in t_idx]
    spec = FeatureSpec(tuple(bands), tuple(mean.tolist()), tuple(std.tolist()), p.features.fill,
                       p.features.doy)
    names = spec.names
    index = da.from_array(order, chunks=CHUNK_PATCHES)
    featurize = functools.partial(_final_inputs, work=str(work), t_idx=t_idx, spec=spec,
                                  dates=kept_dates)
    inputs = da.map_blocks(featurize, index, dtype=np.float32, new_axis=[1, 2, 3, 4],
                           chunks=(index.chunks[0], (len(t_idx),), (s,), (s,), (len(names),)))
    lab_o = da.from_array(lab_np[order], chunks=(CHUNK_PATCHES, s, s))
    weights = da.map_blocks(functools.partial(np.take, weight_lut), lab_o, dtype=np.float32)

    split_counts = {SPLITS[k]: int((split_o == k).sum()) for k in range(3)}
    starts = np.cumsum([0] + [split_counts[k] for k in SPLITS])
    masked = 1.0 - valid_all[order][:, t_idx].sum() / (n * s * s * len(t_idx))
    classes = []
    for i, c in enumerate(table.classes):
        classes.append({"index": i, "code": c.code, "name": c.name, "color": c.color,
                        "weight": float(cw[i]),
                        "pixels": {SPLITS[k]: int(kept[k, i]) for k in range(3)}})
    summary = {
        "patches": n, "patches_per_split": split_counts,
        "dates": [d.isoformat() for d in kept_dates],
        "dates_dropped": [dates[i].isoformat() for i in np.flatnonzero(~keep_t)],
        "masked_share": round(float(masked), 4),
        "labelled_pixels": {c["name"]: sum(c["pixels"].values()) for c in classes},
        "labelled_pixels_per_split": {SPLITS[k]: {c["name"]: c["pixels"][SPLITS[k]]
                                                  for c in classes} for k in range(3)},
        "labels_kept": report,
        "split": {"by": p.split.by, "groups": dict(zip(SPLITS, context["assignment"]["groups"]))},
        "warnings": report.pop("warnings"),
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
        "profiles": [profile_record(pr) for pr in scene_profiles(scenes)],
        "summary": summary,
        "config": cfg.to_dict(),
        "versions": versions(data=True),
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
        attrs=json.loads(json.dumps(attrs, default=_plain)))
    ds["labels"].attrs.update({"meaning": "class index (see attrs classes); 255 = ignore"})
    ds["weights"].attrs.update({"meaning": "per-pixel sample weight: class weight, 0 = ignore"})
    ds["split"].attrs.update({"meaning": "0 train, 1 validation, 2 test"})
    ds["inputs"].attrs.update({"meaning": "standardised bands (invalid filled), validity, day of "
                                          "year; see attrs features and normalisation"})
    with warnings.catch_warnings():  # consolidated metadata: a zarr-python extension for v3
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        write = ds.to_zarr(str(tmp), mode="w", compute=False, consolidated=True,
                           encoding={name: {"compressors": [compressor()]}
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
    for k in range(3):  # windows of later splits drawn over earlier ones where inputs overlap
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
