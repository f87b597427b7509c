"""The per-tile work of ``landcover prepare`` (run in dask tasks that open their files by
path): the label survey and the window plan of a tile, its extraction, its features; and the
label report and class weights."""

from __future__ import annotations

import logging

import numpy as np

from landcover.classes import ClassTable
from landcover.contract import IGNORE
from landcover.errors import LabelError
from landcover.features import FeatureSpec
from landcover.grid import Grid
from landcover.labels import NOT_A_CODE, window_codes
from landcover.lattice import Layout, owned_pixels
from landcover.prepare.records import Assignment, Survey

log = logging.getLogger(__name__)


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


def _read_work(work: str, name: str, index: np.ndarray, t_idx=None) -> np.ndarray:
    import zarr

    z = zarr.open_array(f"{work}/{name}", mode="r")
    if t_idx is None:
        return z.get_orthogonal_selection((index,))
    return z.get_orthogonal_selection((index, t_idx))


def final_inputs(index, *, work, t_idx, spec: FeatureSpec, dates):
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


def label_report(table: ClassTable, survey: Survey, assignment: Assignment, split_kind: str,
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


def plain(value):
    """numpy scalars and arrays in dataset_attributes as JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
