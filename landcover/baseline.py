"""A per-pixel random-forest baseline, fitted on the same prepared dataset as the network.

The question it answers: does the network beat a plain random forest? Analysts often use one on
per-pixel time series. Each usable pixel (label not ignored, weight > 0) becomes one row. The row
holds the pixel's per-date features flattened over (time, feature): exactly what the network
sees, i.e. standardised bands with invalid observations filled, the validity channel and the
day-of-year sin/cos.

**De-duplication.** When ``prepare.patches.stride < size``, windows of a split overlap, so the same
grid pixel is stored several times. Rows are keyed by grid position, ``(row + i, col + j)`` with
``row``/``col`` the window's top-left pixel, and each grid pixel is kept once (the first time it
is seen in storage order). Windows of different splits never overlap, so this is done per split.

**Bounded memory.** A split is read one stored chunk at a time. The only thing that grows with the
split is one bool per grid pixel of the split's bounding box, which records the pixels already
seen. Subsampling takes two passes. The first reads only labels and weights and counts the
usable pixels per class. Then, for each class, the ordinals of the pixels to keep are drawn
(``numpy.random.Generator.choice`` without replacement; the result depends only on the seed).
The second pass reads the inputs and keeps those pixels. Scoring streams too: it predicts one
chunk at a time and adds the results to a confusion matrix.

sklearn is imported inside :func:`fit_baseline` only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from landcover.dataset import PreparedDataset
from landcover.errors import DatasetError
from landcover.estimate import group_confusions, interval_scores

EVAL_MAX_PIXELS = 500_000
EVAL_SPLITS = ("validation", "test")


# ------------------------------------------------------------------------------ reading pixels
def _split_bounds(ds: PreparedDataset, split: str) -> tuple[int, int]:
    try:
        return ds.split_range(split)
    except KeyError:
        raise DatasetError(f"{ds.path}: no split {split!r} in this dataset") from None


def _usable_pieces(ds: PreparedDataset, split: str) -> Iterator[tuple]:
    """For each stored piece of the split, the pixels to use, de-duplicated by grid position.

    Yields ``(start, stop, n, i, j, label, grid_row, grid_col)``. ``n, i, j`` index the piece's
    ``(sample, y, x)`` and are in storage order. Each grid pixel of the split is yielded once.
    """
    a, b = _split_bounds(ds, split)
    if b <= a:
        return
    g = ds.group
    rows = np.asarray(g["row"][a:b], dtype=np.int64)
    cols = np.asarray(g["col"][a:b], dtype=np.int64)
    _, h, w, _ = ds.input_shape
    r0, c0 = int(rows.min()), int(cols.min())
    n_rows, n_cols = int(rows.max()) + h - r0, int(cols.max()) + w - c0
    seen = np.zeros(n_rows * n_cols, bool)  # one flag per grid pixel of the split's bounding box
    ignore, k = ds.ignore_label, ds.num_classes
    for start, stop in ds.pieces(split):
        lab = np.asarray(g["labels"][start:stop])
        wt = np.asarray(g["weights"][start:stop])
        n, i, j = np.nonzero((lab != ignore) & (lab < k) & (wt > 0))
        gr = rows[start - a + n] + i
        gc = cols[start - a + n] + j
        lin = (gr - r0) * n_cols + (gc - c0)
        _, first = np.unique(lin, return_index=True)  # first occurrence within this piece
        first.sort()
        first = first[~seen[lin[first]]]  # ... and not seen in an earlier piece
        seen[lin[first]] = True
        n, i, j = n[first], i[first], j[first]
        yield start, stop, n, i, j, lab[n, i, j].astype(np.int64), gr[first], gc[first]


def split_pixels(ds: PreparedDataset, split: str) -> Iterator[tuple]:
    """Each usable grid pixel of a split once: per stored piece ``(start, stop, n, i, j, labels,
    groups)``, ``n, i, j`` indexing the piece's ``(sample, y, x)`` (see :func:`pixel_groups`)."""
    for start, stop, n, i, j, lab, gr, gc in _usable_pieces(ds, split):
        yield start, stop, n, i, j, lab, pixel_groups(ds, start, stop, n, i, j, gr, gc)


def class_counts(ds: PreparedDataset, split: str) -> np.ndarray:
    """Usable, de-duplicated pixels per class in a split (int64, ``num_classes``). Reads only
    labels and weights."""
    counts = np.zeros(ds.num_classes, np.int64)
    for *_, lab, _, _ in _usable_pieces(ds, split):
        counts += np.bincount(lab, minlength=ds.num_classes)
    return counts


def quotas(counts: np.ndarray, max_pixels: int | None, *, keep_rare: bool = True) -> np.ndarray:
    """Pixels to draw per class so that at most ``max_pixels`` are drawn in total.

    If everything fits, every class keeps all its pixels. Otherwise, with ``keep_rare``, each of
    the K classes present first gets ``min(count, max_pixels // (2 * K))``. The rest of the budget
    is then split in proportion to the pixels each class has left (largest remainder; ties go to
    the lower class index). Without ``keep_rare``, the whole budget is split in proportion to the
    counts, so the sample keeps the split's class shares. Use that for scoring, where the overall
    accuracy must stay unbiased.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if max_pixels is None or total <= max_pixels:
        return counts.copy()
    present = int((counts > 0).sum())
    floor = np.minimum(counts, max_pixels // (2 * present)) if keep_rare else np.zeros_like(counts)
    rest = counts - floor
    budget = int(max_pixels - floor.sum())
    share = budget * rest / rest.sum()  # each share < rest: total > max_pixels
    extra = np.floor(share).astype(np.int64)
    short = budget - int(extra.sum())
    order = np.lexsort((np.arange(len(counts)), -(share - extra)))  # largest remainder first
    extra[order[:short]] += 1
    return floor + extra


def _draw(counts: np.ndarray, want: np.ndarray, seed: int) -> list[np.ndarray | None]:
    """Per class, the sorted ordinals (among its usable pixels, in storage order) to keep; None
    where the class keeps everything."""
    rng = np.random.default_rng(seed)
    return [None if q >= n else np.sort(rng.choice(int(n), size=int(q), replace=False))
            for n, q in zip(counts, want)]


FALLBACK_BLOCK = 32


def pixel_groups(ds: PreparedDataset, start: int, stop: int, n, i, j, gr, gc) -> np.ndarray:
    """The spatial group of pixels ``(n, i, j)`` of samples ``start:stop`` (grid ``gr, gc``): the
    dataset's ``groups`` array (the split groups, see :func:`landcover.prepare.estimate_groups`),
    or, for datasets written before it, blocks of :data:`FALLBACK_BLOCK` px."""
    if "groups" in ds.group:
        return np.asarray(ds.group["groups"][start:stop])[n, i, j].astype(np.int64)
    return (np.asarray(gr) // FALLBACK_BLOCK) * 1_000_003 + np.asarray(gc) // FALLBACK_BLOCK


def selected_pixels(ds: PreparedDataset, split: str, chosen: list | None) -> Iterator[tuple]:
    """:func:`_usable_pieces` keeping only the pixels in ``chosen`` (see :func:`_draw`; None =
    all): ``(start, stop, n, i, j, label, grid_row, grid_col)`` per piece with a pixel left."""
    k = ds.num_classes
    seen = np.zeros(k, np.int64)  # usable pixels of each class met so far
    for start, stop, n, i, j, lab, gr, gc in _usable_pieces(ds, split):
        if chosen is not None:
            keep = np.zeros(len(lab), bool)
            for c in range(k):
                where = np.flatnonzero(lab == c)
                if chosen[c] is None:
                    keep[where] = True
                elif len(where):
                    sel = chosen[c]
                    lo, hi = np.searchsorted(sel, [seen[c], seen[c] + len(where)])
                    keep[where[sel[lo:hi] - seen[c]]] = True
                seen[c] += len(where)
            n, i, j, lab, gr, gc = n[keep], i[keep], j[keep], lab[keep], gr[keep], gc[keep]
        if len(lab):
            yield start, stop, n, i, j, lab, gr, gc


def _selected_pieces(ds: PreparedDataset, split: str, chosen: list | None, *,
                     with_groups: bool = False) -> Iterator[tuple]:
    """``(X (m, T*F) float32, y (m,) int64, rc (m, 2) int64)`` per piece, with only the pixels
    in ``chosen`` (see :func:`_draw`; None = all); with ``with_groups`` also the pixels' groups
    (:func:`pixel_groups`)."""
    inputs = ds.group["inputs"]
    t, _, _, f = ds.input_shape
    for start, stop, n, i, j, lab, gr, gc in selected_pixels(ds, split, chosen):
        x = np.asarray(inputs[start:stop], dtype=np.float32)[n, :, i, j, :]  # (m, T, F)
        if with_groups:
            yield (x.reshape(len(lab), t * f), lab, np.stack([gr, gc], axis=1),
                   pixel_groups(ds, start, stop, n, i, j, gr, gc))
        else:
            yield x.reshape(len(lab), t * f), lab, np.stack([gr, gc], axis=1)


def selection(ds, split, max_pixels, seed, keep_rare):
    """(chosen, usable pixels, pixels kept) for :func:`_selected_pieces`."""
    if max_pixels is not None and int(max_pixels) < 1:
        raise ValueError(f"max_pixels must be 1 or more (or None for all), got {max_pixels}")
    if max_pixels is None:
        return None, None, None  # one pass; counted while reading
    counts = class_counts(ds, split)
    want = quotas(counts, int(max_pixels), keep_rare=keep_rare)
    chosen = None if (want == counts).all() else _draw(counts, want, seed)
    return chosen, int(counts.sum()), int(want.sum())


def pixel_table(ds: PreparedDataset, split: str, *, max_pixels: int | None = None, seed: int = 0,
                keep_rare: bool = True, positions: bool = False):
    """One row per usable grid pixel of a split: its features flattened over (time, feature).

    Args:
        ds: the opened dataset (:func:`landcover.dataset.open_dataset`).
        split: ``train``, ``validation`` or ``test``.
        max_pixels: keep at most this many pixels, stratified by class (see :func:`quotas`);
            None keeps all.
        seed: the subsample depends only on the seed (and the dataset).
        keep_rare: give every class at least ``min(count, max_pixels // (2 K))`` pixels (True),
            or keep the class shares of the split (False).
        positions: also return the grid ``(row, col)`` of each row.

    Returns:
        ``X`` float32 ``(n, T*F)`` (index ``t * F + f``), ``y`` int64 ``(n,)`` (class indices),
        plus ``rc`` int64 ``(n, 2)`` if ``positions``. Rows are in storage order.
    """
    chosen, _, _ = selection(ds, split, max_pixels, seed, keep_rare)
    t, _, _, f = ds.input_shape
    xs, ys, rcs = [], [], []
    for x, y, rc in _selected_pieces(ds, split, chosen):
        xs.append(x)
        ys.append(y)
        rcs.append(rc)
    X = np.concatenate(xs) if xs else np.zeros((0, t * f), np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    if positions:
        return X, y, (np.concatenate(rcs) if rcs else np.zeros((0, 2), np.int64))
    return X, y


# ------------------------------------------------------------------------------------ fitting
def fit_baseline(ds: PreparedDataset, *, n_estimators: int = 100, max_pixels: int = 50_000,
                 seed: int = 0, n_jobs: int = -1,
                 eval_max_pixels: int = EVAL_MAX_PIXELS) -> dict:
    """Fit a plain random forest on training pixels and score it on validation and test pixels.

    The forest is ``sklearn.ensemble.RandomForestClassifier(n_estimators, class_weight=None,
    random_state=seed)``. It is trained on at most ``max_pixels`` training pixels, stratified so
    that rare classes keep theirs. Validation and test are scored on all their usable,
    de-duplicated pixels. A split with more than ``eval_max_pixels`` of them is subsampled
    keeping its class shares, and ``subsampled`` says so.

    Returns:
        ``{"model": "random_forest", "n_estimators", "max_pixels", "seed", "train_pixels",
        "train_class_pixels" {name: n}, "seconds" (fit + predict), "fit_seconds",
        "predict_seconds", "validation"/"test": scores (absent for a split without usable
        pixels), "subsampled": {split: {"usable_pixels", "used_pixels"}} for each split that was
        subsampled}``. Scores are those of :func:`landcover.scores.scores`.

    Raises:
        DatasetError: the training split has no usable pixel.
    """
    from sklearn.ensemble import RandomForestClassifier

    names = ds.class_names
    k = ds.num_classes
    subsampled = {}
    chosen, usable, used = selection(ds, "train", max_pixels, seed, True)
    X, y = [], []
    for x, lab, _ in _selected_pieces(ds, "train", chosen):
        X.append(x)
        y.append(lab)
    if not X:
        raise DatasetError(f"{ds.path}: the training split has no usable pixel (all ignored or "
                           "weight 0); nothing to fit a random forest on")
    X, y = np.concatenate(X), np.concatenate(y)
    if usable is not None and used < usable:
        subsampled["train"] = {"usable_pixels": usable, "used_pixels": used}

    forest = RandomForestClassifier(n_estimators=n_estimators, class_weight=None,
                                    random_state=seed, n_jobs=n_jobs)
    t0 = time.perf_counter()
    forest.fit(X, y)
    fit_seconds = time.perf_counter() - t0
    del X

    result = {"model": "random_forest", "n_estimators": int(n_estimators),
              "max_pixels": max_pixels, "seed": int(seed), "train_pixels": len(y),
              "train_class_pixels": {names[c]: int(v)
                                     for c, v in enumerate(np.bincount(y, minlength=k))}}
    predict_seconds = 0.0
    for split in EVAL_SPLITS:
        if split not in ds.attrs.get("splits", {}):
            continue
        chosen, usable, used = selection(ds, split, eval_max_pixels, seed, False)
        ys, preds, groups = [], [], []
        for x, lab, _, grp in _selected_pieces(ds, split, chosen, with_groups=True):
            t0 = time.perf_counter()
            preds.append(forest.predict(x))
            predict_seconds += time.perf_counter() - t0
            ys.append(lab)
            groups.append(grp)
        if not ys:
            continue
        gids, cms = group_confusions(np.concatenate(ys), np.concatenate(preds),
                                  np.concatenate(groups), k)
        result[split] = interval_scores(cms, names, seed=seed, ids=gids)
        if used < usable:
            subsampled[split] = {"usable_pixels": usable, "used_pixels": used}
    result["fit_seconds"] = round(fit_seconds, 3)
    result["predict_seconds"] = round(predict_seconds, 3)
    result["seconds"] = round(fit_seconds + predict_seconds, 3)
    result["subsampled"] = subsampled
    return result


# --------------------------------------------------------------------------------- comparing
def verdict(network_scores: Mapping, baseline_scores: Mapping) -> dict:
    """Is the network better than the baseline on one split, given the intervals?

    ``better`` is True when the network's overall accuracy and macro F1 are both at least the
    forest's and one is above beyond both intervals (:func:`landcover.estimate.
    significantly_better`), False when either is below the forest's beyond the intervals or both
    are below, and None when it cannot be told: a figure is missing, the held-out pixels come from
    too few groups (``enough`` false), or the difference is within the intervals.

    Returns:
        ``{"better": bool | None, "oa_diff": network - baseline, "macro_f1_diff": ...,
        "enough": bool, "clear": bool}``.
    """
    from landcover.estimate import significantly_better

    oa = _diff(network_scores.get("overall_accuracy"), baseline_scores.get("overall_accuracy"))
    f1 = _diff(network_scores.get("macro_f1"), baseline_scores.get("macro_f1"))
    enough = bool(network_scores.get("enough", True) and baseline_scores.get("enough", True))
    out = {"better": None, "oa_diff": oa, "macro_f1_diff": f1, "enough": enough, "clear": False}
    if oa is None or f1 is None or not enough:
        return out
    if "intervals" not in network_scores or "intervals" not in baseline_scores:
        out["better"] = bool(oa >= 0 and f1 >= 0)  # figures without intervals (older bundles)
        return out
    up = [significantly_better(network_scores, baseline_scores, k)
          for k in ("overall_accuracy", "macro_f1")]
    down = [significantly_better(baseline_scores, network_scores, k)
            for k in ("overall_accuracy", "macro_f1")]
    if any(down) or (oa < 0 and f1 < 0):
        out.update(better=False, clear=bool(any(down)))
    elif any(up) and oa >= 0 and f1 >= 0:
        out.update(better=True, clear=True)
    return out


def _diff(a, b) -> float | None:
    if a is None or b is None:
        return None
    return round(float(a) - float(b), 6)


def _splits(result: Mapping) -> Mapping:
    """Per-split scores from a train summary/bundle metadata (``{"metrics": {...}}``), a
    :func:`fit_baseline` result, or a plain ``{split: scores}``."""
    if "metrics" in result and isinstance(result["metrics"], Mapping):
        result = result["metrics"]
    return {s: v for s, v in result.items()
            if isinstance(v, Mapping) and "overall_accuracy" in v}


def _sign(v) -> str:
    return "-" if v is None else f"{v + 0.0:+.3f}"


def verdict_line(split: str, v: Mapping, model: str = "the network",
                 reference: str = "the random forest") -> str:
    """One sentence from :func:`verdict`, e.g. ``test: the network is better than ...``; ``model``
    and ``reference`` name the two sides."""
    figures = f"OA {_sign(v['oa_diff'])}, macro F1 {_sign(v['macro_f1_diff'])}"
    if v["oa_diff"] is None or v["macro_f1_diff"] is None:
        return f"{split}: cannot compare {model} with {reference} ({figures})"
    if not v.get("enough", True):
        return (f"{split}: not enough to tell whether {model} is better than {reference} "
                f"({figures}): the held-out pixels come from too few groups (fields, polygons or "
                "blocks); see the estimate")
    if v["better"] is None:
        return (f"{split}: no clear difference between {model} and {reference} "
                f"({figures}, within the 95 % intervals)")
    if v["better"]:
        return f"{split}: {model} is better than {reference} ({figures})"
    advice = ("; consider train.model.architecture=auto (keeps the better of the two), a larger "
              "or longer-trained network, or more training data") if model == "the network" else ""
    return (f"{split}: {model} is NOT better than {reference} on this data ({figures})"
            + advice)


def comparison_table(network: Mapping, baseline: Mapping, names: Sequence[str],
                     sides: tuple[str, str] = ("network", "random forest")) -> str:
    """Markdown tables (one per split present in both) comparing network and random forest.

    Rows: OA, macro F1, then F1 per class. Columns: network, random forest, difference
    (network - random forest). Each table is followed by its :func:`verdict_line`. ``network``
    may be a train summary (``{"metrics": {split: scores}}``) or ``{split: scores}``;
    ``baseline`` is a :func:`fit_baseline` result.
    """
    net, base = _splits(network), _splits(baseline)
    order = [s for s in ("train", *EVAL_SPLITS) if s in net and s in base]
    order += sorted(s for s in net if s in base and s not in order)
    if not order:
        return "No split scored by both the network and the random forest."

    def cell(result, key, name=None):
        if name is None:
            v, ci = result.get(key), result.get("intervals", {}).get(key)
            enough = result.get("enough", True)
        else:
            v = result.get("per_class", {}).get(name, {}).get("f1")
            c = result.get("intervals", {}).get("per_class", {}).get(name, {})
            ci, enough = c.get("f1"), c.get("enough", True)
        if v is None:
            return "-"
        text = f"{v:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        return text if enough else text + " not enough to tell"

    def value(result, key, name=None):
        if name is None:
            return result.get(key)
        return result.get("per_class", {}).get(name, {}).get("f1")

    blocks = []
    for split in order:
        n, b = net[split], base[split]
        rows = [("OA", "overall_accuracy", None), ("macro F1", "macro_f1", None)]
        rows += [(f"F1 {name}", "f1", name) for name in names]
        size = (f"{n.get('pixels', 0):,d} pixels in {n['groups']} groups"
                if "groups" in n else f"{n.get('pixels', 0):,d} pixels")
        lines = [f"### {split} ({size}; 95 % intervals over groups)", "",
                 f"| | {sides[0]} | {sides[1]} | difference |", "|---|---:|---:|---:|"]
        lines += [f"| {label} | {cell(n, key, name)} | {cell(b, key, name)} | "
                  f"{_sign(_diff(value(n, key, name), value(b, key, name)))} |"
                  for label, key, name in rows]
        lines += ["", verdict_line(split, verdict(n, b), f"the {sides[0]}", f"the {sides[1]}")]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
