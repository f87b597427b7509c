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
    "GDAL_HTTP_MAX_RETRY": "3",  # retry transient HTTP errors (429, 5xx) of remote files ...
    "GDAL_HTTP_RETRY_DELAY": "1",  # ... after 1 s, then longer
    "VSI_CACHE": "TRUE",  # cache blocks of /vsi* files read more than once (tile halos)
}


@contextlib.contextmanager
def gdal_env() -> Iterator[None]:
    """A ``rasterio.Env`` with :data:`GDAL_OPTIONS` (nested inside an outer one, it adds them)."""
    import rasterio

    with rasterio.Env(**GDAL_OPTIONS):
        yield


@contextlib.contextmanager
def open_raster(path, mode: str = "r", *, georeferenced: bool = False, **kwargs):
    """``rasterio.open`` inside :func:`gdal_env`. Unless ``georeferenced`` is set, rasterio's
    NotGeoreferencedWarning is silenced (callers check georeferencing themselves)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with gdal_env(), warnings.catch_warnings():
        if not georeferenced:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, mode, **kwargs) as src:
            yield src
