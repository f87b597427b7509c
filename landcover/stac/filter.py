"""STAC API item search over a list of items, as a server does it: ``collections``, ``ids``,
``bbox``, ``datetime`` (an instant or an interval, open ends ``..``), ``query`` (the query
extension's comparisons) and paging (``limit``, ``token``); used by :mod:`landcover.devserver`."""

from __future__ import annotations

import datetime as dt
import json
import math

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000

class BadRequest(ValueError):
    """A search parameter the server cannot use (HTTP 400)."""


def _instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _interval(text: str | None):
    if not text:
        return None
    try:
        if "/" not in text:
            t = _instant(text)
            return t, t
        a, b = text.split("/", 1)
        return (None if a in ("", "..") else _instant(a)), (None if b in ("", "..") else
                                                            _instant(b))
    except ValueError:
        raise BadRequest(f"datetime {text!r}: use an RFC 3339 instant or interval A/B "
                         "(an end may be '..')") from None


def _bbox(value):
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        box = [float(v) for v in parts]
    except (TypeError, ValueError):
        raise BadRequest(f"bbox {value!r}: give 4 numbers W,S,E,N") from None
    if len(box) == 6:
        box = [box[0], box[1], box[3], box[4]]
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise BadRequest(f"bbox {value!r}: give 4 numbers W,S,E,N")
    return box


def _names(value) -> list[str] | None:
    if value is None:
        return None
    return [v for v in (value.split(",") if isinstance(value, str) else value) if v]


_OPS = {"eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "in": lambda a, b: a in b}


def _query(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequest("query: give a JSON object {property: {op: value}}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise BadRequest("query: give a JSON object {property: {op: value}}")
    for prop, tests in value.items():
        for op in tests:
            if op not in _OPS:
                raise BadRequest(f"query {prop}: operator {op!r} is not one of "
                                 f"{', '.join(_OPS)}")
    return value


def search(items: list[dict], params: dict) -> tuple[list[dict], int, int]:
    """The items matching the search ``params`` (already parsed JSON or query-string values),
    the page of them, and the offset of the next page (-1 when none)."""
    if params.get("intersects") is not None:
        raise BadRequest("intersects is not supported by this development server; use bbox")
    collections, ids = _names(params.get("collections")), _names(params.get("ids"))
    box, interval, query = _bbox(params.get("bbox")), _interval(params.get("datetime")), \
        _query(params.get("query"))
    try:
        limit = int(params.get("limit") or DEFAULT_LIMIT)
        start = int(params.get("token") or 0)
    except (TypeError, ValueError):
        raise BadRequest("limit and token must be integers") from None
    if not 1 <= limit <= MAX_LIMIT or start < 0:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT} and token >= 0")
    found = []
    for it in items:
        if collections is not None and it["collection"] not in collections:
            continue
        if ids is not None and it["id"] not in ids:
            continue
        b = it.get("bbox")
        if box is not None and (not b or b[0] > box[2] or b[2] < box[0] or b[1] > box[3]
                                or b[3] < box[1]):
            continue
        if interval is not None:
            when = it["properties"].get("datetime")
            if when is None:
                continue
            t = _instant(when)
            if (interval[0] is not None and t < interval[0]) or \
                    (interval[1] is not None and t > interval[1]):
                continue
        if not all(prop in it["properties"] and all(
                _safe(_OPS[op], it["properties"][prop], v) for op, v in tests.items())
                for prop, tests in query.items()):
            continue
        found.append(it)
    page = found[start:start + limit]
    return found, page, (start + limit if start + limit < len(found) else -1)


def _safe(op, a, b) -> bool:
    try:
        return bool(op(a, b))
    except TypeError:
        return False


