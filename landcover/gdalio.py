"""The one place that sets up GDAL for reading and writing rasters.

Every raster landcover opens goes through :func:`open_raster` (or runs inside :func:`gdal_env`), so
GDAL's configuration is set here and nowhere else. A scene's files may be any path GDAL opens:
local files, members of archives (``/vsitar/...``) or remote files (``/vsicurl/https://...``,
``/vsis3/...``). The options below are the ones that matter for remote reads; they change nothing
for local files.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

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
