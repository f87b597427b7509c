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
* **Few groups.** A percentile bootstrap over G groups is too narrow when G is small (it knows
  only the G groups it has; Cameron, Gelbach & Miller 2008). Each interval is widened about its
  point estimate by the usual small-cluster correction, ``sqrt(G / (G - 1)) * t(G - 1) / z``
  (:func:`few_groups_factor`: 1.58 at 5 groups, 1.22 at 10, 1.08 at 24, 1.03 at 66). Where every
  group scored the same (10 fields, all right), the bootstrap has no spread at all; the interval
  is then Wilson's over the groups as independent draws (0.72-1 for 10 of 10).
* **Paired comparisons** (:func:`superiority`): two models scored on the same groups are compared
  on the same bootstrap draws of those groups, so what the groups share (an easy field, a hard
  block) cancels out; far more telling than whether two separate intervals overlap.
* **Folds** (:func:`group_folds`): whole groups go to one fold, with the class shares of the folds
  as even as whole groups allow (stratified group k-fold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from landcover.scores import scores

MIN_GROUPS = 5
MIN_CLASS_PIXELS = 100
MIN_SPLIT_PIXELS = 1000  # with MIN_GROUPS, a held-out split that can serve as the estimate
BOOTSTRAP = 2000
CONFUSIONS = "group_confusions"  # the per-group matrices a result keeps for paired comparisons


def few_groups_factor(groups: int) -> float:
    """How much wider than the percentile bootstrap's an interval over ``groups`` groups is made:
    ``sqrt(G / (G - 1)) * t_{0.975}(G - 1) / z_{0.975}`` (1 for a single group: no interval)."""
    from scipy import stats

    g = int(groups)
    if g < 2:
        return 1.0
    return float(np.sqrt(g / (g - 1)) * stats.t.ppf(0.975, g - 1) / stats.norm.ppf(0.975))


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


def _wilson(p: float, n: int) -> tuple[float, float]:
    """Wilson's 95 % score interval of a proportion ``p`` seen in ``n`` independent draws."""
    z = 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _ci(values: np.ndarray, point=None, groups: int = 0) -> list[float] | None:
    """The 2.5 / 97.5 percentiles of ``values``, each moved :func:`few_groups_factor` times as
    far from ``point`` (kept within 0-1). Where every draw gave the same figure (every group
    scored the same, e.g. 1.000), Wilson's interval over ``groups`` independent draws instead: 10
    fields all right do not make an accuracy of exactly 1."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    if point is not None and np.isfinite(point) and groups >= 1:
        if hi - lo <= 1e-12:
            lo, hi = _wilson(float(point), int(groups))
        else:
            factor = few_groups_factor(groups)
            lo, hi = point - factor * (point - lo), point + factor * (hi - point)
        lo, hi = max(0.0, lo), min(1.0, hi)
    return [round(float(lo), 4), round(float(hi), 4)]


def interval_scores(cms: np.ndarray, names: Sequence[str], *, seed: int = 0,
                    draws: int = BOOTSTRAP, ids: np.ndarray | None = None) -> dict:
    """:func:`landcover.scores.scores` of the summed matrices, plus cluster-bootstrap intervals.

    Args:
        cms: per-group confusion matrices ``(G, K, K)`` (rows: reference).
        names: the class names.
        ids: the groups' ids (G,); given, the result keeps the matrices under :data:`CONFUSIONS`
            (plain lists) for :func:`superiority`; :func:`without_confusions` drops them.

    Returns:
        The scores, plus ``groups`` (G), ``enough`` (G >= :data:`MIN_GROUPS`), and
        ``intervals``: ``{"overall_accuracy": [lo, hi], "macro_f1": [lo, hi], "per_class":
        {name: {"f1": [lo, hi], "groups": groups with reference pixels, "enough": bool}}}``,
        widened for few groups (:func:`few_groups_factor`).
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
        per_class[name] = {"f1": _ci(f1[:, i], out["per_class"][name].get("f1"),
                                     int(ref_groups[i])),
                           "groups": int(ref_groups[i]),
                           "enough": bool(support >= MIN_CLASS_PIXELS
                                          and ref_groups[i] >= min(MIN_GROUPS, g) and g >= 2)}
    out["groups"] = int(g)
    out["enough"] = bool(g >= MIN_GROUPS)
    out["intervals"] = {"overall_accuracy": _ci(oa, out.get("overall_accuracy"), g),
                        "macro_f1": _ci(macro, out.get("macro_f1"), g),
                        "per_class": per_class}
    if ids is not None:
        out[CONFUSIONS] = {"groups": np.asarray(ids).tolist(), "matrices": cms.tolist()}
    return out


def without_confusions(obj):
    """``obj`` (nested dicts and lists) without the per-group matrices of :func:`interval_scores`
    (for ``bundle.json``: they can be large, and only :func:`superiority` needs them)."""
    if isinstance(obj, dict):
        return {k: without_confusions(v) for k, v in obj.items() if k != CONFUSIONS}
    if isinstance(obj, list):
        return [without_confusions(v) for v in obj]
    return obj


def superiority(a: dict, b: dict, key: str = "macro_f1", *, seed: int = 0,
                draws: int = BOOTSTRAP) -> float | None:
    """The share of paired cluster-bootstrap draws in which figure ``key`` (``overall_accuracy``
    or ``macro_f1``) of result ``a`` is above ``b``'s (ties count half): both models' per-group
    matrices summed over the same draws of the groups either was scored on. None where either
    result lacks its per-group matrices (:func:`interval_scores` with ``ids``) or there are fewer
    than 2 groups."""
    ca, cb = a.get(CONFUSIONS), b.get(CONFUSIONS)
    if not ca or not cb:
        return None
    ids = list(dict.fromkeys([*ca["groups"], *cb["groups"]]))
    where = {g: n for n, g in enumerate(ids)}
    k = len(np.asarray(ca["matrices"][0])) if ca["matrices"] else 0
    if len(ids) < 2 or not k:
        return None
    stacks = []
    for c in (ca, cb):
        m = np.zeros((len(ids), k, k), np.int64)
        m[[where[g] for g in c["groups"]]] = np.asarray(c["matrices"], np.int64)
        stacks.append(m.reshape(len(ids), k * k))
    g = len(ids)
    counts = np.random.default_rng(seed).multinomial(g, np.full(g, 1.0 / g), size=draws)
    which = 0 if key == "overall_accuracy" else 1
    fa = _figures((counts @ stacks[0]).reshape(draws, k, k))[which]
    fb = _figures((counts @ stacks[1]).reshape(draws, k, k))[which]
    ok = np.isfinite(fa) & np.isfinite(fb)
    if not ok.any():
        return None
    return float(np.mean(fa[ok] > fb[ok]) + 0.5 * np.mean(fa[ok] == fb[ok]))


def large_enough(result: dict | None) -> bool:
    """Whether a held-out split's scores can stand as the estimate: at least :data:`MIN_GROUPS`
    groups and :data:`MIN_SPLIT_PIXELS` pixels."""
    return bool(result and result.get("groups", 0) >= MIN_GROUPS
                and (result.get("pixels") or 0) >= MIN_SPLIT_PIXELS)


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


SURE = 0.975  # a paired difference "beyond the intervals": 97.5 % of the draws one way


def significantly_better(a: dict, b: dict, key: str = "macro_f1") -> bool | None:
    """Whether figure ``key`` of ``a`` is above ``b``'s: in at least :data:`SURE` of the paired
    bootstrap draws (:func:`superiority`) where both results keep their per-group matrices, else
    beyond both intervals' overlap (a conservative test: ``a``'s lower bound above ``b``'s value
    and ``b``'s upper bound below ``a``'s value); None where either is not enough to tell."""
    if not (a.get("enough") and b.get("enough")):
        return None
    paired = superiority(a, b, key)
    if paired is not None:
        return bool(paired >= SURE and a.get(key, 0) > b.get(key, 0))
    ca, cb = a["intervals"].get(key), b["intervals"].get(key)
    if ca is None or cb is None or a.get(key) is None or b.get(key) is None:
        return None
    return bool(ca[0] > b[key] and cb[1] < a[key])
