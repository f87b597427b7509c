"""Probabilities that mean what they say: temperature scaling, calibration error, reliability.

A network trained with cross-entropy is often over-confident on held-out pixels: it says 0.95 where
it is right 80 % of the time. Temperature scaling (Guo et al. 2017) divides every logit by one
number ``T`` fitted on held-out pixels (minimum negative log-likelihood); the predicted class never
changes, only the confidence. ``classify`` applies the bundle's ``output.temperature`` before the
softmax, so the probability products, the uncertainty and the sampling designs that use them see
calibrated figures.

The expected calibration error (ECE) bins the pixels by their top-class probability (15 equal
bins) and averages ``|accuracy - confidence|`` over the bins, weighted by their pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BINS = 15
MIN_PIXELS = 100


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of classes ``y`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float | None:
    """The temperature (0.05 .. 20) that minimises the NLL of held-out pixels; None when there are
    fewer than :data:`MIN_PIXELS` of them (nothing is fitted then)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.int64)
    if len(y) < MIN_PIXELS:
        return None
    res = minimize_scalar(lambda log_t: nll(logits, y, float(np.exp(log_t))),
                          bounds=(np.log(0.05), np.log(20.0)), method="bounded",
                          options={"xatol": 1e-4})
    return round(float(np.exp(res.x)), 4)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = BINS) -> dict:
    """Per confidence bin: mean confidence, accuracy and pixels, and the ECE."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=-1)
    right = probs.argmax(axis=-1) == np.asarray(y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    n = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / n
        acc = np.bincount(which, weights=right, minlength=bins) / n
    ece = float(np.nansum(np.abs(acc - mean_conf) * n) / max(1, n.sum()))
    return {"confidence": [None if np.isnan(v) else round(float(v), 4) for v in mean_conf],
            "accuracy": [None if np.isnan(v) else round(float(v), 4) for v in acc],
            "pixels": n.tolist(), "ece": round(ece, 4)}


def calibrate(fit: tuple | None, check: tuple | None) -> dict:
    """Fit the temperature on ``fit = (logits, y)`` and report the ECE of ``check`` (another
    held-out set; ``fit`` where there is none) before and after.

    Returns:
        ``{"temperature": T (1.0 when not fitted), "fitted": bool, "fitted_on_pixels",
        "checked_on", "before": reliability, "after": reliability}``.
    """
    out = {"temperature": 1.0, "fitted": False}
    if fit is None:
        return out
    t = fit_temperature(*fit)
    out["fitted_on_pixels"] = len(fit[1])
    if t is None:
        return out
    out.update(temperature=t, fitted=True)
    logits, y = check if check is not None and len(check[1]) >= MIN_PIXELS else fit
    out["checked_on"] = "test" if check is not None and len(check[1]) >= MIN_PIXELS else \
        "the fitting pixels (no other held-out pixels)"
    out["before"] = reliability(softmax(logits), y)
    out["after"] = reliability(softmax(logits, t), y)
    return out


def plot_reliability(record: dict, path: Path, title: str = "") -> None:
    """A reliability diagram: accuracy against confidence per bin, before and after scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=100)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for key, colour in (("before", "#d95f02"), ("after", "#1b9e77")):
        r = record.get(key)
        if not r:
            continue
        pts = [(c, a) for c, a in zip(r["confidence"], r["accuracy"]) if c is not None]
        if pts:
            xs, ys = zip(*pts)
            label = (f"{key} (ECE {r['ece']:.3f})" if key == "before" else
                     f"T = {record['temperature']:.2f} (ECE {r['ece']:.3f})")
            ax.plot(xs, ys, marker="o", color=colour, label=label)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title or "Reliability on held-out pixels", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
