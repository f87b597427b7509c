"""The map's STAC item: maps that catalogue themselves (searching a STAC API for scenes is
:mod:`landcover.stac.search`).

``classify`` writes ``MAP.stac.json`` beside ``MAP.tif`` (:func:`item_path`), a STAC Item (built
with ``pystac`` and its extension classes, never by hand) that is part of the run's output set and
committed with the map:

* ``geometry``: the grid's footprint in EPSG:4326 (its outline, ``DENSIFY`` points per edge,
  transformed from the map's CRS; maps across the antimeridian are not split), ``bbox`` its bounds;
* ``start_datetime`` / ``end_datetime``: the first date at 00:00:00Z and the last date at
  23:59:59Z (scene dates are days; ``datetime`` is null), ``landcover:dates`` the dates themselves;
* ``landcover:model_hash`` (the bundle's content hash) and ``landcover:version``;
* ``proj``: ``proj:code`` (EPSG) or ``proj:wkt2``, ``proj:transform`` (affine ``a, b, c, d, e, f``),
  ``proj:shape`` ``[height, width]``, ``proj:bbox`` in the map's CRS;
* assets, with hrefs relative to the item file: ``map`` (role ``data``; ``raster:bands`` with
  nodata 255, ``uint8`` and ``classification:classes``: value, name (a token of letters, digits,
  ``-`` and ``_``, as the extension requires), title (the class name), ``color_hint``; nodata as a
  class with ``nodata: true``), ``probabilities`` (role ``data``: one band per class, then the
  uncertainty band; ``scale`` = 1 / stored value of p = 1), ``legend`` and ``style`` (role
  ``metadata``), ``quicklook`` (role ``overview``); each with ``file:size`` and ``file:checksum``
  (multihash: ``1220`` + SHA-256 hex) of its bytes, computed from the temporary files just before
  the set is committed (a rename does not change the content);
* ``derived_from`` links to the inputs: a scene read from STAC carries its item's href
  (``scene.attrs["stac_href"]``), a local scene its folder or archive (absolute path).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from landcover import __version__
from landcover.bundle.meta import BundleMeta
from landcover.classes import ClassTable
from landcover.contract import NODATA, PROBABILITY_SCALE
from landcover.grid import Grid

ITEM_SUFFIX = ".stac.json"
DENSIFY = 16  # points per edge of the footprint (a projected square is curved in lon/lat)
MEDIA_XML = "application/xml"


# ------------------------------------------------------------------------------ the map's item
def item_path(out: str | Path) -> Path:
    """``MAP.stac.json`` beside the map ``MAP.tif``."""
    out = Path(out)
    return out.with_name(out.stem + ITEM_SUFFIX)


def footprint(grid: Grid, densify: int = DENSIFY) -> dict:
    """GeoJSON Polygon of the grid's outline in EPSG:4326 (lon, lat), ``densify`` points per
    edge, counter-clockwise from the top-left corner."""
    from pyproj import Transformer

    W, H = grid.width, grid.height
    t = [i / densify for i in range(densify)]
    pixels = ([(0, H * f) for f in t] + [(W * f, H) for f in t] +  # left edge down, bottom edge
              [(W, H * (1 - f)) for f in t] + [(W * (1 - f), 0) for f in t])  # right up, top
    a, b, c, d, e, f = grid.transform
    xs = [c + a * col + b * row for col, row in pixels]
    ys = [f + d * col + e * row for col, row in pixels]
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    ring = [[round(float(x), 9), round(float(y), 9)] for x, y in zip(lon, lat)]  # ~0.1 mm
    if not all(math.isfinite(v) for p in ring for v in p):
        raise ValueError(f"the grid ({grid.describe()}) has no footprint in EPSG:4326")
    if _signed_area(ring) < 0:  # a flipped transform: keep the exterior ring counter-clockwise
        ring.reverse()
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def _signed_area(ring) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1])) / 2


def multihash_sha256(path: str | Path) -> str:
    """The file's SHA-256 as a hex multihash (``12`` sha2-256, ``20`` 32 bytes, then the digest),
    as ``file:checksum`` wants it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "1220" + h.hexdigest()


def class_token(name: str, code: int) -> str:
    """A class name as the classification extension's ``name`` (``^[0-9A-Za-z-_]+$``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_") or f"class_{code}"


def _input_href(scene) -> tuple[str, bool]:
    """``(href, is a STAC item)`` of a scene: its item's href when it was read from STAC (the
    item's self href, or its ID when it had none), else its folder or archive; local paths
    absolute."""
    stac = (getattr(scene, "attrs", None) or {}).get("stac_href")
    href = str(stac or scene.source)
    if "://" not in href and os.path.exists(href):
        href = os.path.abspath(href)
    return href, bool(stac)


def map_item(paths: Mapping[str, Path], grid: Grid, kept: Sequence, table: ClassTable,
             meta: BundleMeta, *, probability_dtype: str | None = None, uncertainty: str | None = None,
             files: Mapping[str, Path] | None = None):
    """The STAC Item of a map (see the module docstring).

    Args:
        paths: the run's outputs (:func:`landcover.classify.output_paths`): ``item``, ``map``,
            ``legend``, ``style`` and optionally ``probabilities``, ``quicklook``.
        grid: the map's grid.
        kept: ``[(date, scenes of that date)]`` in date order.
        table: the class table.
        meta: the bundle's metadata (its ``content_hash`` and ``model_name``).
        probability_dtype, uncertainty: of the probabilities raster, when there is one.
        files: where each output's bytes are now (the temporaries before the commit); default
            ``paths``. Sizes and checksums are read from these.

    Returns:
        a :class:`pystac.Item`.
    """
    import pystac
    from pyproj import CRS
    from pystac.extensions.classification import Classification, ClassificationExtension
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    files = files or paths
    here = Path(paths["item"]).parent
    dates = [d for d, _ in kept]
    geometry = footprint(grid)
    ring = geometry["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    name = Path(paths["map"]).stem
    item = pystac.Item(
        id=name, geometry=geometry, bbox=[min(lons), min(lats), max(lons), max(lats)],
        datetime=None,
        start_datetime=dt.datetime.combine(dates[0], dt.time(0, 0, 0), dt.timezone.utc),
        end_datetime=dt.datetime.combine(dates[-1], dt.time(23, 59, 59), dt.timezone.utc),
        properties={"title": f"{name}: land cover, {dates[0]} .. {dates[-1]}, "
                             f"{len(dates)} dates",
                    "created": pystac.utils.datetime_to_str(dt.datetime.now(dt.timezone.utc)),
                    "landcover:model_hash": meta.content_hash,
                    "landcover:architecture": meta.model_name,
                    "landcover:version": __version__,
                    "landcover:dates": [d.isoformat() for d in dates]})

    crs = CRS.from_user_input(grid.crs)
    epsg = int(grid.crs.split(":", 1)[1]) if grid.crs.startswith("EPSG:") else None
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        epsg=epsg, wkt2=None if epsg else crs.to_wkt(), transform=list(grid.transform),
        shape=[grid.height, grid.width], bbox=list(grid.bounds))

    resolution = float(min(grid.res)) if not crs.is_geographic else None
    assets = {"map": ("land cover classes", pystac.MediaType.COG, ["data"]),
              "probabilities": ("class probabilities and uncertainty", pystac.MediaType.COG,
                                ["data"]),
              "legend": ("legend (GDAL category names, attribute table)", MEDIA_XML,
                         ["metadata"]),
              "style": ("QGIS style", MEDIA_XML, ["metadata"]),
              "quicklook": ("quicklook", pystac.MediaType.PNG, ["overview"])}
    for key, (title, media, roles) in assets.items():
        if key not in paths:
            continue
        asset = pystac.Asset(href=os.path.relpath(paths[key], here), title=title,
                             media_type=media, roles=roles)
        item.add_asset(key, asset)
        FileExtension.ext(asset, add_if_missing=True).apply(
            size=os.path.getsize(files[key]), checksum=multihash_sha256(files[key]))

    band = RasterBand.create(nodata=NODATA, data_type=DataType.UINT8,
                             spatial_resolution=resolution)
    ClassificationExtension.ext(band).classes = [
        Classification.create(value=cl.code, name=class_token(cl.name, cl.code), title=cl.name,
                              color_hint=cl.color.lstrip("#").upper())
        for cl in table.classes] + [
        Classification.create(value=NODATA, name="nodata",
                              title="no valid observation on any date", nodata=True)]
    RasterExtension.ext(item.assets["map"], add_if_missing=True).bands = [band]
    ClassificationExtension.add_to(item)
    if "probabilities" in paths:
        scale, nodata = PROBABILITY_SCALE[probability_dtype]
        bands = []
        for cl in table.classes:
            b = RasterBand.create(nodata=nodata, data_type=DataType(probability_dtype),
                                  spatial_resolution=resolution, scale=1.0 / scale, offset=0.0)
            b.properties.update(name=f"p_{class_token(cl.name, cl.code)}",
                                description=f"probability of {cl.name} (code {cl.code})")
            bands.append(b)
        b = RasterBand.create(nodata=nodata, data_type=DataType(probability_dtype),
                              spatial_resolution=resolution, scale=1.0 / scale, offset=0.0)
        b.properties.update(name="uncertainty", description=f"uncertainty ({uncertainty})")
        RasterExtension.ext(item.assets["probabilities"]).bands = [*bands, b]

    seen = set()
    for _, scenes in kept:
        for scene in scenes:
            href, stac = _input_href(scene)
            if href in seen:
                continue
            seen.add(href)
            item.add_link(pystac.Link(pystac.RelType.DERIVED_FROM, href,
                                      media_type=pystac.MediaType.GEOJSON if stac else None,
                                      title=scene.scene_id))
    return item


def write_map_item(path: str | Path, paths: Mapping[str, Path], grid: Grid, kept: Sequence,
                   table: ClassTable, meta: BundleMeta, **kw):
    """Write :func:`map_item` (same arguments) as JSON to ``path`` (the item's temporary name
    during a run); returns the item."""
    item = map_item(paths, grid, kept, table, meta, **kw)
    write_json(item.to_dict(include_self_link=False, transform_hrefs=False), path)
    return item


def write_json(data: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


__all__ = ["footprint", "item_path", "map_item", "write_map_item"]
