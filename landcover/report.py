"""Pictures for people who would rather look than read: learning curves and confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: Sequence[dict], path: Path, *, best_epoch: int | None = None,
                         monitor: str = "val_miou") -> None:
    """Loss (training and validation), validation scores and learning rate per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]

    def series(key):
        return [h.get(key) if h.get(key) is not None else np.nan for h in history]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.plot(epochs, series("loss"), "o-", label="training")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, series("val_loss"), "o-", label="validation")
    ax.set_title("Masked loss")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, label in (("miou", "training mIoU"), ("val_miou", "validation mIoU"),
                       ("val_macro_f1", "validation macro F1"),
                       ("val_overall_accuracy", "validation OA")):
        if any(h.get(key) is not None for h in history):
            ax.plot(epochs, series(key), "o-", label=label, ms=3)
    ax.set_ylim(0, 1)
    ax.set_title("Scores (masked pixels excluded)")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(epochs, series("learning_rate"), "o-", color="grey", ms=3)
    ax.set_title("Learning rate (end of epoch)")
    ax.set_xlabel("epoch")
    if best_epoch is not None:
        for a in axes:
            a.axvline(best_epoch, color="k", ls=":", lw=1)
        axes[1].annotate(f"kept: best {monitor}, epoch {best_epoch} ", (best_epoch, 0.02),
                         fontsize=7, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, names: Sequence[str], path: Path, *, title: str) -> None:
    """Confusion matrix, coloured by the share of each reference class (row), with pixel counts."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.int64)
    k = len(names)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.7 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{share[i, j]:.0%}\n{cm[i, j]:,d}", ha="center", va="center",
                        fontsize=7, color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of reference pixels")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
