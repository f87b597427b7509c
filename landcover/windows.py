"""Window geometry of ``landcover prepare``: the lattice of windows over a grid and its tiles.

Windows of ``size`` pixels start every ``stride`` pixels along each axis, plus one flush with the
far edge when the lattice leaves pixels uncovered there, so every pixel lies in some window. The
``i``-th window along an axis *owns* the pixels from its origin to the next origin (the last one to
the edge): ownership decides which window must be cut for a labelled pixel that no well-labelled
window covers (see :func:`landcover.prepare.plan_tile`). Processing runs per tile: a square of
``tile`` pixels (a multiple of ``stride``) holding the windows whose top-left pixel lies in it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from landcover.config import Config
from landcover.errors import DatasetError
from landcover.grid import Grid


def _origins(length: int, size: int, stride: int) -> tuple[int, ...]:
    """Window origins along one axis: every ``stride`` pixels, plus one flush with the far edge when
    the lattice leaves pixels uncovered there (so every pixel is inside some window)."""
    if length < size:
        return ()
    out = list(range(0, length - size + 1, stride))
    if out[-1] + size < length:
        out.append(length - size)
    return tuple(out)


@dataclass(frozen=True)
class Layout:
    """Window lattice and processing tiles over a grid."""

    height: int
    width: int
    size: int
    stride: int
    tile: int  # tile side in pixels, a multiple of stride

    @functools.cached_property
    def row_origins(self) -> tuple[int, ...]:
        return _origins(self.height, self.size, self.stride)

    @functools.cached_property
    def col_origins(self) -> tuple[int, ...]:
        return _origins(self.width, self.size, self.stride)

    @property
    def n_rows(self) -> int:
        return len(self.row_origins)

    @property
    def n_cols(self) -> int:
        return len(self.col_origins)

    def tiles(self):
        """Yield ``(core, windows)``: core ``(r0, c0, r1, c1)`` and the (row, col) of the windows
        whose top-left pixel lies in it."""
        for ti in range(math.ceil(self.height / self.tile)):
            for tj in range(math.ceil(self.width / self.tile)):
                core = (ti * self.tile, tj * self.tile, min(self.height, (ti + 1) * self.tile),
                        min(self.width, (tj + 1) * self.tile))
                rows = [r for r in self.row_origins if core[0] <= r < core[2]]
                cols = [c for c in self.col_origins if core[1] <= c < core[3]]
                yield core, [(r, c) for r in rows for c in cols]


def _owned(origins: tuple[int, ...], i: int, length: int) -> tuple[int, int]:
    """Pixels ``[a, b)`` the ``i``-th window owns along one axis: from its origin to the next."""
    return origins[i], origins[i + 1] if i + 1 < len(origins) else length


def make_layout(grid: Grid, cfg: Config) -> Layout:
    """The layout of ``prepare.patches`` (size, stride, tile_size) over ``grid``.

    Raises:
        DatasetError: the grid is smaller than one window.
    """
    p = cfg.prepare
    tile = max(p.patches.stride, (p.patches.tile_size // p.patches.stride) * p.patches.stride)
    layout = Layout(grid.height, grid.width, p.patches.size, p.patches.stride, tile)
    if layout.n_rows == 0 or layout.n_cols == 0:
        raise DatasetError(f"the stack grid ({grid.width} x {grid.height} px) is smaller than one "
                           f"window; lower prepare.patches.size ({p.patches.size})")
    return layout
