"""Accuracy figures from a confusion matrix (numpy only; shared by training and evaluation).

Convention: ``cm[i, j]`` counts pixels of reference class ``i`` predicted as class ``j``. Pixels with
the ignore label or weight 0 are never counted (see :func:`confusion`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, *,
              mask: np.ndarray | None = None, ignore_label: int = 255) -> np.ndarray:
    """Pixel counts (int64, num_classes x num_classes) over pixels not ignored and not masked out."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    keep = (y_true != ignore_label) & (y_true >= 0) & (y_true < num_classes)
    if mask is not None:
        keep &= np.asarray(mask).ravel().astype(bool)
    idx = y_true[keep] * num_classes + y_pred[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _div(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def scores(cm: np.ndarray, names: Sequence[str] | None = None) -> dict:
    """Overall accuracy, kappa, per-class precision/recall/F1/IoU, macro F1 and mean IoU.

    Per-class values are NaN (``None`` in JSON) where undefined, e.g. the precision of a class that
    is never predicted. Macro F1 and mean IoU average over the classes present in the reference
    (a class that never occurs cannot be scored; one that occurs but is never predicted scores 0).
    """
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    names = list(names) if names is not None else [str(i) for i in range(k)]
    total = cm.sum()
    tp = np.diag(cm)
    ref = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    precision = _div(tp, pred)
    recall = _div(tp, ref)
    f1 = _div(2 * tp, ref + pred)
    iou = _div(tp, ref + pred - tp)
    present = ref > 0
    oa = float(tp.sum() / total) if total else float("nan")
    pe = float((ref * pred).sum() / total**2) if total else float("nan")
    kappa = (oa - pe) / (1 - pe) if total and pe < 1 else float("nan")
    per_class = {}
    for i, name in enumerate(names):
        per_class[name] = {"precision": _num(precision[i]), "recall": _num(recall[i]),
                           "f1": _num(np.nan_to_num(f1[i]) if present[i] else np.nan),
                           "iou": _num(np.nan_to_num(iou[i]) if present[i] else np.nan),
                           "support": int(ref[i]), "predicted": int(pred[i])}
    f1_present = np.nan_to_num(f1[present])
    iou_present = np.nan_to_num(iou[present])
    return {
        "pixels": int(total),
        "overall_accuracy": _num(oa),
        "kappa": _num(kappa),
        "macro_f1": _num(f1_present.mean() if present.any() else np.nan),
        "mean_iou": _num(iou_present.mean() if present.any() else np.nan),
        "per_class": per_class,
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "class_names": names,
    }


def _num(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else round(v, 6)


def format_table(result: dict) -> str:
    """A per-class table (precision, recall, F1, IoU, support) plus the summary lines."""
    names = result["class_names"]
    width = max(8, *(len(n) for n in names))

    def cell(v):
        return "    -" if v is None else f"{v:5.3f}"

    lines = [f"{'class':<{width}}  precision  recall     F1    IoU      support",
             "-" * (width + 48)]
    for name in names:
        c = result["per_class"][name]
        lines.append(f"{name:<{width}}      {cell(c['precision'])}   {cell(c['recall'])}  "
                     f"{cell(c['f1'])}  {cell(c['iou'])}  {c['support']:>11,d}")
    lines.append("-" * (width + 48))
    lines.append(f"overall accuracy {cell(result['overall_accuracy'])}   kappa "
                 f"{cell(result['kappa'])}   macro F1 {cell(result['macro_f1'])}   mean IoU "
                 f"{cell(result['mean_iou'])}   ({result['pixels']:,d} pixels)")
    return "\n".join(lines)
