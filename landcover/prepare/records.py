"""What one stage of ``landcover prepare`` hands to the next: small frozen records."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.classes import ClassTable
from landcover.grid import Grid
from landcover.lattice import Layout
from landcover.scenes import Scene

log = logging.getLogger(__name__)


CHUNK_PATCHES = 32  # patches per Zarr chunk of the output


@dataclass(frozen=True)
class Sources:
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
class Survey:
    """Survey: labelled pixels per code ``hist (256,)``, pixels of no class code, per (group, code)
    as ``group_keys = group * 256 + code`` and ``group_counts``, and per code in no group."""

    hist: np.ndarray
    not_a_code: int
    group_keys: np.ndarray
    group_counts: np.ndarray
    no_group: np.ndarray


@dataclass(frozen=True)
class Assignment:
    """Assign: ``lookup`` = (sorted group ids, their split codes); groups per split; pixels per
    class in groups of no split; the splits fixed by the split column or raster."""

    lookup: tuple[np.ndarray, np.ndarray]
    groups: list[int]
    none_pixels: list[int]
    fixed_splits: list[int]


@dataclass(frozen=True)
class Windows:
    """Plan: the placed windows in work-store order: origins and the split each was placed for."""

    rows: np.ndarray
    cols: np.ndarray
    split: np.ndarray

    @classmethod
    def of(cls, planned: list) -> Windows:
        return cls(*(np.array([w[i] for tile in planned for w in tile]) for i in range(3)))


@dataclass(frozen=True)
class Work:
    """Extract: the work store (a path) and its arrays, one row per placed window (dask)."""

    path: str
    reflectance: object  # (n, T, s, s, B) float32, NaN = no data
    valid: object  # (n, T, s, s) bool
    labels: object  # (n, s, s) uint8, 255 = ignore


@dataclass(frozen=True)
class Counts:
    """Valid observations per window and date: on its labelled pixels ``labelled_valid (n, T)``,
    on all its pixels ``valid (n, T)``; labelled pixels per window as placed ``labelled (n,)``."""

    labelled_valid: np.ndarray
    labelled: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class Dates:
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
class Kept:
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
class Accounting:
    """Label accounting: unique labelled pixels kept ``(3, K)`` per split and class, the report
    against the labels, and its warnings."""

    pixels: np.ndarray
    report: dict
    warnings: list[str]


@dataclass(frozen=True)
class Stats:
    """Statistics: per band mean and std of the valid observations of training windows."""

    mean: np.ndarray
    std: np.ndarray
    count: int


@dataclass(frozen=True)
class Features:
    """Features: the dataset's arrays in sample order (dask) and the feature names."""

    names: list[str]
    inputs: object  # (samples, T, s, s, F) float32
    labels: object  # (samples, s, s) uint8
    weights: object  # (samples, s, s) float32
