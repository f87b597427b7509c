"""Split groups in ``landcover prepare``: block sizes fitted to the labelled area, and the
groups of the estimate (:mod:`landcover.estimate`) stored with each labelled pixel."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from landcover.contract import IGNORE
from landcover.grid import Grid
from landcover.prepare.records import Kept, Windows

log = logging.getLogger(__name__)


ESTIMATE_BLOCK = 32


@dataclass(frozen=True)
class _SubdividedGroups:
    """Split groups whose fixed groups (every polygon of a ``test`` value of the split column is
    one group) are cut into blocks of ``block`` px, so that intervals over them have groups."""

    source: object
    fixed_ids: tuple
    block: int
    width: int
    kind: str = "column"

    def groups(self, target, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        g = self.source.groups(target, row0, col0, h, w)
        fixed = np.isin(g, self.fixed_ids)
        if fixed.any():
            rows = (np.arange(row0, row0 + h) // self.block)[:, None]
            cols = (np.arange(col0, col0 + w) // self.block)[None, :]
            blocks = rows * (-(-self.width // self.block)) + cols
            which = np.searchsorted(np.asarray(self.fixed_ids), g)
            g = np.where(fixed, (1 << 40) + (which.astype(np.int64) << 24) + blocks, g)
        return g


def estimate_groups(groups, grid: Grid):
    """The spatial groups of the pixels for cross-validation folds and intervals: the split
    groups (blocks, or the polygons / fields of the split column; a fixed ``train`` /
    ``validation`` / ``test`` group of the column cut into blocks of :data:`ESTIMATE_BLOCK` px),
    or, where the split comes from a raster of split codes (3 values, not groups), blocks of
    :data:`ESTIMATE_BLOCK` px."""
    from landcover.splits import BlockGroups

    if groups.kind == "raster":
        return BlockGroups(ESTIMATE_BLOCK, grid.width)
    fixed = tuple(sorted(int(g) for g, _ in getattr(groups, "fixed_splits", ())))
    if groups.kind == "column" and fixed:
        return _SubdividedGroups(groups, fixed, ESTIMATE_BLOCK, grid.width)
    return groups


def window_groups(groups, grid: Grid, windows: Windows, kept: Kept) -> np.ndarray:
    """The group id ``(samples, s, s)`` int32 of each labelled pixel of the kept windows (-1 where
    the label is ignored), in sample order."""
    s = kept.labels.shape[-1]
    out = np.full((len(kept.order), s, s), -1, np.int32)
    for n, i in enumerate(kept.order):
        g = groups.groups(grid, int(windows.rows[i]), int(windows.cols[i]), s, s)
        out[n] = np.where(kept.labels[i] != IGNORE, g, -1)
    return out
