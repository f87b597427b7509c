"""``landcover prepare``: scenes + labels -> a Zarr dataset of spatio-temporal patches with weights.

:func:`prepare` takes the scenes as :class:`~landcover.scenes.Scene` objects (or a
:class:`~landcover.scenes.SceneSource` such as :class:`~landcover.scenes.LocalScenes`) and runs
these stages, in this order; each is one function below, and small frozen records carry what one
stage hands to the next. The work runs in dask graphs whose tasks open their files by path, tile by
tile, so memory is bounded by ``prepare.patches.tile_size`` whatever the size of the scenes.

1. **Layout** (:func:`_layout`): the scenes' stack (bands, grid, dates; nothing is read), the
   labels, the split groups, and the window lattice and its tiles (:mod:`landcover.lattice`).
2. **Survey** (:func:`_survey`, labels only): class codes per pixel, counted per code and per split
   group (see :mod:`landcover.splits`); the class table is derived when none is configured, and
   unknown codes are counted and reported (:func:`_resolve_table`).
3. **Assign** (:func:`_assign`): split groups to train/validation/test, stratified by class (fixed
   assignments of a split column or raster kept as given).
4. **Plan** (:func:`_plan`): windows on the lattice (``size`` every ``stride`` pixels, plus one
   flush with each far edge) are placed per split: a window for split *k* when at least
   ``min_labelled`` of its pixels are labelled split-*k* pixels, or when it owns a labelled
   split-*k* pixel that no such window covers. So no labelled pixel is lost, however small its
   polygon or wherever its group's border.
5. **Extract** (:func:`_extract`): the windows are cut from all dates at once (reflectance,
   validity, label index; the pixels of other splits get the ignore label) into a work store next
   to the output; then valid observations are counted per window and date (:func:`_count_valid`).
6. **Dates** (:func:`_select_dates`): dates whose valid share on the labelled pixels is below
   ``features.min_date_valid`` are dropped.
7. **Window checks** (:func:`_check_windows`): pixels with fewer than ``features.min_valid_dates``
   valid observations get the ignore label; windows whose labelled pixels are mostly invalid
   (``patches.min_valid``) or that have no labelled pixel left are dropped.
8. **Label accounting** (:func:`_account_labels`): unique labelled pixels are counted per class and
   split, and against the labels (warnings for classes that lost pixels and for weak splits).
9. **Statistics** (:func:`_statistics`): normalisation mean/std from valid observations of the
   training windows on the kept dates only.
10. **Weights** (:func:`class_weights`): class weights from the training split's unique pixels.
11. **Features** (:func:`_features`): the dask graph of the inputs (made by
    :meth:`landcover.features.FeatureSpec.make`), labels and per-pixel weights, in sample order
    (by split, then work-store order).
12. **Attributes** (:func:`_summary`, :func:`_attributes`): the summary and the self-describing
    attributes of the dataset.
13. **Write** (:func:`_dataset`, :func:`_write`): to Zarr under a temporary name, with a preview of
    the splits (``splits.png``), renamed when complete.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import warnings
from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.classes import ClassTable, load_class_table
from landcover.config import Config
from landcover.contract import DATASET_FORMAT, IGNORE
from landcover.dataset import SPLITS, compressor, write_checksums
from landcover.errors import DatasetError, LabelError
from landcover.features import FeatureSpec
from landcover.grid import Grid
from landcover.labels import NOT_A_CODE, open_labels, window_codes
from landcover.lattice import Layout, make_layout, owned_pixels
from landcover.outputs import OutputSet, check_space
from landcover.runtime import check_memory, versions
from landcover.scenes import Scene, SceneSource, as_scenes, scene_profiles

log = logging.getLogger(__name__)

CHUNK_PATCHES = 32  # patches per Zarr chunk of the output


# ------------------------------------------------------------------------ records between stages
@dataclass(frozen=True)
class _Sources:
    """Layout: what the stages read, opened (nothing read yet)."""

    scenes: list[Scene]  # in stacking order
    dates: list  # [(date, (scene, ...)), ...]: one entry per date of the stack
    bands: list[str]
    grid: Grid
    labels: object  # a label source (landcover.labels)
    groups: object  # a split group source (landcover.splits)
    layout: Layout
    table: ClassTable | None  # the configured class table; None: derived from the labels
    labels_path: Path


@dataclass(frozen=True)
class _Survey:
    """Survey: labelled pixels per code ``hist (256,)``, pixels of no class code, per (group, code)
    as ``group_keys = group * 256 + code`` and ``group_counts``, and per code in no group."""

    hist: np.ndarray
    not_a_code: int
    group_keys: np.ndarray
    group_counts: np.ndarray
    no_group: np.ndarray


@dataclass(frozen=True)
class _Assignment:
    """Assign: ``lookup`` = (sorted group ids, their split codes); groups per split; pixels per
    class in groups of no split; the splits fixed by the split column or raster."""

    lookup: tuple[np.ndarray, np.ndarray]
    groups: list[int]
    none_pixels: list[int]
    fixed_splits: list[int]


@dataclass(frozen=True)
class _Windows:
    """Plan: the placed windows in work-store order: origins and the split each was placed for."""

    rows: np.ndarray
    cols: np.ndarray
    split: np.ndarray

    @classmethod
    def of(cls, planned: list) -> _Windows:
        return cls(*(np.array([w[i] for tile in planned for w in tile]) for i in range(3)))


@dataclass(frozen=True)
class _Work:
    """Extract: the work store (a path) and its arrays, one row per placed window (dask)."""

    path: str
    reflectance: object  # (n, T, s, s, B) float32, NaN = no data
    valid: object  # (n, T, s, s) bool
    labels: object  # (n, s, s) uint8, 255 = ignore


@dataclass(frozen=True)
class _Counts:
    """Valid observations per window and date: on its labelled pixels ``labelled_valid (n, T)``,
    on all its pixels ``valid (n, T)``; labelled pixels per window as placed ``labelled (n,)``."""

    labelled_valid: np.ndarray
    labelled: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class _Dates:
    """Dates: every date of the stack, its valid share on the labelled pixels, which are kept."""

    dates: tuple[dt.date, ...]
    scene_ids: tuple[str, ...]  # per date, the IDs of its scenes joined by '+'
    share: np.ndarray
    keep: np.ndarray

    @property
    def index(self) -> np.ndarray:
        return np.flatnonzero(self.keep)

    @property
    def kept(self) -> list[dt.date]:
        return [self.dates[i] for i in self.index]

    @property
    def dropped(self) -> list[dt.date]:
        return [self.dates[i] for i in np.flatnonzero(~self.keep)]


@dataclass(frozen=True)
class _Kept:
    """Window checks: split per placed window (-1: dropped), labels after the checks, and the
    samples of the dataset as window indices, sorted by split, then in work-store order (so each
    output chunk reads its samples from a few neighbouring work chunks)."""

    split: np.ndarray  # (n,) int8
    labels: np.ndarray  # (n, s, s) uint8
    order: np.ndarray  # (samples,)

    @property
    def sample_split(self) -> np.ndarray:
        return self.split[self.order].astype(np.uint8)


@dataclass(frozen=True)
class _Accounting:
    """Label accounting: unique labelled pixels kept ``(3, K)`` per split and class, the report
    against the labels, and its warnings."""

    pixels: np.ndarray
    report: dict
    warnings: list[str]


@dataclass(frozen=True)
class _Stats:
    """Statistics: per band mean and std of the valid observations of training windows."""

    mean: np.ndarray
    std: np.ndarray
    count: int


@dataclass(frozen=True)
class _Features:
    """Features: the dataset's arrays in sample order (dask) and the feature names."""

    names: list[str]
    inputs: object  # (samples, T, s, s, F) float32
    labels: object  # (samples, s, s) uint8
    weights: object  # (samples, s, s) float32


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

    A window is cut for split *k* when at least ``min_labelled`` of its pixels are labelled pixels
    of split *k*, or when it owns (see :func:`landcover.lattice.owned_pixels`) a labelled
    split-*k* pixel that no such window covers: every labelled pixel ends up in a window of its
    own split."""
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
            ya, yb = owned_pixels(layout.row_origins, i, grid.height)
            for j in ci:
                b = col_at[layout.col_origins[j]]
                if n[a, b] == 0:
                    continue
                xa, xb = owned_pixels(layout.col_origins, j, grid.width)
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
    for t, g in enumerate(date_groups_):  # one date in memory at a time, cut into the output
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


def _label_report(table: ClassTable, survey: _Survey, assignment: _Assignment, split_kind: str,
                  kept: np.ndarray, placed: np.ndarray, p) -> tuple[dict, list[str]]:
    """Unique labelled pixels kept per class against those in the labels, and warnings (also
    logged) for classes that lost more than 2 % and for splits that lack a class or are a single
    group."""
    from landcover.splits import check_splits

    in_labels = np.array([int(survey.hist[c]) for c in table.codes])
    no_group = np.array([int(survey.no_group[c]) for c in table.codes])
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
            none = int(assignment.none_pixels[i])
            if none:
                why.append(f"{none} px in groups of no split")
            rest = in_labels[i] - total[i] - unobserved[i] - no_group[i] - none
            if rest > 0:
                why.append(f"{rest} px in the buffer between splits (prepare.split.gap)"
                           if p.split.gap else f"{rest} px not placed in any window")
            warnings_.append(f"class {name}: {total[i]} of {in_labels[i]} labelled pixels kept "
                             f"({share:.1%}); {'; '.join(why)}")
    warnings_ += check_splits(kept, np.array(assignment.groups), table.names, p.split.fractions,
                              split_kind, assignment.fixed_splits)
    for w in warnings_:
        log.warning("%s", w)
    kept_all, all_ = int(total.sum()), int(in_labels.sum())
    return {"in_labels": all_, "kept": kept_all, "unobserved": int(unobserved.sum()),
            "share": round(kept_all / all_, 4) if all_ else None,
            "per_class": per_class}, warnings_


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
def prepare(scenes: SceneSource | Sequence[Scene], labels_path: str | Path, out: str | Path,
            cfg: Config, *, overwrite: bool = False, progress=None) -> dict:
    """Build the patch dataset; returns the summary (also stored in the dataset's attributes).

    Args:
        scenes: a :class:`~landcover.scenes.SceneSource` (such as
            ``LocalScenes(paths, cfg.scenes.profile)``) or a sequence of
            :class:`~landcover.scenes.Scene` objects. Their files are opened by path in dask
            tasks: with a distributed scheduler, give absolute paths or GDAL URLs
            (:func:`~landcover.scenes.find_scenes` makes paths absolute).
        progress: a :mod:`landcover.progress` reporter (``True`` logs stages; ``None`` silent).
        labels_path: label raster or vector file.
        out: the dataset folder to write.
        cfg: the configuration (``scenes`` and ``prepare`` sections).

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`).

    Raises:
        OutputExistsError, SceneError, LabelError, ClassTableError, DatasetError.
        TypeError: ``scenes`` holds something else than Scene objects (such as paths).
    """
    # absolute paths: dask workers (other processes, other machines) open files by path
    out = Path(out).absolute()
    labels_path = Path(labels_path).absolute()
    with OutputSet([out], overwrite, folders=[True]) as outputs:
        summary = _run(scenes, labels_path, outputs, cfg, progress)
    summary["output"] = str(out)
    return summary


def _run(scenes, labels_path: Path, outputs: OutputSet, cfg: Config, progress) -> dict:
    """The stages, under the output lock."""
    p = cfg.prepare
    src = _layout(scenes, labels_path, cfg)
    dropped = None
    if p.labels.drop_suspect:
        src, dropped = _drop_suspect(src, cfg, progress)
    survey = _survey(src, p, progress)
    src, survey, fitted = _fit_blocks(src, survey, p, progress)
    table, unknown = _resolve_table(src, survey)
    assignment = _assign(survey, table, src.groups, p.split)
    planned = _plan(src, table, assignment, p, progress)
    _check_room(outputs.main, planned, src)
    tmp, work_path = outputs.temporary(kind="tmp"), outputs.temporary(kind="work")
    work = _extract(work_path, planned, src, table, assignment, cfg, progress)
    windows = _Windows.of(planned)
    counts = _count_valid(work, progress)
    dates = _select_dates(src, counts, p.features)
    kept, placed_labels = _check_windows(work, windows, counts, dates, p, progress)
    accounting = _account_labels(src, table, survey, assignment, windows, kept,
                                 placed_labels, p)
    del placed_labels
    stats = _statistics(work, kept, dates, progress)
    weights = class_weights(accounting.pixels[0], table, p.weights)
    features = _features(work, kept, dates, stats, src.bands, weights, p)
    classes = _class_records(table, weights, accounting.pixels)
    summary = _summary(kept, dates, counts, classes, accounting, assignment, unknown, p,
                       src.layout.size)
    if fitted is not None:
        summary["split"]["block_size"] = fitted
    if dropped is not None:
        summary["suspect_samples"] = dropped
    estimate = estimate_groups(src.groups, src.grid)
    summary["estimate_groups"] = {"kind": estimate.kind,
                                  **({"block_size": estimate.block} if estimate.kind == "blocks"
                                     else {})}
    attrs = _attributes(src, cfg, dates, stats, classes, summary, features.names)
    groups = window_groups(estimate, src.grid, windows, kept)
    _write(_dataset(src, windows, kept, dates, features, attrs, groups), tmp, src, progress)
    write_checksums(tmp)
    outputs.commit({outputs.main: tmp})
    return summary


MIN_GROUPS = 10
"""Labelled split groups a dataset needs: a group in each of validation and test and five folds of
the training split need about ten (with the default fractions 0.7 / 0.2 / 0.1)."""
MIN_BLOCK = 8


def _group_count(survey: _Survey) -> int:
    return len(np.unique(survey.group_keys // 256))


def _fit_blocks(src: _Sources, survey: _Survey, p, progress):
    """Stage 2b: with ``prepare.split.by: blocks``, halve the block size until the labelled area
    spans :data:`MIN_GROUPS` blocks (a block of the whole labelled area leaves validation and test
    empty). Returns ``(src, survey, the fitted block size or None)``.

    Raises:
        DatasetError: no block size of at least :data:`MIN_BLOCK` px gives enough blocks; the
            message names ``prepare.split.block_size``.
    """
    import dataclasses

    n = _group_count(survey)
    if src.groups.kind != "blocks" or n >= MIN_GROUPS:
        return src, survey, None
    first = block = src.groups.block
    while n < MIN_GROUPS and block // 2 >= MIN_BLOCK:
        block //= 2
        src = dataclasses.replace(src, groups=dataclasses.replace(src.groups, block=block))
        survey = _survey(src, p, progress)
        n = _group_count(survey)
    if n < MIN_GROUPS:
        raise DatasetError(f"prepare.split.block_size: the labelled pixels span {n} block(s) of "
                           f"{block} px (from {first}); splits and folds need {MIN_GROUPS}. Label "
                           "more of the area, or split by polygon (prepare.split.by=column)")
    log.warning("prepare.split.block_size: the labelled pixels span too few blocks of %d px; "
                "blocks of %d px instead (%d blocks)", first, block, n)
    return src, survey, block


ESTIMATE_BLOCK = 32


@dataclass(frozen=True)
class _SubdividedGroups:
    """Split groups whose fixed groups (every polygon of a ``test`` value of the split column is
    one group) are cut into blocks of ``block`` px, so that intervals over them have groups."""

    source: object
    fixed_ids: tuple
    block: int
    width: int
    kind: str = "column"

    def groups(self, target, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        g = self.source.groups(target, row0, col0, h, w)
        fixed = np.isin(g, self.fixed_ids)
        if fixed.any():
            rows = (np.arange(row0, row0 + h) // self.block)[:, None]
            cols = (np.arange(col0, col0 + w) // self.block)[None, :]
            blocks = rows * (-(-self.width // self.block)) + cols
            which = np.searchsorted(np.asarray(self.fixed_ids), g)
            g = np.where(fixed, (1 << 40) + (which.astype(np.int64) << 24) + blocks, g)
        return g


def estimate_groups(groups, grid: Grid):
    """The spatial groups of the pixels for cross-validation folds and intervals: the split
    groups (blocks, or the polygons / fields of the split column; a fixed ``train`` /
    ``validation`` / ``test`` group of the column cut into blocks of :data:`ESTIMATE_BLOCK` px),
    or, where the split comes from a raster of split codes (3 values, not groups), blocks of
    :data:`ESTIMATE_BLOCK` px."""
    from landcover.splits import BlockGroups

    if groups.kind == "raster":
        return BlockGroups(ESTIMATE_BLOCK, grid.width)
    fixed = tuple(sorted(int(g) for g, _ in getattr(groups, "fixed_splits", ())))
    if groups.kind == "column" and fixed:
        return _SubdividedGroups(groups, fixed, ESTIMATE_BLOCK, grid.width)
    return groups


def window_groups(groups, grid: Grid, windows: _Windows, kept: _Kept) -> np.ndarray:
    """The group id ``(samples, s, s)`` int32 of each labelled pixel of the kept windows (-1 where
    the label is ignored), in sample order."""
    s = kept.labels.shape[-1]
    out = np.full((len(kept.order), s, s), -1, np.int32)
    for n, i in enumerate(kept.order):
        g = groups.groups(grid, int(windows.rows[i]), int(windows.cols[i]), s, s)
        out[n] = np.where(kept.labels[i] != IGNORE, g, -1)
    return out


def _check_room(out: Path, planned, src) -> None:
    """Before extraction: the tile tasks must fit in memory, and the work store (uncompressed
    reflectance and validity of every window) and the dataset (compressed features, at most as
    large) in the output folder's free space."""
    from landcover.scheduler import parallel_tasks

    n = sum(len(tile) for tile in planned)
    s, T, B = src.layout.size, len(src.dates), len(src.bands)
    side = src.layout.tile + s
    # one tile task: a date of the tile and its windows' margin (bands + validity, float32 and
    # a warped copy), and the windows it cuts from every date
    per_task = side * side * (B + 2) * 4 * 3 + max(map(len, planned)) * T * s * s * (4 * B + 2)
    check_memory(per_task * parallel_tasks(), f"prepare.patches.tile_size={src.layout.tile}",
                 "the tile tasks need", "prepare.patches.tile_size")
    work = n * T * s * s * (4 * B + 1) + n * s * s
    check_space(out.parent, 2 * work, f"preparing {n} windows of {T} dates")


# ----------------------------------------------------------------------------------------- stages
def _layout(scenes: SceneSource | Sequence[Scene], labels_path: Path, cfg: Config) -> _Sources:
    """Stage 1: the scenes' stack (validates bands and grids; nothing is read), the labels and
    split groups on its grid, and the window lattice."""
    from landcover.splits import open_groups
    from landcover.stack import date_groups, grid_of, stack_scenes

    p = cfg.prepare
    table = load_class_table(p.classes) if p.classes else None
    scenes = as_scenes(scenes)
    stack = stack_scenes(scenes, cfg.scenes)
    grid = grid_of(stack)
    dates = date_groups(scenes)
    labels = open_labels(labels_path, grid, p.labels, table)
    groups = open_groups(p.split, labels, labels_path, grid)
    layout = make_layout(grid, cfg)
    log.info("%d dates, grid %s, %d window positions", len(dates), grid.describe(),
             layout.n_rows * layout.n_cols)
    return _Sources(scenes, dates, [str(b) for b in stack.band.values], grid, labels, groups,
                    layout, table, labels_path)


def _drop_suspect(src: _Sources, cfg: Config, progress) -> tuple[_Sources, dict]:
    """Stage 1b (``prepare.labels.drop_suspect``): the labels without the samples that
    :func:`landcover.check_samples.suspect_samples` marks suspect (a fixed ``test`` split of
    ``prepare.split.column`` kept as labelled), and what was dropped."""
    from landcover.check_samples import suspect_samples
    from landcover.splits import open_groups

    p = cfg.prepare
    found = suspect_samples(src.scenes, src.labels, cfg, progress=progress)
    spare = p.split.column if p.split.by == "column" else None
    labels = found.drop_from(src.labels, spare=spare)
    total = len(found.result.table)
    log.warning("prepare.labels.drop_suspect: dropped %d suspect samples of %d", len(found),
                total)
    groups = open_groups(p.split, labels, src.labels_path, src.grid)
    summary = {"dropped": len(found), "samples": total, "check": found.result.summary}
    return dataclasses.replace(src, labels=labels, groups=groups), summary


def _survey(src: _Sources, p, progress) -> _Survey:
    """Stage 2: class codes per pixel, counted per code and per (split group, code)."""
    import dask

    from landcover.scheduler import compute

    labels_d = dask.delayed(src.labels, traverse=False)
    tasks = [dask.delayed(survey_tile, pure=True)(labels_d, src.groups, src.grid, core,
                                                  p.labels.erode)
             for core, _ in src.layout.tiles()]
    (surveyed,) = compute(tasks, label="Reading labels", show=progress)
    keys = np.concatenate([s[2] for s in surveyed])
    counts = np.concatenate([s[3] for s in surveyed])
    keys, inverse = np.unique(keys, return_inverse=True)
    return _Survey(hist=np.sum([s[0] for s in surveyed], axis=0),
                   not_a_code=sum(s[1] for s in surveyed), group_keys=keys,
                   group_counts=np.bincount(inverse, weights=counts,
                                            minlength=len(keys)).astype(np.int64),
                   no_group=np.sum([s[4] for s in surveyed], axis=0))


def _resolve_table(src: _Sources, survey: _Survey) -> tuple[ClassTable, dict]:
    """Stage 2 (end): the class table (derived from the codes seen when none is configured) and
    the labelled pixels whose codes are not in it."""
    hist, not_a_code, table = survey.hist, survey.not_a_code, src.table
    if hist.sum() + not_a_code == 0:
        raise LabelError(f"{src.labels_path}: no labelled pixel falls on the scenes' grid; the "
                         "labels do not overlap the scenes")
    if table is None:
        seen = np.flatnonzero(hist[:255])
        if len(seen) == 0:
            raise LabelError(f"{src.labels_path}: no usable class code (0..254) in the labels")
        table = src.labels.table(seen.tolist())
        log.info("class table derived from the labels: %s", table.describe())
    unknown = {int(c): int(hist[c]) for c in np.flatnonzero(hist) if c not in table.codes}
    if not_a_code:
        unknown["not a class code"] = int(not_a_code)
    if unknown:
        log.warning("%s: %d labelled pixels have codes outside the class table and are ignored: %s",
                    src.labels_path, sum(unknown.values()),
                    ", ".join(f"{k}: {v} px" for k, v in unknown.items()))
    return table, unknown


def _assign(survey: _Survey, table: ClassTable, split_groups, sc) -> _Assignment:
    """Stage 3: every split group to a split, stratified by class."""
    from landcover.splits import NONE, assign_groups

    lut = table.lut()
    gid, code = survey.group_keys // 256, survey.group_keys % 256
    cls = lut[code]
    ok = cls != IGNORE
    ids, inv = np.unique(gid, return_inverse=True)
    matrix = np.zeros((len(ids), len(table)), np.int64)
    np.add.at(matrix, (inv[ok], cls[ok].astype(np.int64)), survey.group_counts[ok])
    fixed = split_groups.fixed(ids)
    split = assign_groups(matrix, sc.fractions, sc.seed, fixed)
    per_split = [int((split == k).sum()) for k in range(3)]
    log.info("split groups (%s): %d train, %d validation, %d test, %d none", split_groups.kind,
             *per_split, int((split == NONE).sum()))
    return _Assignment(lookup=(ids.astype(np.int64), split.astype(np.int64)), groups=per_split,
                       none_pixels=matrix[split == NONE].sum(axis=0).tolist(),
                       fixed_splits=sorted({int(k) for k in fixed.values() if k < NONE}))


def _plan(src: _Sources, table: ClassTable, assignment: _Assignment, p, progress) -> list:
    """Stage 4: the windows ``(row, col, split)`` to cut, per tile (tiles without any dropped)."""
    import dask

    from landcover.scheduler import compute

    known = np.zeros(256, bool)
    known[table.codes] = True
    labels_d = dask.delayed(src.labels, traverse=False)
    tasks = [dask.delayed(plan_tile, pure=True)(labels_d, src.groups, src.grid, src.layout, core,
                                                known, p.labels.erode, assignment.lookup,
                                                p.split.gap, p.patches.min_labelled)
             for core, _ in src.layout.tiles()]
    (planned,) = compute(tasks, label="Placing windows", show=progress)
    planned = [tile for tile in planned if tile]
    if not planned:
        raise DatasetError("no labelled pixel of a known class falls in a split (check the labels, "
                           "the class table and prepare.split)")
    return planned


def _extract(work: Path, planned: list, src: _Sources, table: ClassTable,
             assignment: _Assignment, cfg: Config, progress) -> _Work:
    """Stage 5: cut the windows from every date into an uncompressed work store."""
    import dask
    import dask.array as da
    import zarr

    from landcover.scheduler import compute

    p = cfg.prepare
    T, B, s = len(src.dates), len(src.bands), src.layout.size
    labels_d = dask.delayed(src.labels, traverse=False)
    scenes_d = dask.delayed(tuple(g for _, g in src.dates), traverse=False)
    parts = {"reflectance": [], "valid": [], "labels": []}
    for tile in planned:
        part = dask.delayed(extract_tile, pure=True, nout=3)(
            scenes_d, tuple(src.bands), src.grid, cfg.scenes.mask, labels_d, src.groups,
            table.lut(), src.layout, tuple(tile), p.labels.erode, assignment.lookup, p.split.gap)
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

    def open_work(name):
        z = zarr.open_array(str(work / name), mode="r")
        return da.from_zarr(z, chunks=(CHUNK_PATCHES,) + z.shape[1:])

    return _Work(str(work), open_work("reflectance"), open_work("valid"), open_work("labels"))


def _count_valid(work: _Work, progress) -> _Counts:
    """Stage 5 (end): valid observations per window and date, on its labelled pixels and all."""
    from landcover.scheduler import compute

    labelled = work.labels != IGNORE
    per_window_date = (work.valid & labelled[:, None]).sum(axis=(2, 3), dtype=np.int64)
    labelled_valid, n_labelled, valid = compute(
        per_window_date, labelled.sum(axis=(1, 2), dtype=np.int64),
        work.valid.sum(axis=(2, 3), dtype=np.int64), label="Counting valid pixels", show=progress)
    return _Counts(labelled_valid, n_labelled, valid)


def _select_dates(src: _Sources, counts: _Counts, fc) -> _Dates:
    """Stage 6: drop the dates whose valid share on the labelled pixels of the windows is below
    ``prepare.features.min_date_valid``."""
    dates = tuple(d for d, _ in src.dates)
    share = counts.labelled_valid.sum(axis=0) / max(1, int(counts.labelled.sum()))
    keep = share >= fc.min_date_valid
    if not keep.any():
        raise DatasetError(
            f"every date has less than {fc.min_date_valid:.0%} valid observations on the "
            f"labelled pixels (best {share.max():.1%}): the scenes are cloud-covered or the "
            "QA masks everything; add clearer scenes or lower prepare.features.min_date_valid")
    dropped = [f"{d.isoformat()} ({sh:.0%} valid)" for d, sh, k in zip(dates, share, keep)
               if not k]
    if dropped:
        log.warning("dropping %d date(s) with less than %.0f%% valid observations: %s",
                    len(dropped), 100 * fc.min_date_valid, ", ".join(dropped))
    scene_ids = tuple("+".join(sc.scene_id for sc in group) for _, group in src.dates)
    return _Dates(dates, scene_ids, share, keep)


def _check_windows(work: _Work, windows: _Windows, counts: _Counts, dates: _Dates, p,
                   progress) -> tuple[_Kept, np.ndarray]:
    """Stage 7: the ignore label where a pixel has too few valid observations on the kept dates;
    windows without a labelled pixel left or whose labelled pixels are mostly invalid dropped.
    Returns the kept windows and the labels as placed (for the label accounting)."""
    from landcover.scheduler import compute

    t_idx = dates.index
    checked = ignore_unobserved(work.labels, work.valid[:, t_idx], p.features.min_valid_dates)
    labels, placed = compute(checked, work.labels, label="Checking windows", show=progress)
    labelled_n = (labels != IGNORE).sum(axis=(1, 2))
    valid_share = counts.labelled_valid[:, t_idx].sum(axis=1) / np.maximum(
        1, counts.labelled * len(t_idx))
    ok = (labelled_n > 0) & (valid_share >= p.patches.min_valid)
    if not ok.any():
        raise DatasetError(f"no window passes prepare.patches.min_valid={p.patches.min_valid} on "
                           "its labelled pixels (after cloud masking); lower it or add clearer "
                           "scenes")
    split = np.where(ok, windows.split, -1).astype(np.int8)
    kept = _Kept(split, labels, np.concatenate([np.flatnonzero(split == k) for k in range(3)]))
    if not (kept.sample_split == 0).any():
        raise DatasetError("the training split is empty; check prepare.split (by, fractions, the "
                           "split column or raster)")
    return kept, placed


def _account_labels(src: _Sources, table: ClassTable, survey: _Survey, assignment: _Assignment,
                    windows: _Windows, kept: _Kept, placed_labels: np.ndarray, p) -> _Accounting:
    """Stage 8: unique labelled pixels per split and class in the kept windows (a pixel in several
    overlapping windows of its split counts once), against the labels and the placed windows."""
    pixels = kept_pixels(kept.labels, windows.rows, windows.cols, kept.split, src.grid, len(table))
    placed = kept_pixels(placed_labels, windows.rows, windows.cols, windows.split, src.grid,
                         len(table)).sum(axis=0)
    report, warnings_ = _label_report(table, survey, assignment, src.groups.kind, pixels, placed, p)
    return _Accounting(pixels, report, warnings_)


def _statistics(work: _Work, kept: _Kept, dates: _Dates, progress) -> _Stats:
    """Stage 9: mean and std per band of the valid observations of the training windows on the
    kept dates (std 1 where it is ~0)."""
    import dask.array as da

    from landcover.scheduler import compute

    t_idx = dates.index
    is_train = da.from_array(kept.split == 0, chunks=work.reflectance.chunks[0])
    use = work.valid[:, t_idx] & is_train[:, None, None, None]
    x = da.where(use[..., None], work.reflectance[:, t_idx], 0.0).astype(np.float64)
    count, total, total2 = compute(use.sum(dtype=np.int64), x.sum(axis=(0, 1, 2, 3)),
                                   (x * x).sum(axis=(0, 1, 2, 3)), label="Statistics",
                                   show=progress)
    count = int(count)
    total, total2 = total.reshape(-1), total2.reshape(-1)
    if count == 0:
        raise DatasetError("no valid observation in the training windows; add clearer scenes")
    mean = total / count
    std = np.sqrt(np.maximum(total2 / count - mean ** 2, 0.0))
    return _Stats(mean, np.where(std > 1e-6, std, 1.0), count)


def _features(work: _Work, kept: _Kept, dates: _Dates, stats: _Stats, bands: list[str],
              weights: np.ndarray, p) -> _Features:
    """Stage 11: the dask graph of the dataset's arrays in sample order: inputs (made from the
    work store by :meth:`FeatureSpec.make`), labels, and per-pixel weights (class weight, 0 =
    ignore)."""
    import dask.array as da

    s, t_idx = work.labels.shape[-1], dates.index
    spec = FeatureSpec(tuple(bands), tuple(stats.mean.tolist()), tuple(stats.std.tolist()),
                       p.features.fill, p.features.doy)
    index = da.from_array(kept.order, chunks=CHUNK_PATCHES)
    featurize = functools.partial(_final_inputs, work=work.path, t_idx=t_idx, spec=spec,
                                  dates=dates.kept)
    inputs = da.map_blocks(featurize, index, dtype=np.float32, new_axis=[1, 2, 3, 4],
                           chunks=(index.chunks[0], (len(t_idx),), (s,), (s,), (len(spec.names),)))
    labels = da.from_array(kept.labels[kept.order], chunks=(CHUNK_PATCHES, s, s))
    weight_lut = np.zeros(256, np.float32)
    weight_lut[:len(weights)] = weights
    pixel_weights = da.map_blocks(functools.partial(np.take, weight_lut), labels, dtype=np.float32)
    return _Features(spec.names, inputs, labels, pixel_weights)


def _class_records(table: ClassTable, weights: np.ndarray, pixels: np.ndarray) -> list[dict]:
    """Stage 12: per class its index, code, name, colour, weight and unique pixels per split."""
    return [{"index": i, "code": c.code, "name": c.name, "color": c.color,
             "weight": float(weights[i]),
             "pixels": {SPLITS[k]: int(pixels[k, i]) for k in range(3)}}
            for i, c in enumerate(table.classes)]


def _summary(kept: _Kept, dates: _Dates, counts: _Counts, classes: list[dict],
             accounting: _Accounting, assignment: _Assignment, unknown: dict, p,
             size: int) -> dict:
    """Stage 12: the summary (returned, shown by the CLI and stored in the attributes)."""
    split_o, n, t_idx = kept.sample_split, len(kept.order), dates.index
    masked = 1.0 - counts.valid[kept.order][:, t_idx].sum() / (n * size * size * len(t_idx))
    return {
        "patches": n, "patches_per_split": {SPLITS[k]: int((split_o == k).sum()) for k in range(3)},
        "dates": [d.isoformat() for d in dates.kept],
        "dates_dropped": [d.isoformat() for d in dates.dropped],
        "masked_share": round(float(masked), 4),
        "labelled_pixels": {c["name"]: sum(c["pixels"].values()) for c in classes},
        "labelled_pixels_per_split": {SPLITS[k]: {c["name"]: c["pixels"][SPLITS[k]]
                                                  for c in classes} for k in range(3)},
        "labels_kept": accounting.report,
        "split": {"by": p.split.by, "groups": dict(zip(SPLITS, assignment.groups))},
        "warnings": accounting.warnings,
        "unknown_codes": {str(k): v for k, v in unknown.items()},
    }


def _attributes(src: _Sources, cfg: Config, dates: _Dates, stats: _Stats, classes: list[dict],
                summary: dict, names: list[str]) -> dict:
    """Stage 12: the dataset's attributes (how it was made, what its arrays mean)."""
    from landcover.profiles import profile_record

    p, bands = cfg.prepare, list(src.bands)
    per_split = summary["patches_per_split"]
    starts = np.cumsum([0] + [per_split[k] for k in SPLITS])
    return {
        "landcover_dataset": DATASET_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bands": bands, "features": names,
        "dates": summary["dates"], "dates_dropped": summary["dates_dropped"],
        "date_valid_share": {d.isoformat(): round(float(v), 4)
                             for d, v in zip(dates.dates, dates.share)},
        "normalisation": {
            "mean": stats.mean.tolist(), "std": stats.std.tolist(), "count": stats.count,
            "bands": bands,
            "computed_on": "valid observations of the training windows on the kept dates"},
        "fill": p.features.fill, "doy": p.features.doy,
        "patch_size": src.layout.size, "stride": src.layout.stride,
        "ignore_label": IGNORE,
        "classes": classes,
        "class_weights": {"mode": p.weights.mode, "cap": p.weights.cap,
                          "by_code": {str(c["code"]): c["weight"] for c in classes}},
        "splits": {k: [int(starts[i]), int(starts[i + 1])] for i, k in enumerate(SPLITS)},
        "split_codes": {k: i for i, k in enumerate(SPLITS)},
        "grid": src.grid.to_dict(),
        "labels": {"path": src.labels.path, "kind": src.labels.kind},
        "scenes": [{"scene_id": sc.scene_id, "date": sc.date.isoformat(), "sensor": sc.sensor,
                    "source": sc.source} for sc in src.scenes],
        "profiles": [profile_record(pr) for pr in scene_profiles(src.scenes)],
        "summary": summary,
        "config": cfg.to_dict(),
        "versions": versions(data=True),
    }


def _dataset(src: _Sources, windows: _Windows, kept: _Kept, dates: _Dates, features: _Features,
             attrs: dict, groups: np.ndarray):
    """Stage 13: the ``xarray.Dataset`` to write (lazy inputs and weights)."""
    import xarray as xr

    a, _, c0, _, e, f0 = src.grid.transform
    rows = windows.rows[kept.order].astype(np.int32)
    cols = windows.cols[kept.order].astype(np.int32)
    ds = xr.Dataset(
        {"inputs": (("sample", "time", "patch_y", "patch_x", "feature"), features.inputs),
         "labels": (("sample", "patch_y", "patch_x"), features.labels),
         "weights": (("sample", "patch_y", "patch_x"), features.weights),
         "row": ("sample", rows), "col": ("sample", cols),
         "x_min": ("sample", c0 + cols * a), "y_max": ("sample", f0 + rows * e),
         "split": ("sample", kept.sample_split),
         "groups": (("sample", "patch_y", "patch_x"), groups)},
        coords={"time": np.array([np.datetime64(d, "ns") for d in dates.kept]),
                "feature": np.array(features.names, dtype=object),
                "scene_id": ("time", np.array([dates.scene_ids[i] for i in dates.index],
                                              dtype=object))},
        attrs=json.loads(json.dumps(attrs, default=_plain)))
    ds["labels"].attrs.update({"meaning": "class index (see attrs classes); 255 = ignore"})
    ds["weights"].attrs.update({"meaning": "per-pixel sample weight: class weight, 0 = ignore"})
    ds["split"].attrs.update({"meaning": "0 train, 1 validation, 2 test"})
    ds["groups"].attrs.update({"meaning": "spatial group of each labelled pixel, for "
                                          "cross-validation folds and intervals; -1 = none"})
    ds["inputs"].attrs.update({"meaning": "standardised bands (invalid filled), validity, day of "
                                          "year; see attrs features and normalisation"})
    return ds


def _write(ds, tmp: Path, src: _Sources, progress) -> None:
    """Stage 13: the dataset to Zarr at ``tmp`` (consolidated metadata), and its split preview."""
    from landcover.scheduler import compute

    with warnings.catch_warnings():  # consolidated metadata: a zarr-python extension for v3
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        write = ds.to_zarr(str(tmp), mode="w", compute=False, consolidated=True,
                           encoding={name: {"compressors": [compressor()]}
                                     for name in ("inputs", "labels", "weights")})
    compute(write, label="Writing dataset", show=progress)
    _preview(tmp, src.grid, ds["row"].values, ds["col"].values, ds["split"].values,
             src.layout.size)


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
