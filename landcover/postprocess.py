"""Post-processing: the stage between inference and the map.

Inference gives every block class probabilities ``(h, w, K)``; before they become class codes and
probability bands they pass through the configured steps, in order. A step sees the block *plus a
halo* of ``step.halo`` pixels on every side (clipped at the grid's edges), so a neighbourhood
operation (smoothing, majority filters, ...) gives the same result at a block edge as anywhere
else: the map has no seams whatever the block size. With several steps the halos add up.

A step is a small, picklable object (it travels to dask workers) with

* ``name``: what it is called in configs, tags and the resume fingerprint;
* ``halo``: pixels of context it needs on each side (0 for a per-pixel step);
* ``apply(prob, observed) -> prob``: probabilities ``(h, w, K)`` float32 and the pixels with at
  least one valid observation ``(h, w)`` bool; returns probabilities of the same shape.

Today no step is configured by default (:class:`Identity` is the no-op); smoothing fills this
place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class PostStep(Protocol):
    name: str
    halo: int

    def apply(self, prob: np.ndarray, observed: np.ndarray) -> np.ndarray:
        ...


@dataclass(frozen=True)
class Identity:
    """The no-op step."""

    name: str = "none"
    halo: int = 0

    def apply(self, prob: np.ndarray, observed: np.ndarray) -> np.ndarray:
        return prob


def check_steps(steps: Sequence) -> tuple:
    """``steps`` as a tuple, each checked to be a :class:`PostStep` with a halo >= 0."""
    out = tuple(steps)
    for step in out:
        if not isinstance(step, PostStep) or int(step.halo) < 0:
            raise TypeError(f"not a post-processing step (name, halo >= 0, apply): {step!r}")
    return out


def halo_of(steps: Sequence[PostStep]) -> int:
    """Pixels of context the steps need around a block, all together."""
    return sum(int(s.halo) for s in steps)


def apply_steps(steps: Sequence[PostStep], prob: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Run the steps in order over a block with its halo."""
    for step in steps:
        prob = step.apply(prob, observed)
        if prob.shape[:2] != observed.shape:
            raise ValueError(f"post-processing step {step.name!r} changed the block's shape")
    return prob


def describe(steps: Sequence[PostStep]) -> list[dict]:
    """JSON records of the steps (for tags and the resume fingerprint)."""
    return [{"name": s.name, "halo": int(s.halo), **{k: v for k, v in vars(s).items()
                                                    if k not in ("name", "halo")}}
            for s in steps]
