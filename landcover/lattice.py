"""Window geometry: where the squares that a model sees lie on a grid, and how runs are cut.

One vocabulary for prepare, classify and smooth (all sizes in pixels):

* **lattice**: the origins of equal squares along each axis of the grid.
* **patches**: prepare's training windows (``prepare.patches.size`` every ``prepare.patches.stride``,
  :func:`patch_origins`): they start at 0, plus one flush with the far edge when the lattice leaves
  pixels uncovered there, so every pixel lies in some patch. The ``i``-th patch along an axis
  *owns* the pixels from its origin to the next origin, the last one to the edge
  (:func:`owned_pixels`): ownership decides which patch must be cut for a labelled pixel that no
  well-labelled patch covers (:func:`landcover.prepare.plan_tile`).
* **tiles**: prepare's unit of work, a square of ``prepare.patches.tile_size`` pixels (a multiple of
  the stride) holding the patches whose top-left pixel lies in it (:class:`Layout`).
* **windows**: classify's inference windows (``s`` = ``classify.window``, ``o`` =
  ``classify.overlap``, ``d = s - o`` the stride, :func:`window_origins`): window ``k`` of an axis
  starts at ``k d - o // 2`` and *keeps* the pixels ``[k d, (k + 1) d)``, with ``o // 2`` pixels
  of context before them and the rest after. Outside the grid the series is reflected
  (:func:`reflect_index`). With ``classify.blend`` > 0 a ``sin^2`` ramp of that width crosses
  each seam inside the overlap (:func:`ramp_1d`, :func:`taper`, :func:`support`).
* **blocks**: classify's and smooth's unit of work, squares of ``classify.block_size`` pixels
  (:func:`block_side`), for classify a multiple of the window stride (:func:`aligned_block`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from landcover.errors import DatasetError

if TYPE_CHECKING:
    from landcover.config import Config
    from landcover.grid import Grid


# ------------------------------------------------------------------------- patches (prepare)
def patch_origins(length: int, size: int, stride: int) -> tuple[int, ...]:
    """Patch origins along one axis: every ``stride`` pixels, plus one flush with the far edge when
    the lattice leaves pixels uncovered there (so every pixel is inside some patch)."""
    if length < size:
        return ()
    out = list(range(0, length - size + 1, stride))
    if out[-1] + size < length:
        out.append(length - size)
    return tuple(out)


def owned_pixels(origins: tuple[int, ...], i: int, length: int) -> tuple[int, int]:
    """Pixels ``[a, b)`` the ``i``-th patch owns along one axis: from its origin to the next."""
    return origins[i], origins[i + 1] if i + 1 < len(origins) else length


@dataclass(frozen=True)
class Layout:
    """The patch lattice and the processing tiles over a grid."""

    height: int
    width: int
    size: int
    stride: int
    tile: int  # tile side in pixels, a multiple of stride

    @functools.cached_property
    def row_origins(self) -> tuple[int, ...]:
        return patch_origins(self.height, self.size, self.stride)

    @functools.cached_property
    def col_origins(self) -> tuple[int, ...]:
        return patch_origins(self.width, self.size, self.stride)

    @property
    def n_rows(self) -> int:
        return len(self.row_origins)

    @property
    def n_cols(self) -> int:
        return len(self.col_origins)

    def tiles(self):
        """Yield ``(core, windows)``: core ``(r0, c0, r1, c1)`` and the (row, col) of the patches
        whose top-left pixel lies in it."""
        for ti in range(math.ceil(self.height / self.tile)):
            for tj in range(math.ceil(self.width / self.tile)):
                core = (ti * self.tile, tj * self.tile, min(self.height, (ti + 1) * self.tile),
                        min(self.width, (tj + 1) * self.tile))
                rows = [r for r in self.row_origins if core[0] <= r < core[2]]
                cols = [c for c in self.col_origins if core[1] <= c < core[3]]
                yield core, [(r, c) for r in rows for c in cols]


def make_layout(grid: Grid, cfg: Config) -> Layout:
    """The layout of ``prepare.patches`` (size, stride, tile_size) over ``grid``.

    Raises:
        DatasetError: the grid is smaller than one patch.
    """
    p = cfg.prepare
    tile = max(p.patches.stride, (p.patches.tile_size // p.patches.stride) * p.patches.stride)
    layout = Layout(grid.height, grid.width, p.patches.size, p.patches.stride, tile)
    if layout.n_rows == 0 or layout.n_cols == 0:
        raise DatasetError(f"the stack grid ({grid.width} x {grid.height} px) is smaller than one "
                           f"window; lower prepare.patches.size ({p.patches.size})")
    return layout


# ------------------------------------------------------------------------ windows (classify)
# Defaults, from measurements on the demo and on real sperrorest-maipo (README, "Tiling")
WINDOW = 256  # px, the largest window: each pixel is predicted about (256 / 240)^2 = 1.14 times
OVERLAP = 16  # px: 8 px of context on each side of a window's kept pixels (4 gave the same maps)


def window_origins(n: int, window: int, overlap: int) -> np.ndarray:
    """Origins of the windows along an axis of ``n`` pixels: window ``k`` keeps the pixels
    ``[k d, (k + 1) d)`` (``d = window - overlap``, the stride) and sees ``overlap // 2`` pixels of
    context before them and the rest of the overlap after them; the last window keeps pixel
    ``n - 1``."""
    stride = window - overlap
    return stride * np.arange(max(1, math.ceil(n / stride))) - overlap // 2


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Map indices outside ``0..n-1`` back into the grid by reflection (``-1 -> 1``, ``n -> n-2``)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = np.mod(index, period)
    return np.where(m >= n, period - m, m)


def auto_window(grid: Grid, patch_size: int, overlap: int) -> int:
    """The window side, at most :data:`WINDOW`, whose lattice predicts the fewest window pixels
    for the grid (one window for a grid that fits; at least the training patch size)."""
    H, W = grid.height, grid.width
    if max(H, W) + overlap <= WINDOW:
        return max(patch_size, max(H, W) + overlap)
    best = None
    for d in range(max(1, WINDOW // 2 - overlap), WINDOW - overlap + 1):
        cost = math.ceil(H / d) * math.ceil(W / d) * (d + overlap) ** 2
        if best is None or cost <= best[0]:
            best = (cost, d)
    return max(patch_size, best[1] + overlap)


def ramp_1d(window: int, overlap: int, blend: int | None = None) -> np.ndarray:
    """1-D blending weights of a window: 0 over the context that is not kept, a ``sin^2`` ramp of
    ``blend`` pixels centred on the seam between two windows' kept pixels, 1 inside.

    Ramps of neighbouring windows (stride ``window - overlap``) sum to exactly 1; ``blend=0``
    keeps each pixel from the one window where it lies furthest from the edge, ``blend=overlap``
    (None) ramps over the whole overlap.
    """
    blend = overlap if blend is None else min(blend, overlap)
    before = (overlap - blend) // 2  # context not kept, left of the ramp
    after = overlap - blend - before
    w = np.ones(window, np.float64)
    w[:before] = 0.0
    w[window - after:] = 0.0
    if blend > 0:
        up = np.sin(0.5 * np.pi * (np.arange(blend) + 0.5) / blend) ** 2
        w[before:before + blend] = up
        w[window - after - blend:window - after] = up[::-1]
    return w


def taper(window: int, overlap: int, blend: int | None = None) -> np.ndarray:
    """2-D blending weights (:func:`ramp_1d` along both axes)."""
    w = ramp_1d(window, overlap, blend)
    return np.outer(w, w).astype(np.float32)


def support(window: int, overlap: int, blend: int | None = None) -> tuple[int, int]:
    """``(first, end)``: the positions of a window whose weight is not 0."""
    nz = np.flatnonzero(ramp_1d(window, overlap, blend) > 0)
    return int(nz[0]), int(nz[-1]) + 1


# ------------------------------------------------------------------- blocks (classify, smooth)
BLOCK = 1024  # px: the block side for up to BLOCK_DATES dates
BLOCK_DATES = 12  # beyond this, blocks shrink so that dates x block pixels stays the same
MIN_BLOCK = 64  # px: the smallest block a default gives


def block_side(block_size: int | None, dates: int = BLOCK_DATES) -> int:
    """The block side of ``classify.block_size``; when null, :data:`BLOCK` for up to
    :data:`BLOCK_DATES` dates and smaller for longer series (so that dates x block pixels, the
    memory of a block, stays the same), at least :data:`MIN_BLOCK`."""
    if block_size is not None:
        return block_size
    return max(MIN_BLOCK, int(BLOCK * math.sqrt(BLOCK_DATES / max(dates, BLOCK_DATES))))


def aligned_block(block_size: int, stride: int) -> int:
    """``block_size`` rounded down to a multiple of the window stride when it is at least one.

    Block edges then fall between the kept parts of two windows, so without blending
    (``classify.blend=0``) no window is predicted for two blocks. A block smaller than the stride
    is kept as it is (a window is then predicted once for each block it keeps pixels of).
    """
    return block_size // stride * stride if block_size >= stride else block_size
