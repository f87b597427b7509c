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


    try:
        with open_raster(path) as src:
            dtype = src.dtypes[0]
            if target.same_lattice(scene_grid):
                dr, dc = target.offset_of(scene_grid)
                r0, c0 = max(row0, dr), max(col0, dc)
                r1 = min(row0 + h, dr + scene_grid.height)
                c1 = min(col0 + w, dc + scene_grid.width)
                if r0 >= r1 or c0 >= c1:
                    return None
                # a fill the raster's type cannot hold (-1 for uint8 labels without nodata)
                # widens the window's type instead of overflowing
                if isinstance(fill, float) and fill.is_integer():
                    fill = int(fill)  # a nodata of 1.0 keeps a uint16 band uint16
                wide = np.result_type(dtype, np.min_scalar_type(fill))
                window = Window(c0 - dc, r0 - dr, c1 - c0, r1 - r0)
                if (r0, c0, r1, c1) == (row0, col0, row0 + h, col0 + w) and wide == dtype:
                    return src.read(1, window=window)  # wholly inside: no fill, no copy
                out = np.full((h, w), fill, dtype=wide)
                out[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = src.read(1, window=window)
                return out
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
