"""Spatially disjoint train / validation / test splits that keep every class and every label.

Every labelled pixel belongs to one **group**, and a group goes whole to one split:

``blocks``  square blocks of ``prepare.split.block_size`` pixels from the grid origin (default);
``column``  a column of the vector labels (a field or polygon id); without a column, each feature
            (polygon or point) is its own group. Group values ``train``, ``validation``, ``test``
            and ``none`` are fixed assignments; other values are assigned at random;
``raster``  a raster of split codes: 1 train, 2 validation, 3 test, 0 (or nodata) none.

Groups are assigned by **iterative stratification** (Sechidis et al. 2011, on pixel counts): the
class with the fewest pixels left is handled first, and each group that holds it goes to the split
that still needs most of that class. Every class with pixels in enough groups so reaches every split.
A split that has fixed groups takes no random ones.

Windows are then cut per split: a window of split *k* keeps the labels of its split-*k* pixels only
and gives the ignore label to the rest, so windows of different splits may share inputs but never a
labelled pixel, and no labelled pixel is lost where a window straddles two groups.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.errors import LabelError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
NONE = 3  # split code of groups that go to no split
NO_GROUP = -1
FIXED = {"train": 0, "validation": 1, "test": 2, "none": NONE}


@dataclass(frozen=True)
class BlockGroups:
    """Square blocks of ``block`` pixels; the group id is the block's index on the grid."""

    block: int
    width: int  # grid width in pixels
    kind: str = "blocks"

    def groups(self, target, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        rows = (np.arange(row0, row0 + h) // self.block)[:, None]
        cols = (np.arange(col0, col0 + w) // self.block)[None, :]
        per_row = -(-self.width // self.block)
        return (rows * per_row + cols).astype(np.int64)

    def fixed(self, ids: np.ndarray) -> dict:
        """``{index into ids: split code}`` of the groups with a fixed split: none for blocks."""
        return {}


@dataclass(frozen=True)
class LabelGroups:
    """Groups rasterised from a source with the ``codes`` interface of :mod:`landcover.labels`
    (a vector column of group ids, or a raster of split codes); -1 where there is none."""

    source: object
    fixed_splits: tuple  # ((group id, split code), ...)
    kind: str = "column"
    others: int | None = None  # split code of the groups not in fixed_splits; None = at random

    def groups(self, target, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        return self.source.codes(target, row0, col0, h, w).astype(np.int64)

    def fixed(self, ids: np.ndarray) -> dict:
        """``{index into ids: split code}`` of the groups ``ids`` with a fixed split."""
        by_id = dict(self.fixed_splits)
        out = {i: by_id[int(g)] for i, g in enumerate(ids) if int(g) in by_id}
        if self.others is not None:
            strange = [int(g) for g in ids if int(g) not in by_id]
            if strange:
                log.warning("prepare.split.raster: values %s are not split codes (1 train, 2 "
                            "validation, 3 test, 0 none); their pixels go to no split",
                            strange[:10])
            out.update({i: self.others for i, g in enumerate(ids) if int(g) not in by_id})
        return out


def open_groups(cfg, labels, labels_path, grid):
    """The group source for ``prepare.split`` (``cfg``) over the stack ``grid``.

    Raises:
        LabelError: ``column`` with raster labels or an unknown column, an unreadable split raster.
    """
    if cfg.by == "blocks":
        return BlockGroups(int(cfg.block_size), grid.width)
    if cfg.by == "raster":
        from landcover.config import LabelsConfig
        from landcover.labels import open_labels

        if not cfg.raster:
            raise LabelError("prepare.split.by is raster but prepare.split.raster names no file; "
                             "give a raster of split codes (1 train, 2 validation, 3 test, 0 none)")
        if not Path(cfg.raster).exists():
            raise LabelError(f"prepare.split.raster: {cfg.raster}: no such file")
        source = open_labels(cfg.raster, grid, LabelsConfig())
        if source.kind != "raster":
            raise LabelError(f"prepare.split.raster: {cfg.raster} is not a raster")
        return LabelGroups(source, ((0, NONE), (1, 0), (2, 1), (3, 2)), kind="raster",
                           others=NONE)
    # column
    if labels.kind != "vector":
        raise LabelError(f"prepare.split.by is column, but the labels ({labels_path}) are a raster; "
                         "use prepare.split.by=raster with a raster of split codes, or blocks")
    return _column_groups(labels, cfg.column, labels_path)


def _column_groups(labels, column: str | None, path) -> LabelGroups:
    import pandas as pd

    from landcover.labels import VectorLabels

    frame = labels.frame
    if column is None:
        ids = np.arange(1, len(frame) + 1, dtype=np.int64)
        fixed = ()
        log.info("%s: one split group per feature (%d); set prepare.split.column to group them",
                 path, len(frame))
    else:
        if column not in labels.extra:
            raise LabelError(f"{path}: no column {column!r} for prepare.split.column; columns are "
                             f"{', '.join(labels.extra) or 'none'}")
        values = pd.Series(labels.extra[column]).astype("string").str.strip().str.lower()
        if values.isna().any():
            log.warning("%s: %d feature(s) have no value in split column %r and go to no split",
                        path, int(values.isna().sum()), column)
        distinct = sorted(set(values.dropna()))
        lookup = {v: i for i, v in enumerate(distinct)}
        ids = np.array([lookup[v] if isinstance(v, str) else NO_GROUP for v in values.tolist()],
                       np.int64)
        fixed = tuple((lookup[v], FIXED[v]) for v in distinct if v in FIXED)
    source = VectorLabels(labels.path, frame.assign(code=ids), {}, "first", labels.all_touched)
    return LabelGroups(source, fixed, kind="column")


def assign_groups(counts: np.ndarray, fractions: Sequence[float], seed: int,
                  fixed: dict | None = None) -> np.ndarray:
    """Split code per group (0 train, 1 validation, 2 test, 3 none).

    Args:
        counts: ``(groups, classes)`` labelled pixels per group and class.
        fractions: target shares of the labelled pixels for train, validation[, test].
        fixed: ``{group index: split code}`` assignments that are kept as given.
    """
    counts = np.asarray(counts, np.int64)
    n, K = counts.shape
    targets = np.asarray(list(fractions) + [0.0] * (3 - len(fractions)), float)[:3]
    split = np.full(n, -1, np.int64)
    for g, k in (fixed or {}).items():
        split[g] = k
    open_ = targets > 0
    for k in range(3):
        if (split == k).any():
            open_[k] = False  # a split with fixed groups takes no random groups
    free = split < 0
    if not open_.any():
        split[free] = NONE
        return split
    share = np.where(open_, targets, 0.0)
    share /= share.sum()
    demand = share[:, None] * counts[free].sum(axis=0)[None, :].astype(float)
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero(free))
    remaining = free.copy()
    reached = np.zeros((3, K), bool)  # split k already holds pixels of class c
    while remaining.any():
        left = counts[remaining].sum(axis=0)
        if not (left > 0).any():  # groups without labelled pixels: by overall demand
            members, c = order[remaining[order]], None
        else:
            c = int(np.argmin(np.where(left > 0, left, np.iinfo(np.int64).max)))
            members = order[remaining[order] & (counts[order, c] > 0)]
        for g in members:
            total = demand.sum(axis=1)
            if c is None:
                key = np.where(open_, total, -np.inf)
            else:  # first a split that has none of the class yet, then the one that needs most
                key = np.where(open_, (~reached[:, c]) * 1e12 + demand[:, c] * 1e3 + total,
                               -np.inf)
            k = int(np.argmax(key))
            split[g] = k
            demand[k] -= counts[g]
            reached[k] |= counts[g] > 0
            remaining[g] = False
    return split


def check_splits(pixels: np.ndarray, groups_per_split: np.ndarray, names: Sequence[str],
                 fractions: Sequence[float], kind: str, fixed: Sequence[int] = ()) -> list[str]:
    """Warnings for splits that lack a class or are a single group.

    Args:
        pixels: ``(3, classes)`` unique labelled pixels per split and class.
        groups_per_split: groups assigned to each split.
        fixed: splits given by fixed assignments (a ``test`` group of many fields is not "one
            place"), not warned about as single groups.
    """
    targets = list(fractions) + [0.0] * (3 - len(fractions))
    used = [k for k in range(3) if targets[k] > 0 or pixels[k].sum() > 0]
    what = {"blocks": "block", "column": "group", "raster": "region"}[kind]
    found = []
    for k in used:
        if pixels[k].sum() == 0:
            found.append(f"the {SPLIT_NAMES[k]} split is empty")
            continue
        if groups_per_split[k] == 1 and kind != "raster" and k not in fixed:
            found.append(f"the {SPLIT_NAMES[k]} split is a single {what}: its scores describe one "
                         "place only")
        missing = [names[c] for c in range(len(names)) if pixels[k, c] == 0 and pixels[:, c].sum()]
        if missing:
            found.append(f"the {SPLIT_NAMES[k]} split has no pixels of {', '.join(missing)}")
    return found
