"""The one place that sets up GDAL for reading and writing rasters.

Every raster landcover opens goes through :func:`open_raster` (or runs inside :func:`gdal_env`), so
GDAL's configuration is set here and nowhere else. A scene's files may be any path GDAL opens:
local files, members of archives (``/vsitar/...``) or remote files (``/vsicurl/https://...``,
``/vsis3/...``). The options below are the ones that matter for remote reads; they change nothing
for local files. :func:`read_window` reads a window of a single-band raster (a scene's band, a label
raster) onto another grid.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

import numpy as np

from landcover.errors import RasterReadError
from landcover.grid import Grid

GDAL_OPTIONS = {
    "GDAL_HTTP_MAX_RETRY": "4",  # retry transient HTTP errors (429, 5xx) of remote files ...
    "GDAL_HTTP_RETRY_DELAY": "0.5",  # ... after 0.5 s, then longer (GDAL backs off)
    "VSI_CACHE": "TRUE",  # cache blocks of /vsi* files read more than once (tile halos)
}
"""Options for every raster."""

REMOTE_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per file opened
    "GDAL_HTTP_MULTIRANGE": "YES",  # several ranges in one request ...
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",  # ... and neighbouring ones merged
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.xml,.XML",
    "GDAL_HTTP_TIMEOUT": "60",
}
"""Added for remote paths (``/vsicurl/``, ``/vsis3/``, ...); not for local files, whose sidecars
(``.aux.xml``) GDAL must still find. Requester-pays S3 buckets: set ``AWS_REQUEST_PAYER=requester``
in the environment (GDAL reads AWS settings from it)."""

REMOTE_PREFIXES = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsihttp", "http://", "https://")


def is_remote(path) -> bool:
    return str(path).startswith(REMOTE_PREFIXES)


@contextlib.contextmanager
def gdal_env(path=None) -> Iterator[None]:
    """A ``rasterio.Env`` with :data:`GDAL_OPTIONS`, and :data:`REMOTE_OPTIONS` when ``path`` is
    remote (nested inside an outer one, it adds them). Every task opens its rasters through
    here, so dask workers in other processes get the same settings."""
    import rasterio

    options = {**GDAL_OPTIONS, **(REMOTE_OPTIONS if path is not None and is_remote(path) else {})}
    with rasterio.Env(**options):
        yield


@contextlib.contextmanager
def open_raster(path, mode: str = "r", *, georeferenced: bool = False, **kwargs):
    """``rasterio.open`` inside :func:`gdal_env`. Unless ``georeferenced`` is set, rasterio's
    NotGeoreferencedWarning is silenced (callers check georeferencing themselves)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with gdal_env(path), warnings.catch_warnings():
        if not georeferenced:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, mode, **kwargs) as src:
            yield src


def read_window(path: str, scene_grid: Grid, target: Grid, row0: int, col0: int, h: int, w: int,
                fill, *, resampling: str) -> np.ndarray | None:
    """Read the target window ``(row0, col0, h, w)`` of one single-band raster on ``scene_grid``,
    or None if disjoint: a window of the file itself when the two grids share a lattice (padded
    with ``fill`` where it sticks out), else warped (``resampling``) through a ``WarpedVRT``."""
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    kept = _KEPT
    try:
        if kept is not None and target.same_lattice(scene_grid):  # a run's rasters kept open
            return kept.read_window(path, scene_grid, target, row0, col0, h, w, fill)
        with open_raster(path) as src:
            if target.same_lattice(scene_grid):
                return _lattice_read(
                    lambda r0, r1, c0, c1: src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0)),
                    src.dtypes[0], scene_grid, target, row0, col0, h, w, fill)
            from rasterio.vrt import WarpedVRT

            with WarpedVRT(src, src_crs=scene_grid.crs, src_transform=scene_grid.affine,
                           crs=target.crs, transform=target.affine, width=target.width,
                           height=target.height, resampling=Resampling[resampling],
                           src_nodata=fill, nodata=fill) as vrt:
                return vrt.read(1, window=Window(col0, row0, w, h))
    except RasterioError as exc:
        detail = " ".join(str(exc.__cause__ or exc).split())
        if str(path).startswith(REMOTE_PREFIXES):  # a network failure: the file may be fine
            raise RasterReadError(
                f"{path}: cannot read over the network ({detail}), after GDAL's retries; run "
                "the command again later (classify: with --resume, which keeps the finished "
                "blocks)") from None
        raise RasterReadError(f"{path}: cannot read ({detail}); the file may be truncated or "
                              "corrupt, re-download the scene") from None


def _lattice_read(read, dtype, scene_grid: Grid, target: Grid, row0: int, col0: int, h: int,
                  w: int, fill) -> np.ndarray | None:
    """The target window ``(row0, col0, h, w)`` of a raster on the target's lattice, or None if
    disjoint: ``read(r0, r1, c0, c1)`` gives the file's pixels ``[r0:r1, c0:c1]``; where the
    window sticks out of the file it is padded with ``fill``."""
    dr, dc = target.offset_of(scene_grid)
    r0, c0 = max(row0, dr), max(col0, dc)
    r1, c1 = min(row0 + h, dr + scene_grid.height), min(col0 + w, dc + scene_grid.width)
    if r0 >= r1 or c0 >= c1:
        return None
    # a fill the raster's type cannot hold (-1 for uint8 labels without nodata) widens the
    # window's type instead of overflowing
    if isinstance(fill, float) and fill.is_integer():
        fill = int(fill)  # a nodata of 1.0 keeps a uint16 band uint16
    wide = np.result_type(dtype, np.min_scalar_type(fill))
    values = read(r0 - dr, r1 - dr, c0 - dc, c1 - dc)
    if (r0, r1, c0, c1) == (row0, row0 + h, col0, col0 + w) and values.dtype == wide:
        return values  # wholly inside: no fill, no copy
    out = np.full((h, w), fill, dtype=wide)
    out[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = values
    return out


# ------------------------------------------------------------------------ rasters kept open
SEAM_TILE_MAX = 1024
"""px: rasters whose tiles are at most this wide keep the tile columns a window ends in (a
striped GeoTIFF's "tile" is the whole width: it is read as before)."""

SEAM_PX = 64
"""px: the columns two neighbouring blocks share, at most, for the tiles they share to be
decoded once (classify's blocks share 16 px, the windows' context, plus the halo of the
post-processing steps); the tile columns of a read's last SEAM_PX px are kept."""

KEPT_CACHE_BYTES = 16 * 2**20
"""GDAL's block cache while rasters are kept open (:func:`keep_open`; else 5 % of the RAM): the
tiles GDAL decodes stay in it while their file is open, and the tiles that blocks share are kept
here instead. Reading the blocks of 2048^2 px x 12 dates (96 rasters) with the files kept open
added 818 MiB to the process's peak RSS with GDAL's default cache, 80-140 MiB with 16 or 64 MiB
(the same CPU time)."""

_KEPT = None  # the KeptRasters of the runs in this process (keep_open), or None
_KEPT_USERS = 0  # the keep_open blocks under way
_KEPT_CACHE_BEFORE = None  # GDAL's cache size before the first of them
_KEPT_LOCK = threading.Lock()


class KeptRasters:
    """The rasters of a run, opened once and kept open (one handle per path, its reads
    serialised by a lock of its own), and for each the tile columns of the last :data:`SEAM_PX`
    px of the last window read.

    classify reads a scene block by block, each block with a few pixels of context on every
    side, so two blocks side by side share a column of the files' tiles; GDAL decoded each such
    tile once per block (with blocks of 912 px and 256 px tiles, 1.25 times the tiles along a
    row), and opening a file cost about 1 ms each time. Here the tiles a read needs are read from
    the file aligned to the tile grid, and the tile columns of the window's last :data:`SEAM_PX`
    px are kept for the next read of the same rows: the block to the right takes them instead of
    decoding them again. Memory: one tile column of a block's height in whole tiles per raster,
    two where the window ends within SEAM_PX px of a tile's edge (tiles at most
    :data:`SEAM_TILE_MAX` px wide): 60-120 MiB for 96 files of 256 px tiles and 912 px blocks. The
    block below still decodes the tile row the two share (keeping it would hold the scene's width).
    Files are opened with ``VSI_CACHE`` off (it keeps up to 25 MB of each open file's bytes)
    unless remote. Values are those of a plain read, bit for bit.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._rasters: dict = {}  # path -> [dataset, lock, seam or None]
        # a seam: (first row, end row, first column, end column, the pixels) of whole tiles
        self._stack = contextlib.ExitStack()

    def _entry(self, path):
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        with self._lock:
            entry = self._rasters.get(path)
            if entry is None:
                options = {} if is_remote(path) else {"VSI_CACHE": False}
                with gdal_env(path), rasterio.Env(**options), warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    src = self._stack.enter_context(rasterio.open(path))
                entry = self._rasters[path] = [src, threading.Lock(), None]
            return entry

    def read_window(self, path, scene_grid: Grid, target: Grid, row0: int, col0: int, h: int,
                    w: int, fill):
        """:func:`read_window` of a raster on the target's lattice (None if disjoint)."""
        entry = self._entry(path)
        with entry[1], gdal_env(path):
            return _lattice_read(lambda r0, r1, c0, c1: self._read(entry, r0, r1, c0, c1),
                                 entry[0].dtypes[0], scene_grid, target, row0, col0, h, w, fill)

    @staticmethod
    def _read(entry, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The file's pixels ``[r0:r1, c0:c1]``, through the kept tile column."""
        from rasterio.windows import Window

        src, _, seam = entry
        th, tw = src.block_shapes[0]
        if tw > SEAM_TILE_MAX or tw >= src.width:
            return src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
        a0, a1 = (r0 // th) * th, min(src.height, -(-r1 // th) * th)  # rows of whole tiles
        t0, t1 = c0 // tw, (c1 - 1) // tw  # the tile columns of the window
        b0, b1 = t0 * tw, min(src.width, (t1 + 1) * tw)  # and their pixels
        if seam is not None and seam[:2] == (a0, a1) and seam[2] <= b0 < seam[3]:
            kept = seam[4][:, b0 - seam[2]:b1 - seam[2]]  # the columns kept from the last read
            rest = src.read(1, window=Window(b0 + kept.shape[1], a0, b1 - b0 - kept.shape[1],
                                             a1 - a0)) if b1 > b0 + kept.shape[1] else None
            tiles = kept if rest is None else np.concatenate([kept, rest], axis=1)
        else:
            tiles = src.read(1, window=Window(b0, a0, b1 - b0, a1 - a0))
        k0 = max(b0, (c1 - SEAM_PX) // tw * tw)  # the tile columns the next block may start in
        entry[2] = (a0, a1, k0, b1, tiles[:, k0 - b0:].copy())
        return tiles[r0 - a0:r1 - a0, c0 - b0:c1 - b0]

    def close(self) -> None:
        with self._lock:
            self._rasters.clear()
            self._stack.close()


@contextlib.contextmanager
def keep_open() -> Iterator[KeptRasters]:
    """Inside the ``with`` block, :func:`read_window` reads rasters on the target's lattice
    through one :class:`KeptRasters`, from any thread of this process, with GDAL's block cache at
    :data:`KEPT_CACHE_BYTES`. Blocks that overlap (nested, or runs in several threads) share it;
    the last to end closes the files and gives GDAL its cache size back."""
    from rasterio.env import get_gdal_config, set_gdal_config

    global _KEPT, _KEPT_USERS, _KEPT_CACHE_BEFORE
    with _KEPT_LOCK:
        if _KEPT is None:
            _KEPT, _KEPT_CACHE_BEFORE = KeptRasters(), get_gdal_config("GDAL_CACHEMAX")
            set_gdal_config("GDAL_CACHEMAX", KEPT_CACHE_BYTES)
        _KEPT_USERS += 1
        kept = _KEPT
    try:
        yield kept
    finally:
        with _KEPT_LOCK:
            _KEPT_USERS -= 1
            if _KEPT_USERS == 0:
                _KEPT = None
                kept.close()
                set_gdal_config("GDAL_CACHEMAX", _KEPT_CACHE_BEFORE)
