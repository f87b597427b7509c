"""Accuracy estimates that are honest about their size: intervals over spatial groups, and folds.

Pixels of one polygon, field or block are not independent: a classifier that gets a field wrong gets
most of its pixels wrong. So an interval computed as if every pixel were an independent draw is far
too narrow (a 78-pixel split of two polygons scoring 1.000 says nothing). Here:

* **Intervals** (:func:`interval_scores`) come from a *cluster bootstrap*: the groups (the split
  groups of ``landcover prepare``: blocks, polygons or fields) are drawn with replacement, their
  confusion matrices summed, and the figure computed; the 2.5 and 97.5 percentiles of 2,000 draws
  are the 95 % interval. Overall accuracy, macro F1 and every class's F1 get one.
* **Not enough to tell.** A figure from fewer than :data:`MIN_GROUPS` groups, or a class's F1
  from fewer than :data:`MIN_CLASS_PIXELS` reference pixels, is marked ``enough: false``; reports
  print "not enough to tell" instead of a verdict.
* **Folds** (:func:`group_folds`): whole groups go to one fold, with the class shares of the folds
  as even as whole groups allow (stratified group k-fold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from landcover.scores import scores

MIN_GROUPS = 5
MIN_CLASS_PIXELS = 100
BOOTSTRAP = 2000


def group_confusions(y: np.ndarray, pred: np.ndarray, groups: np.ndarray,
                     num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group confusion matrices: ``(group ids (G,), cms (G, K, K) int64)``."""
    y, pred, groups = (np.asarray(a).ravel() for a in (y, pred, groups))
    ids, inv = np.unique(groups, return_inverse=True)
    k = num_classes
    flat = np.bincount(inv * k * k + y.astype(np.int64) * k + pred.astype(np.int64),
                       minlength=len(ids) * k * k)
    return ids, flat.reshape(len(ids), k, k)


def _figures(cms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OA (B,), macro F1 (B,) and per-class F1 (B, K) of a stack of confusion matrices (B, K, K),
    with :func:`landcover.scores.scores`' conventions (classes absent from the reference are left
    out of the macro F1 and have NaN F1)."""
    cms = cms.astype(np.float64)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    ref, pred = cms.sum(axis=2), cms.sum(axis=1)
    total = cms.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        oa = np.where(total > 0, tp.sum(axis=1) / np.maximum(total, 1), np.nan)
        f1 = np.where(ref > 0, 2 * tp / np.maximum(ref + pred, 1), np.nan)
        present = (ref > 0).sum(axis=1)
        macro = np.where(present > 0, np.nansum(f1, axis=1) / np.maximum(present, 1), np.nan)
    return oa, macro, f1


def _ci(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def interval_scores(cms: np.ndarray, names: Sequence[str], *, seed: int = 0,
                    draws: int = BOOTSTRAP) -> dict:
    """:func:`landcover.scores.scores` of the summed matrices, plus cluster-bootstrap intervals.

    Args:
        cms: per-group confusion matrices ``(G, K, K)`` (rows: reference).
        names: the class names.

    Returns:
        The scores, plus ``groups`` (G), ``enough`` (G >= :data:`MIN_GROUPS`), and
        ``intervals``: ``{"overall_accuracy": [lo, hi], "macro_f1": [lo, hi], "per_class":
        {name: {"f1": [lo, hi], "groups": groups with reference pixels, "enough": bool}}}``.
    """
    cms = np.asarray(cms, dtype=np.int64)
    g, k = cms.shape[0], len(names)
    out = scores(cms.sum(axis=0) if g else np.zeros((k, k), np.int64), names)
    rng = np.random.default_rng(seed)
    if g:
        counts = rng.multinomial(g, np.full(g, 1.0 / g), size=draws)  # (B, G) draws per group
        boot = (counts @ cms.reshape(g, k * k)).reshape(draws, k, k)
        oa, macro, f1 = _figures(boot)
    else:
        oa = macro = np.full(1, np.nan)
        f1 = np.full((1, k), np.nan)
    ref_groups = (cms.sum(axis=2) > 0).sum(axis=0)  # groups holding each class
    per_class = {}
    for i, name in enumerate(names):
        support = out["per_class"][name]["support"]
        per_class[name] = {"f1": _ci(f1[:, i]), "groups": int(ref_groups[i]),
                           "enough": bool(support >= MIN_CLASS_PIXELS
                                          and ref_groups[i] >= min(MIN_GROUPS, g) and g >= 2)}
    out["groups"] = int(g)
    out["enough"] = bool(g >= MIN_GROUPS)
    out["intervals"] = {"overall_accuracy": _ci(oa), "macro_f1": _ci(macro),
                        "per_class": per_class}
    return out


def figure(result: dict, key: str = "overall_accuracy") -> dict:
    """``{value, ci95}`` of one figure of :func:`interval_scores` (``overall_accuracy`` or
    ``macro_f1``)."""
    return {"value": result.get(key), "ci95": result.get("intervals", {}).get(key)}


def describe(result: dict, key: str = "overall_accuracy") -> str:
    """``0.912 (95 % CI 0.88-0.94; 1,234 px in 37 groups)``, or the same with "not enough to tell"
    where the groups are too few."""
    value = result.get(key)
    if value is None:
        return "-"
    ci = result.get("intervals", {}).get(key)
    size = f"{result['pixels']:,d} px in {result.get('groups', 0)} groups"
    text = f"{value:.3f} ({'95 % CI ' + f'{ci[0]:.3f}-{ci[1]:.3f}; ' if ci else ''}{size})"
    if not result.get("enough", False):
        text += ": not enough to tell"
    return text


def group_folds(groups: np.ndarray, y: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each pixel: whole groups per fold, the class shares of the folds
    kept as close to the whole's as whole groups allow (scikit-learn's ``StratifiedGroupKFold``,
    shuffled with ``seed``), so that a fold's training pixels lack a class only where that class
    lives in too few groups. At most as many folds as groups.

    Args:
        groups: the group of each pixel (n,).
        y: the class of each pixel (n,).
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    groups, y = np.asarray(groups), np.asarray(y)
    k = max(2, min(int(folds), len(np.unique(groups))))
    fold = np.zeros(len(y), np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "the least populated class has fewer members than k"
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            fold[held] = f
    return fold


def significantly_better(a: dict, b: dict, key: str = "macro_f1") -> bool | None:
    """Whether figure ``key`` of ``a`` is above ``b``'s beyond both intervals' overlap (a
    conservative test: ``a``'s lower bound above ``b``'s value and ``b``'s upper bound below
    ``a``'s value); None where either is not enough to tell."""
    if not (a.get("enough") and b.get("enough")):
        return None
    ca, cb = a["intervals"].get(key), b["intervals"].get(key)
    if ca is None or cb is None or a.get(key) is None or b.get(key) is None:
        return None
    return bool(ca[0] > b[key] and cb[1] < a[key])
