"""Landsat MTL metadata in its three forms: ODL text (``_MTL.txt``), JSON and XML.

All three parse to the same nested ``dict``: ``{"LANDSAT_METADATA_FILE": {"PRODUCT_CONTENTS": {...}}}``
(Collection 1 and pre-collection text files use ``L1_METADATA_FILE`` as the root group; the oldest
pre-collection files have other keys, e.g. ``LMAX_BAND1`` / ``QCALMAX_BAND1`` instead of
``RADIOMETRIC_RESCALING``). Values stay strings; use :func:`mtl_get` with a converter to read one.
Text after the ``END`` line is ignored, and NUL bytes that pad a file after ``END`` are dropped.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

from landcover.errors import MetadataError


def parse_odl(text: str) -> dict:
    """Parse USGS ODL text (``GROUP = X`` / ``KEY = VALUE`` / ``END_GROUP = X`` / ``END``).

    Parsing stops at the ``END`` line; blank lines and NUL padding are skipped.
    """
    root: dict = {}
    stack = [root]
    names: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().strip("\x00").strip()
        if line == "END":
            break
        if not line:
            continue
        if "=" not in line:
            raise ValueError(f"line {lineno}: expected KEY = VALUE, got {line[:40]!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if key == "GROUP":
            group: dict = {}
            stack[-1][value] = group
            stack.append(group)
            names.append(value)
        elif key == "END_GROUP":
            if not names or names[-1] != value:
                raise ValueError(f"line {lineno}: END_GROUP = {value} closes no open group")
            stack.pop()
            names.pop()
        else:
            stack[-1][key] = value.strip('"')
    if names:
        raise ValueError(f"group {names[-1]} is never closed (file truncated?)")
    if not root:
        raise ValueError("no KEY = VALUE lines")
    return root


def _xml_to_dict(elem: ET.Element):
    children = list(elem)
    if not children:
        return (elem.text or "").strip()
    return {child.tag: _xml_to_dict(child) for child in children}


def parse_mtl(data: bytes, name: str) -> dict:
    """Parse MTL bytes; the format is taken from ``name``'s suffix (.txt, .json, .xml).

    Raises:
        MetadataError: the content cannot be parsed; the message names ``name``.
    """
    lower = name.lower()
    try:
        text = data.rstrip(b"\x00 \t\r\n").decode("utf-8")
        if lower.endswith(".json"):
            parsed = json.loads(text)
        elif lower.endswith(".xml"):
            root = ET.fromstring(text)
            parsed = {root.tag: _xml_to_dict(root)}
        else:
            parsed = parse_odl(text)
        if not isinstance(parsed, dict) or not parsed:
            raise ValueError("empty document")
    except (ValueError, ET.ParseError, UnicodeDecodeError) as exc:
        raise MetadataError(
            f"{name}: cannot parse Landsat metadata ({exc}); re-download the scene or remove the "
            "broken MTL file"
        ) from None
    return parsed


def mtl_get(mtl: dict, key: str, convert: Callable = str, *, group: str | None = None,
            default=None):
    """Find ``key`` anywhere in the nested MTL (inside ``group`` if given) and convert it.

    Returns ``default`` when the key (or group) is absent.
    """
    def search(node, in_group: bool):
        if not isinstance(node, dict):
            return None
        if in_group and key in node and not isinstance(node[key], dict):
            return node[key]
        for name, child in node.items():
            if isinstance(child, dict):
                found = search(child, in_group or name == group)
                if found is not None:
                    return found
        return None

    value = search(mtl, group is None)
    if value is None:
        return default
    try:
        return convert(value)
    except (TypeError, ValueError):
        return default
