"""Searching a STAC API for scenes (``landcover search``).

:func:`search_items` asks a STAC API (``pystac-client``) for the items of one collection,
:func:`save_items` writes them as an ItemCollection JSON that ``prepare`` and ``classify`` can read
(:mod:`landcover.stac.items`), :func:`item_row` is a line of the listing. Requests are retried
(:data:`RETRIES` times, exponential backoff from :data:`RETRY_BACKOFF` s, on connection errors and
HTTP 429/5xx); what still fails is a :class:`~landcover.errors.StacError` naming the URL.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from landcover.errors import StacError, UsageError

log = logging.getLogger(__name__)

RETRIES = 3
RETRY_BACKOFF = 1.0  # seconds; urllib3 waits backoff * 2 ** (retry - 1)
TIMEOUT = 60.0  # seconds, per request
RETRY_STATUS = (429, 500, 502, 503, 504)


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
        StacError: the API cannot be reached or keeps failing, is not a STAC API, or offers
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
        raise StacError(
            f"{url}: a static STAC {kind.group(1) if kind else 'document'}, not a STAC API with "
            "item search", hint="give the URL as SCENES to 'landcover info', 'prepare' or "
            "'classify' (they read its items)") from None
    except (DoesNotConformTo, NotImplementedError):
        raise StacError(f"{url}: the catalogue offers no STAC API item search (it conforms to "
                        "no https://api.stacspec.org/v1.0.0/item-search)",
                        hint="a static catalog or ItemCollection is given as SCENES to "
                        "'landcover info', 'prepare' or 'classify'") from None
    except APIError as exc:
        raise StacError(f"{url}: {stage} the STAC API failed ({_reason(exc)})",
                        hint="check the URL and the network, or try again later") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, pystac.STACError,
            pystac.STACTypeError) as exc:
        raise StacError(f"{url}: {stage}: the answer is not a STAC API's "
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
    StacError, and so is an item pystac cannot read (naming it)."""
    import pystac

    items, ids, links = [], set(), set()
    for number, page in enumerate(search.pages_as_dicts(), 1):
        if not isinstance(page, dict) or not isinstance(page.get("features"), list):
            raise StacError(f"{url}: page {number} of the search is not a FeatureCollection")
        new = 0
        for index, feature in enumerate(page["features"]):
            name = feature.get("id") if isinstance(feature, dict) else None
            try:
                item = pystac.Item.from_dict(feature, preserve_dict=False)
            except Exception as exc:  # noqa: BLE001 - pystac raises anything on odd JSON
                raise StacError(
                    f"{url}: item {name or index + 1} of page {number} is not a valid STAC "
                    f"item ({type(exc).__name__}: {_plain_text(str(exc))[:120]})") from None
            if not isinstance(item.id, str) or not item.id:
                raise StacError(f"{url}: item {index + 1} of page {number} has no id")
            for key, asset in item.assets.items():  # saved, then read as the user's own file
                href = asset.get_absolute_href() or asset.href
                if not str(href).lower().startswith(("http://", "https://", "s3://")):
                    raise StacError(f"{url}: asset {key!r} of item {item.id} points at "
                                    f"{str(href)[:120]!r}, not an http(s) or s3:// URL; a "
                                    "STAC API may not point at local files")
            if item.id not in ids:
                ids.add(item.id)
                items.append(item)
                new += 1
        if page["features"] and not new:
            raise StacError(f"{url}: page {number} of the search repeats items of earlier "
                            "pages (its next-page links loop)")
        nexts = [link for link in page.get("links") or [] if isinstance(link, dict)
                 and link.get("rel") == "next"]
        if nexts:
            key = json.dumps(nexts[0], sort_keys=True, default=str)
            if key in links:
                raise StacError(f"{url}: the next-page link of page {number} leads back to a "
                                "page already read (the links loop)")
            links.add(key)
            if number >= MAX_PAGES:
                raise StacError(f"{url}: more than {MAX_PAGES} pages of results",
                                hint="narrow the search or pass --max-items")
    return pystac.ItemCollection(items)


def save_items(items, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``items`` (a :class:`pystac.ItemCollection`) as ItemCollection JSON to ``out``, under
    a temporary name first (:class:`~landcover.outputs.OutputSet`)."""
    from landcover.outputs import OutputSet

    out = Path(out).absolute()
    with OutputSet([out], overwrite) as outputs:
        tmp = outputs.temporary(out)
        Path(tmp).write_text(json.dumps(items.to_dict(transform_hrefs=False), indent=2) + "\n",
                             encoding="utf-8")
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


__all__ = ["format_rows", "item_row", "parse_bbox", "parse_datetime", "parse_query", "parse_url",
           "save_items", "search_items"]
