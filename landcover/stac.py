"""Scenes from STAC: an ItemCollection or Item JSON (a file or a URL) or a static catalog.

:class:`StacScenes` is a :class:`~landcover.scenes.SceneSource`. Each Landsat Collection 2 Level-2
item becomes the same :class:`~landcover.scenes.Scene` as the scene's folder would: its assets are
matched by file name against the sensor profile (``*_SR_B4.TIF`` is ``red`` ...), so the band
names, QA decoding and scaling are those of the local reader, whatever the catalogue calls its
assets (``red`` on Earth Search and the Planetary Computer, ``SR_B4`` elsewhere). From the item:

* the grid from ``proj:epsg``/``proj:code``, ``proj:transform`` and ``proj:shape`` (of the item or
  of the band assets) when present, so planning opens no file; else from the COG headers;
* scale and offset from the assets' ``raster:bands`` when present, else the MTL's or the
  profile's;
* remote hrefs are read through GDAL (``/vsicurl/`` for http(s), ``/vsis3/`` for ``s3://``) with
  the options of :mod:`landcover.gdalio`; an optional ``signer`` (a callable on hrefs, such as
  ``planetary_computer.sign``) is applied first.

Items of other collections than Landsat Collection 2 Level-2 are refused, naming the collection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from landcover.errors import SceneNotFoundError, StacError
from landcover.grid import Grid, crs_string
from landcover.profiles import Profile, resolve_profiles
from landcover.scenes import Scene, _Container, _match, _open_scene, unique_scenes

log = logging.getLogger(__name__)

COLLECTIONS = ("landsat-c2-l2", "landsat-c2l2-sr", "landsat-c2l2-st", "landsat-c2l2_sr",
               "landsat-8-c2-l2", "landsat-9-c2-l2")
"""Collection IDs of Landsat C2 L2 in the public catalogues (USGS, Earth Search, Planetary
Computer); items without a collection are accepted when their assets match a profile."""


def is_stac(path: str) -> bool:
    """Whether a SCENES argument names a STAC document (a ``.json`` file or an http(s) URL)."""
    text = str(path)
    return text.lower().endswith(".json") or text.startswith(("http://", "https://"))


def gdal_href(href: str, signer: Callable[[str], str] | None = None) -> str:
    """The path GDAL opens for an asset href (signed first when a signer is given)."""
    if signer is not None and href.startswith(("http://", "https://")):
        href = signer(href)
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("file://"):
        return href[7:]
    return href


def read_href(href: str) -> bytes:
    """Bytes of a small document (MTL, JSON) at a local path or http(s) URL."""
    if href.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(href, timeout=60) as response:
                return response.read()
        except OSError as exc:
            raise StacError(f"{href}: cannot download ({exc})") from None
    try:
        return Path(href.removeprefix("file://")).read_bytes()
    except OSError as exc:
        raise StacError(f"{href}: cannot read ({exc.strerror})") from None


class _Assets(_Container):
    """An item's assets as the files of a scene container (names = the hrefs' file names)."""

    def __init__(self, item, signer):
        self.item_id = item.id
        self.hrefs, self.assets = {}, {}
        for asset in item.assets.values():
            href = asset.get_absolute_href() or asset.href
            name = _basename(href)
            if name not in self.hrefs:
                self.hrefs[name], self.assets[name] = href, asset
        super().__init__(Path(item.id), sorted(self.hrefs), archive=False)
        self.signer = signer

    def gdal_path(self, name: str) -> str:
        return gdal_href(self.hrefs[name], self.signer)

    def read_bytes(self, name: str) -> bytes:
        href = self.hrefs[name]
        if self.signer is not None and href.startswith(("http://", "https://")):
            href = self.signer(href)
        return read_href(href)


def _proj(item, asset) -> tuple | None:
    """``(crs, transform, shape)`` from the projection extension of a band asset or the item."""
    for fields in (asset.extra_fields, item.properties):
        code = fields.get("proj:code") or (f"EPSG:{fields['proj:epsg']}"
                                           if fields.get("proj:epsg") else None)
        transform, shape = fields.get("proj:transform"), fields.get("proj:shape")
        if code and transform and shape:
            return code, tuple(float(v) for v in transform[:6]), tuple(int(v) for v in shape)
    return None


def item_scene(item, profiles: Sequence[Profile], signer=None, href: str | None = None) -> Scene:
    """The :class:`Scene` of one STAC item; ``href`` names it (default its self link)."""
    collection = item.collection_id
    if collection is not None and collection not in COLLECTIONS:
        raise StacError(f"{item.id}: an item of the collection {collection!r}; landcover reads "
                        f"Landsat Collection 2 Level-2 ({', '.join(COLLECTIONS[:3])} ...)")
    assets = _Assets(item, signer)
    matched = _match(profiles, assets)
    if matched is None:
        raise StacError(f"{item.id}: no asset is a Landsat band file that a profile reads "
                        f"(assets: {', '.join(sorted(item.assets))})")
    profile, found = matched
    red = next((a for a in item.assets.values() if "reflectance" in (a.roles or [])),
               next(iter(item.assets.values())))
    grid, proj = None, _proj(item, red)
    if proj is not None:
        code, transform, (height, width) = proj
        grid = Grid(crs_string(code), transform, width, height)
    scene = _open_scene(assets, profile, found, grid=grid)
    scale, offset = dict(scene.scale), dict(scene.offset)
    for band, path in scene.bands.items():
        asset = assets.assets.get(_basename(path))
        bands = (asset.extra_fields.get("raster:bands") or [{}]) if asset is not None else [{}]
        if "scale" in bands[0]:
            scale[band] = float(bands[0]["scale"])
            offset[band] = float(bands[0].get("offset", 0.0))
    href = href or item.get_self_href() or item.id
    return dataclasses.replace(scene, source=href, scale=scale, offset=offset,
                               attrs={**scene.attrs, "stac_item": item.id, "stac_href": href,
                                      "stac_collection": collection})


def _basename(gdal_path: str) -> str:
    return os.path.basename(gdal_path.split("?")[0])


def read_items(href: str) -> list:
    """``(item, href naming it)`` of every item of an ItemCollection (``FILE#ID``), an Item, or a
    static Catalog/Collection (recursively)."""
    import json

    import pystac

    data = read_href(str(href))
    try:
        doc = json.loads(data)
    except ValueError:
        raise StacError(f"{href}: not a JSON document") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    try:
        if kind == "FeatureCollection":
            collection = pystac.ItemCollection.from_dict(doc, preserve_dict=False)
            items = list(collection.items)
            out = []
            for item in items:  # relative asset hrefs are relative to the document
                if item.get_self_href() is None:
                    item.set_self_href(_absolute(str(href)))
                    out.append((item, f"{_absolute(str(href))}#{item.id}"))
                else:
                    out.append((item, item.get_self_href()))
            return out
        if kind == "Feature":
            item = pystac.Item.from_dict(doc)
            item.set_self_href(_absolute(str(href)))
            return [(item, item.get_self_href())]
        if kind in ("Catalog", "Collection"):
            catalog = pystac.read_file(_absolute(str(href)))
            return [(item, item.get_self_href()) for item in catalog.get_items(recursive=True)]
    except (pystac.STACError, KeyError, TypeError, ValueError) as exc:
        raise StacError(f"{href}: not a valid STAC document ({exc})") from None
    raise StacError(f"{href}: a JSON document, but not a STAC ItemCollection, Item or Catalog")


def _absolute(href: str) -> str:
    return href if "://" in href else str(Path(href).absolute())


@dataclass(frozen=True)
class StacScenes:
    """Scenes of STAC documents (ItemCollection/Item/Catalog files or URLs)."""

    hrefs: tuple[str, ...]
    profile: str | Profile | tuple[Profile, ...] = "auto"
    signer: Callable[[str], str] | None = None

    def scenes(self) -> list[Scene]:
        profiles = resolve_profiles(self.profile)
        scenes = []
        for href in self.hrefs:
            items = read_items(href)
            if not items:
                raise SceneNotFoundError(f"{href}: no items")
            scenes += [item_scene(item, profiles, self.signer, at) for item, at in items]
        return unique_scenes(scenes)


def signer_of(spec: str | None) -> Callable[[str], str] | None:
    """``scenes.stac.signer``: ``none``, ``planetary_computer`` (its ``sign``), or
    ``module:function``."""
    if not spec or spec == "none":
        return None
    import importlib

    module, _, name = ("planetary_computer:sign" if spec == "planetary_computer"
                       else spec).partition(":")
    try:
        return getattr(importlib.import_module(module), name or "sign")
    except (ImportError, AttributeError) as exc:
        raise StacError(f"scenes.stac.signer: cannot import {spec} ({exc}); install it "
                        "(pip install planetary-computer) or choose none") from None
