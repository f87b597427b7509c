"""STAC for landcover: maps that catalogue themselves, and searching a STAC API for scenes.

**The map's item.** ``classify`` writes ``MAP.stac.json`` beside ``MAP.tif`` (:func:`item_path`),
a STAC Item (built with ``pystac`` and its extension classes, never by hand) that is part of the
run's output set and committed with the map:

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

**Searching.** :func:`search_items` asks a STAC API (``pystac-client``) for the items of one
collection, :func:`save_items` writes them as an ItemCollection JSON that ``prepare`` and
``classify`` can read, :func:`item_row` is a line of the listing. Requests are retried
(:data:`RETRIES` times, exponential backoff from :data:`RETRY_BACKOFF` s, on connection errors and
HTTP 429/5xx); what still fails is a :class:`CatalogError` naming the URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from landcover import __version__
from landcover.classes import ClassTable
from landcover.contract import NODATA, PROBABILITY_SCALE
from landcover.errors import StacError, UsageError
from landcover.grid import Grid

log = logging.getLogger(__name__)

ITEM_SUFFIX = ".stac.json"
DENSIFY = 16  # points per edge of the footprint (a projected square is curved in lon/lat)
MEDIA_XML = "application/xml"

RETRIES = 3
RETRY_BACKOFF = 1.0  # seconds; urllib3 waits backoff * 2 ** (retry - 1)
TIMEOUT = 60.0  # seconds, per request
RETRY_STATUS = (429, 500, 502, 503, 504)


CatalogError = StacError  # a STAC catalogue or API cannot be read (one error class for STAC)


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
             meta: dict, *, probability_dtype: str | None = None, uncertainty: str | None = None,
             files: Mapping[str, Path] | None = None):
    """The STAC Item of a map (see the module docstring).

    Args:
        paths: the run's outputs (:func:`landcover.classify.output_paths`): ``item``, ``map``,
            ``legend``, ``style`` and optionally ``probabilities``, ``quicklook``.
        grid: the map's grid.
        kept: ``[(date, scenes of that date)]`` in date order.
        table: the class table.
        meta: the bundle metadata (``content_hash``).
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

    from landcover.maps import model_name

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
                    "landcover:model_hash": meta["content_hash"],
                    "landcover:architecture": model_name(meta),
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
                   table: ClassTable, meta: dict, **kw):
    """Write :func:`map_item` (same arguments) as JSON to ``path`` (the item's temporary name
    during a run); returns the item."""
    item = map_item(paths, grid, kept, table, meta, **kw)
    write_json(item.to_dict(include_self_link=False, transform_hrefs=False), path)
    return item


def write_json(data: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------- search
def parse_bbox(text: str) -> list[float]:
    """``W,S,E,N`` in degrees (EPSG:4326) -> 4 floats; ``W > E`` crosses the antimeridian."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{text!r}: give four numbers W,S,E,N in degrees, e.g. "
                         "9.5,47.2,10.5,47.8")
    w, s, e, n = values
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90):
        raise UsageError(f"{text!r}: longitudes must lie in -180..180 and latitudes in -90..90 "
                         "with S <= N")
    return values


def _instant(text: str) -> dt.datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO date or date-time (2023-06-01 or "
                         "2023-06-01T10:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def parse_datetime(text: str) -> str:
    """``A/B``, ``A``, ``../B`` or ``A/..`` (ISO dates or date-times) -> the RFC 3339 interval the
    API is sent. A date alone means the whole day."""
    parts = str(text).strip().split("/")
    if len(parts) > 2 or not any(p not in ("", "..") for p in parts):
        raise UsageError(f"{text!r}: give a date, or an interval A/B (either end may be '..'), "
                         "e.g. 2023-04-01/2023-10-31")
    bounds = [_instant(p.strip()) for p in parts]
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
        bounds = [bounds[0], bounds[0]]
    start, end = bounds
    if end is not None and len(parts[1].strip()) == 10:  # a date: to the end of that day
        end = end + dt.timedelta(days=1, microseconds=-1)
    if start is not None and end is not None and start > end:
        raise UsageError(f"{text!r}: the interval ends before it starts")

    def fmt(value):
        return ".." if value is None else value.astimezone(dt.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S") + "Z"

    return f"{fmt(start)}/{fmt(end)}"


_OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "eq", "==": "eq", "!=": "neq"}
_QUERY = re.compile(r"^\s*([A-Za-z_][\w:.\-]*)\s*(<=|>=|==|!=|<|>|=)\s*(\S.*?)\s*$")


def parse_query(texts: Sequence[str]) -> dict:
    """``["eo:cloud_cover<60", "platform=landsat-8"]`` -> the STAC API query extension's
    ``{"eo:cloud_cover": {"lt": 60}, "platform": {"eq": "landsat-8"}}`` (numbers where they
    parse, else strings)."""
    query: dict = {}
    for text in texts:
        m = _QUERY.match(text)
        if not m:
            raise UsageError(f"{text!r}: give PROPERTY OP VALUE with OP one of "
                             "< <= > >= = !=, e.g. 'eo:cloud_cover<60'")
        name, op, raw = m.groups()
        raw = raw.strip("'\"")
        if not raw or raw[0] in "<>=!":  # 'eo:cloud_cover<<60': not sent to the server as it is
            raise UsageError(f"{text!r}: give PROPERTY OP VALUE with one operator "
                             "(< <= > >= = !=) and a value, e.g. 'eo:cloud_cover<60'")
        try:
            value: float | int | str = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
        query.setdefault(name, {})[_OPS[op]] = value
    return query


def _retry():
    from urllib3 import Retry

    return Retry(total=RETRIES, connect=RETRIES, read=RETRIES, status=RETRIES,
                 backoff_factor=RETRY_BACKOFF, status_forcelist=RETRY_STATUS,
                 allowed_methods=None, raise_on_status=True)


def parse_url(text: str) -> str:
    """A STAC API's root URL: ``http(s)://host[...]`` (anything else is a UsageError)."""
    from urllib.parse import urlsplit

    text = str(text).strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise UsageError(f"{text!r}: give the http(s) URL of a STAC API's landing page, e.g. "
                         "https://earth-search.aws.element84.com/v1")
    return text


def _plain_text(text: str) -> str:
    """An error body on one short line: an HTML page's title (or its text without tags)."""
    text = str(text)
    if re.search(r"<(!doctype|html|head|body|title|h1|p)\b", text, re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL) or \
            re.search(r"<h1[^>]*>(.*?)</h1>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
    return " ".join(text.split())


def _reason(exc: Exception) -> str:
    """A short reason for a failed request (pystac-client's messages hold whole urllib3 reprs,
    servers whole HTML pages)."""
    status = getattr(exc, "status_code", None)
    text = _plain_text(str(exc))
    if status is not None:
        return f"HTTP {status}" + (f": {text[:120]}" if text else "")
    m = re.search(r"too many (\d+) error responses", text)
    if m:
        return f"HTTP {m.group(1)} after {RETRIES + 1} tries"
    for pattern, reason in ((r"Connection refused", "connection refused"),
                            ((r"Name or service not known|nodename nor servname|"
                              r"Temporary failure in name resolution|getaddrinfo failed"),
                             "unknown host"),
                            (r"timed out|Timeout", "timed out"),
                            (r"Expecting value|JSONDecodeError|Extra data",
                             "the answer is not JSON")):
        if re.search(pattern, text):
            return reason + (f" after {RETRIES + 1} tries" if reason != "the answer is not JSON"
                             else "")
    return text[:160] or type(exc).__name__


def search_items(url: str, collection: str, *, bbox: Sequence[float] | None = None,
                 datetime: str | None = None, query: Sequence[str] | dict | None = None,
                 max_items: int | None = None):
    """The items of ``collection`` in the STAC API at ``url`` that match the filters.

    Args:
        bbox: ``[W, S, E, N]`` in degrees (:func:`parse_bbox`).
        datetime: an interval (:func:`parse_datetime`).
        query: ``PROPERTY OP VALUE`` strings (:func:`parse_query`) or a query-extension dict.
        max_items: at most this many (all pages otherwise).

    Returns:
        a :class:`pystac.ItemCollection`, in the API's order.

    Raises:
        CatalogError: the API cannot be reached or keeps failing, is not a STAC API, or offers
            no item search. UsageError: a bad ``datetime`` or ``query``.
    """
    import pystac
    from pystac_client import Client
    from pystac_client.errors import ClientTypeError
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import DoesNotConformTo

    url = parse_url(url)
    interval = parse_datetime(datetime) if datetime else None
    if query is not None and not isinstance(query, dict):
        query = parse_query(query)
    caught: list = []  # pystac-client's warnings ("no conformance classes" ...): logged
    stage = "opening"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Client.open sets the StacApiIO's timeout to its own argument: pass it there
            client = Client.open(url, stac_io=_api_io(), timeout=TIMEOUT)
            stage = "searching"
            search = client.search(collections=[collection], bbox=list(bbox) if bbox else None,
                                   datetime=interval, query=query or None, max_items=max_items)
            return _collect(search, url)
    except ClientTypeError as exc:
        kind = re.search(r"found type=(\w+)", str(exc))
        raise CatalogError(
            f"{url}: a static STAC {kind.group(1) if kind else 'document'}, not a STAC API with "
            "item search", hint="give the URL as SCENES to 'landcover info', 'prepare' or "
            "'classify' (they read its items)") from None
    except (DoesNotConformTo, NotImplementedError):
        raise CatalogError(f"{url}: the catalogue offers no STAC API item search (it conforms to "
                           "no https://api.stacspec.org/v1.0.0/item-search)",
                           hint="a static catalog or ItemCollection is given as SCENES to "
                           "'landcover info', 'prepare' or 'classify'") from None
    except APIError as exc:
        raise CatalogError(f"{url}: {stage} the STAC API failed ({_reason(exc)})",
                           hint="check the URL and the network, or try again later") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, pystac.STACError,
            pystac.STACTypeError) as exc:
        raise CatalogError(f"{url}: {stage}: the answer is not a STAC API's "
                           f"({_plain_text(str(exc))[:160] or type(exc).__name__})") from None
    finally:
        for w in caught:
            log.info("%s: %s", url, w.message)


MAX_PAGES = 10_000
"""Pages of one search at most (a server whose next-page links never end is refused)."""


def _api_io():
    """pystac-client's HTTP client, with retries, that reads http(s) URLs only (its default
    reads any other href as a local file: a landing page could name one)."""
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO

    class RemoteOnly(StacApiIO):
        def read_text(self, source, *args, **kwargs):
            href = source.href if hasattr(source, "href") else str(source)
            if not str(href).lower().startswith(("http://", "https://")):
                raise APIError(f"a link to {str(href)[:100]!r}, not an http(s) URL")
            return super().read_text(source, *args, **kwargs)

    return RemoteOnly(max_retries=_retry(), timeout=TIMEOUT)


def _collect(search, url: str):
    """The items of all pages of ``search`` as an ItemCollection; next-page links that lead back
    to a page already read (or to the same items), or more than :data:`MAX_PAGES` pages, are a
    CatalogError, and so is an item pystac cannot read (naming it)."""
    import pystac

    items, ids, links = [], set(), set()
    for number, page in enumerate(search.pages_as_dicts(), 1):
        if not isinstance(page, dict) or not isinstance(page.get("features"), list):
            raise CatalogError(f"{url}: page {number} of the search is not a FeatureCollection")
        new = 0
        for index, feature in enumerate(page["features"]):
            name = feature.get("id") if isinstance(feature, dict) else None
            try:
                item = pystac.Item.from_dict(feature, preserve_dict=False)
            except Exception as exc:  # noqa: BLE001 - pystac raises anything on odd JSON
                raise CatalogError(
                    f"{url}: item {name or index + 1} of page {number} is not a valid STAC "
                    f"item ({type(exc).__name__}: {_plain_text(str(exc))[:120]})") from None
            if not isinstance(item.id, str) or not item.id:
                raise CatalogError(f"{url}: item {index + 1} of page {number} has no id")
            for key, asset in item.assets.items():  # saved, then read as the user's own file
                href = asset.get_absolute_href() or asset.href
                if not str(href).lower().startswith(("http://", "https://", "s3://")):
                    raise CatalogError(f"{url}: asset {key!r} of item {item.id} points at "
                                       f"{str(href)[:120]!r}, not an http(s) or s3:// URL; a "
                                       "STAC API may not point at local files")
            if item.id not in ids:
                ids.add(item.id)
                items.append(item)
                new += 1
        if page["features"] and not new:
            raise CatalogError(f"{url}: page {number} of the search repeats items of earlier "
                               "pages (its next-page links loop)")
        nexts = [link for link in page.get("links") or [] if isinstance(link, dict)
                 and link.get("rel") == "next"]
        if nexts:
            key = json.dumps(nexts[0], sort_keys=True, default=str)
            if key in links:
                raise CatalogError(f"{url}: the next-page link of page {number} leads back to a "
                                   "page already read (the links loop)")
            links.add(key)
            if number >= MAX_PAGES:
                raise CatalogError(f"{url}: more than {MAX_PAGES} pages of results",
                                   hint="narrow the search or pass --max-items")
    return pystac.ItemCollection(items)


def save_items(items, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``items`` (a :class:`pystac.ItemCollection`) as ItemCollection JSON to ``out``, under
    a temporary name first (:class:`~landcover.outputs.OutputSet`)."""
    from landcover.outputs import OutputSet

    out = Path(out).absolute()
    with OutputSet([out], overwrite) as outputs:
        tmp = outputs.temporary(out)
        write_json(items.to_dict(transform_hrefs=False), tmp)
        outputs.commit({out: tmp})
    return out


def item_row(item) -> dict:
    """One line of the listing: ID, date, cloud cover, EPSG, WRS path/row (``None`` when the
    item does not say)."""
    props = item.properties
    when = item.datetime or pystac_start(item)
    code = props.get("proj:code") or ""
    epsg = props.get("proj:epsg")
    if epsg is None and str(code).upper().startswith("EPSG:"):
        epsg = int(str(code).split(":", 1)[1])
    if epsg is None:  # per asset (some catalogues put proj on the assets only)
        for asset in item.assets.values():
            epsg = asset.extra_fields.get("proj:epsg")
            code = asset.extra_fields.get("proj:code") or ""
            if epsg is None and str(code).upper().startswith("EPSG:"):
                epsg = int(str(code).split(":", 1)[1])
            if epsg is not None:
                break
    path, row = props.get("landsat:wrs_path"), props.get("landsat:wrs_row")
    cloud = props.get("eo:cloud_cover")
    return {"id": item.id, "date": when.date().isoformat() if when else None,
            "cloud_cover": None if cloud is None else float(cloud),
            "epsg": None if epsg is None else int(epsg),
            "path_row": f"{int(path):03d}/{int(row):03d}" if path is not None and row is not None
            else None}


def pystac_start(item):
    from pystac.utils import str_to_datetime

    start = item.properties.get("start_datetime")
    return str_to_datetime(start) if start else None


def format_rows(rows: Sequence[dict]) -> str:
    """The listing as a plain-text table."""
    head = ("ID", "date", "cloud %", "EPSG", "path/row")
    cells = [(r["id"], r["date"] or "-",
              "-" if r["cloud_cover"] is None else f"{r['cloud_cover']:.1f}",
              "-" if r["epsg"] is None else str(r["epsg"]), r["path_row"] or "-") for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    right = (False, False, True, True, False)

    def line(c):
        return "  ".join(v.rjust(w) if r else v.ljust(w)
                         for v, w, r in zip(c, widths, right)).rstrip()

    return "\n".join([line(head), *(line(c) for c in cells)])


__all__ = ["CatalogError", "format_rows", "item_path", "item_row", "map_item", "parse_bbox",
           "parse_datetime", "parse_query", "save_items", "search_items", "write_map_item"]
