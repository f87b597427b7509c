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

No step is configured by default (:class:`Identity` is the no-op). :class:`BayesSmooth` is the
Bayesian spatial smoothing of sits (``classify --smooth``, ``classify.smooth.*``, and
``landcover smooth`` on a probability file).

Bayesian smoothing (Camara et al., "Bayesian inference for post-processing of remote sensing image
classification", and sits' ``sits_smooth``), for each pixel and class ``k``:

* the class probability becomes a logit, ``x = log(p / (1 - p))`` (``p`` clipped to
  ``[1e-6, 1 - 1e-6]``);
* the *prior* is the distribution of the logits of class ``k`` over the ``window x window``
  neighbourhood (the pixel included): of the ``n`` neighbours that exist (inside the grid) and
  were observed, the ``m = ceil(neigh_fraction x n)`` with the highest logit of ``k`` (the
  neighbours most like a pixel of class ``k``) give a mean ``mu`` and a sample variance ``s2``
  (0 when ``m = 1``);
* the *likelihood* is the pixel's own logit with variance ``sigma2_k``, the class's smoothness;
* the posterior mean ``x' = w x + (1 - w) mu`` with ``w = s2 / (s2 + sigma2_k)``: where the
  neighbours disagree (large ``s2``) the pixel keeps its own value; where they agree the pixel
  moves towards them, the more the larger the smoothness;
* back to probabilities by the logistic function, renormalised to sum to 1 over the classes (sits
  leaves them unnormalised; the class of the map, the largest, is the same either way).

Unobserved pixels neither are changed nor count as neighbours; beyond the grid's edges there are
no neighbours (sits mirrors the edge instead). The step's halo is ``window // 2``, so classify's
blocks give bit-identical results whatever the block size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before the logit (as sits does)
STRIP_VALUES = 4_000_000  # neighbourhood values held at once per strip of rows (16 MB float32)


MAX_WINDOW = 99
"""The largest ``classify.smooth.window``: every pixel reads ``window^2`` neighbours per class, so
a window of 1001 would run for days (and a halo that large dwarfs any block)."""


@dataclass(frozen=True)
class BayesSmooth:
    """Bayesian smoothing of class probabilities (see the module docstring).

    Args:
        window: side of the neighbourhood in pixels, odd (sits' ``window_size``; default 9).
        neigh_fraction: share of the valid neighbours, those with the highest logit of the class,
            that make the prior (sits' ``neigh_fraction``; default 0.5).
        smoothness: variance of each class's own logit (sits' ``smoothness``, default 20): one
            value per class in class-index order, or one value for all.
    """

    window: int = 9
    neigh_fraction: float = 0.5
    smoothness: tuple[float, ...] = (20.0,)
    name: str = "bayes_smooth"
    halo: int = field(init=False, default=0)

    def __post_init__(self):
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"window must be odd and 3 or more, not {self.window}")
        if not 0.0 < self.neigh_fraction <= 1.0:
            raise ValueError(f"neigh_fraction must be in (0, 1], not {self.neigh_fraction}")
        smooth = tuple(float(v) for v in self.smoothness)
        if not smooth or min(smooth) <= 0:
            raise ValueError("smoothness must be one or more values > 0")
        object.__setattr__(self, "smoothness", smooth)
        object.__setattr__(self, "halo", self.window // 2)

    def sigma2(self, k: int) -> tuple[float, ...]:
        """The smoothness of each of ``k`` classes."""
        if len(self.smoothness) == 1:
            return self.smoothness * k
        if len(self.smoothness) != k:
            raise ValueError(f"{len(self.smoothness)} smoothness values for {k} classes")
        return self.smoothness

    def apply(self, prob: np.ndarray, observed: np.ndarray) -> np.ndarray:
        h, w, K = prob.shape
        if not observed.any():
            return prob
        sigma2 = self.sigma2(K)
        p = np.clip(prob.astype(np.float64), EPS, 1.0 - EPS)
        logit = np.log(p) - np.log1p(-p)
        out = logit.copy()
        r = self.halo
        padded = np.full((h + 2 * r, w + 2 * r), np.nan)
        rows = max(1, STRIP_VALUES // max(1, w * self.window ** 2))
        for k in range(K):
            padded[r:r + h, r:r + w] = np.where(observed, logit[..., k], np.nan)
            for a in range(0, h, rows):
                b = min(h, a + rows)
                out[a:b, :, k] = _posterior(padded[a:b + 2 * r], logit[a:b, :, k], self.window,
                                            self.neigh_fraction, sigma2[k])
        post = 1.0 / (1.0 + np.exp(-out))
        post /= post.sum(axis=-1, keepdims=True)
        return np.where(observed[..., None], post, prob).astype(np.float32)


def _posterior(padded: np.ndarray, x: np.ndarray, window: int, fraction: float,
               sigma2: float) -> np.ndarray:
    """Posterior logits of one class over a strip of rows; ``padded`` holds the strip's logits
    with ``window // 2`` rows/columns of context on each side, NaN where there is no neighbour.

    The ``m`` highest logits of a pixel with all ``window^2`` neighbours are found with a partial
    sort (``np.partition``), those of a pixel with fewer (grid edge, unobserved neighbours) with a
    full sort; either way a pixel's figures depend on its own neighbourhood only."""
    from numpy.lib.stride_tricks import sliding_window_view

    n_all = window * window
    hood = sliding_window_view(padded, (window, window)).reshape(-1, n_all)
    valid = ~np.isnan(hood)
    n = valid.sum(axis=-1)
    m = np.ceil(fraction * n).astype(np.int64)
    total = np.zeros(len(hood))
    squares = np.zeros(len(hood))
    full = n == n_all
    if full.any():
        m_full = int(math.ceil(fraction * n_all))
        top = -hood[full]
        if m_full < n_all:
            top = np.partition(top, m_full - 1, axis=-1)[:, :m_full]
        total[full] = top.sum(axis=-1)
        squares[full] = (top * top).sum(axis=-1)
    part = ~full & (n > 0)
    if part.any():
        top = np.sort(np.where(valid[part], -hood[part], np.inf), axis=-1)
        take = np.arange(n_all) < m[part][:, None]
        top = np.where(take, top, 0.0)
        total[part] = top.sum(axis=-1)
        squares[part] = (top * top).sum(axis=-1)
    mm = np.maximum(m, 1)
    mean = -total / mm
    var = np.where(m > 1, np.maximum(squares - total * total / mm, 0.0) / np.maximum(m - 1, 1),
                   0.0)
    wgt = var / (var + sigma2)
    xf = x.reshape(-1)
    return np.where(n > 0, wgt * xf + (1.0 - wgt) * mean, xf).reshape(x.shape)


def smoothing_step(smooth, codes: Sequence[int]) -> BayesSmooth:
    """The :class:`BayesSmooth` of a ``classify.smooth`` config for the class ``codes`` (in
    class-index order); ``smoothness_by_class`` names codes of the class table.

    Raises:
        ConfigError: ``classify.smooth.smoothness_by_class`` names a code that is not a class.
    """
    from landcover.errors import ConfigError

    if smooth.window > MAX_WINDOW:
        raise ConfigError(f"classify.smooth.window: {smooth.window} is too large; the "
                          f"neighbourhood is at most {MAX_WINDOW} px (each pixel reads "
                          "window^2 neighbours per class); use an odd size such as 9")
    by_class: Mapping[int, float] = smooth.smoothness_by_class
    unknown = sorted(set(by_class) - set(codes))
    if unknown:
        raise ConfigError(f"classify.smooth.smoothness_by_class: code {unknown[0]} is not a class "
                          f"of the model ({', '.join(map(str, codes))})")
    values = tuple(float(by_class.get(c, smooth.smoothness)) for c in codes)
    return BayesSmooth(window=smooth.window, neigh_fraction=smooth.neigh_fraction,
                       smoothness=values if by_class else (float(smooth.smoothness),))


def configured_steps(cfg, codes: Sequence[int]) -> tuple:
    """The post-processing steps a config asks for (``classify.smooth.enabled``)."""
    return (smoothing_step(cfg.classify.smooth, codes),) if cfg.classify.smooth.enabled else ()


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
