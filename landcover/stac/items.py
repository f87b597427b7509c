"""Scenes from STAC: an ItemCollection or Item JSON (a file or a URL) or a static catalog.

:class:`StacScenes` is a :class:`~landcover.scenes.SceneSource`. Each Landsat Collection 2 Level-2
item becomes the same :class:`~landcover.scenes.Scene` as the scene's folder would: its assets are
matched by file name against the sensor profile (``*_SR_B4.TIF`` is ``red`` ...), so the band
names, QA decoding and scaling are those of the local reader, whatever the catalogue calls its
assets (``red`` on Earth Search and the Planetary Computer, ``SR_B4`` elsewhere). From the item:

* the grid from ``proj:epsg``/``proj:code``, ``proj:transform`` and ``proj:shape`` (of the item or
  of the band assets) when present, checked against the header of the scene's first band file
  (one header read per item; the other bands are not opened while planning); else from the COG
  headers of every band, as for a folder;
* scale and offset from the assets' ``raster:bands`` when present, else the MTL's or the
  profile's;
* remote hrefs are read through GDAL (``/vsicurl/`` for http(s), ``/vsis3/`` for ``s3://``) with
  the options of :mod:`landcover.gdalio`; an optional ``signer`` (a callable on hrefs, such as
  ``planetary_computer.sign``) is applied first.

Items of other collections than Landsat Collection 2 Level-2 are refused, naming the collection.

**Remote documents are not trusted.** Metadata is a claim about the files, and the files win:

* ``proj:*`` must be well formed (a CRS, six finite numbers with a non-zero pixel size, a
  positive ``[height, width]``), else a :class:`~landcover.errors.StacError` naming the item. When
  the band file's header is georeferenced and its grid differs from the item's (a down-sampled
  copy of a product, a transform 1000 km off, a shape of 2,000,000^2 on 256^2 files), the scene
  is read on the header's grid - the grid GDAL reads the pixels on, the one the scene's folder
  would give - and a warning names the item, the asset and the difference. A header without
  georeferencing keeps the item's grid when the sizes agree and is refused otherwise.
* ``raster:bands`` scale and offset must be finite numbers.
* A document read from an http(s) URL may only name http(s) or ``s3://`` assets and links: a
  ``file://`` or local path in it is refused, never read. Static catalogs are walked
  breadth-first, each document once (a catalog that links to itself ends), at most
  :data:`MAX_DOCUMENTS` of them; each download waits :data:`TIMEOUT` s at most and holds at most
  :data:`MAX_BYTES`.
* Malformed documents (no id, no or empty assets, odd types, a body cut short) are one
  :class:`~landcover.errors.StacError` naming the document or item, never a traceback.
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
from landcover.grid import Grid, crs_string, same_crs
from landcover.profiles import Profile, resolve_profiles
from landcover.scene_files import Scene, SceneFiles, match_profile, open_scene, unique_scenes

log = logging.getLogger("landcover.stac")  # the name its warnings have always carried

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


TIMEOUT = 60.0
"""Seconds one download of a STAC document or MTL may wait for the server."""
MAX_BYTES = 512 << 20
"""The largest STAC document or MTL read (512 MiB)."""
MAX_DOCUMENTS = 10_000
"""Documents (catalogs, collections, items) read from one static catalog at most."""
REMOTE_SCHEMES = ("http://", "https://", "s3://")
"""What a document read from a URL may name (assets, links); anything else is a local file."""


def is_url(href) -> bool:
    return str(href).lower().startswith(("http://", "https://"))


def _opener():
    """urllib with redirects to http(s) only (its default also follows them to ftp)."""
    import urllib.error

    class Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not is_url(newurl):
                raise urllib.error.HTTPError(newurl, code, f"a redirect to {newurl[:80]!r}, not "
                                             "an http(s) URL", headers, fp)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(Redirects)


def read_href(href: str, *, remote_only: bool = False) -> bytes:
    """Bytes of a small document (MTL, JSON) at a local path or http(s) URL (at most
    :data:`MAX_BYTES`, waiting at most :data:`TIMEOUT` s). ``remote_only``: the href comes from
    a remote document, so a local path is refused, not read."""
    import http.client

    href = str(href)
    if is_url(href):
        try:
            with _opener().open(href, timeout=TIMEOUT) as response:
                data = response.read(MAX_BYTES + 1)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise StacError(f"{href}: cannot download ({reason})") from None
        if len(data) > MAX_BYTES:
            raise StacError(f"{href}: larger than {MAX_BYTES >> 20} MiB; not a STAC document or "
                            "MTL that landcover reads")
        return data
    if remote_only:
        raise StacError(f"{href}: named by a remote document, and not an http(s) URL; a remote "
                        "document may not point at local files")
    if href.lower().startswith("s3://"):
        raise StacError(f"{href}: landcover reads STAC documents and MTLs from local files or "
                        "http(s) URLs, not s3://")
    try:
        path = Path(href.removeprefix("file://"))
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            raise StacError(f"{href}: larger than {MAX_BYTES >> 20} MiB; not a STAC document or "
                            "MTL that landcover reads")
        return path.read_bytes()
    except OSError as exc:
        raise StacError(f"{href}: cannot read ({exc.strerror or exc})") from None


class _Assets(SceneFiles):
    """An item's assets as the files of a scene container (names = the hrefs' file names).
    ``remote``: the item comes from a remote document, so every asset must be remote too."""

    def __init__(self, item, signer, remote: bool = False):
        self.item_id = item.id
        self.hrefs, self.assets, self.keys = {}, {}, {}
        for key, asset in item.assets.items():
            href = asset.get_absolute_href() or asset.href
            if not isinstance(href, str) or not href:
                raise StacError(f"{item.id}: asset {key!r} has no href")
            if remote and not href.startswith(REMOTE_SCHEMES):  # as gdal_href spells them
                raise StacError(f"{item.id}: asset {key!r} points at {href[:120]!r}, not an "
                                "http(s) or s3:// URL; a remote document may not point at local "
                                "files")
            name = _basename(href)
            if name not in self.hrefs:
                self.hrefs[name], self.assets[name], self.keys[name] = href, asset, key
        super().__init__(Path(item.id), sorted(self.hrefs), archive=False)
        self.signer = signer
        self.remote = remote

    def gdal_path(self, name: str) -> str:
        return gdal_href(self.hrefs[name], self.signer)

    def read_bytes(self, name: str) -> bytes:
        href = self.hrefs[name]
        if self.signer is not None and is_url(href):
            href = self.signer(href)
        return read_href(href, remote_only=self.remote)


def _numbers(value, n: int) -> tuple[float, ...] | None:
    """``value`` as at least ``n`` finite numbers (the first ``n``), or None."""
    import math

    if not isinstance(value, (list, tuple)) or len(value) < n:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in value[:n]):
        return None
    return tuple(float(v) for v in value[:n])


def _proj(item, asset) -> tuple | None:
    """``(crs, transform, shape)`` from the projection extension of a band asset or the item;
    malformed values are a StacError naming the item."""
    for where, fields in (("asset", asset.extra_fields), ("item", item.properties)):
        epsg, code = fields.get("proj:epsg"), fields.get("proj:code")
        transform, shape = fields.get("proj:transform"), fields.get("proj:shape")
        if not ((code or epsg) and transform and shape):
            continue
        if code:
            if not isinstance(code, str):
                raise StacError(f"{item.id}: proj:code {code!r} of the {where} is not a string "
                                "such as EPSG:32633")
        elif isinstance(epsg, bool) or not isinstance(epsg, int) or epsg <= 0:
            raise StacError(f"{item.id}: proj:epsg {epsg!r} of the {where} is not an EPSG code")
        else:
            code = f"EPSG:{epsg}"
        values = _numbers(transform, 6)
        if values is None or values[0] == 0 or values[4] == 0:
            raise StacError(f"{item.id}: proj:transform {str(transform)[:80]} of the {where} is "
                            "not six finite numbers with a non-zero pixel size")
        if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise StacError(f"{item.id}: proj:shape {str(shape)[:80]} of the {where} is not "
                            "[height, width] in positive whole pixels")
        try:
            crs = crs_string(code)
        except Exception:  # noqa: BLE001 - pyproj/rasterio raise several kinds
            raise StacError(f"{item.id}: proj:code {code[:80]!r} of the {where} is not a CRS "
                            "that GDAL knows") from None
        return crs, values, (int(shape[0]), int(shape[1]))
    return None


def _header_grid(item_id: str, key: str, path: str, claimed: Grid) -> Grid:
    """The grid to read the scene on: ``claimed`` (from ``proj:*``) when the header of the band
    file at ``path`` agrees, else the header's (with a warning); a header without
    georeferencing keeps ``claimed`` when the sizes agree. Unreadable: a StacError naming the
    item and asset."""
    import math

    from rasterio.errors import RasterioError

    from landcover.gdalio import open_raster

    try:
        with open_raster(path) as src:
            georef = src.crs is not None and not src.transform.is_identity
            header = (Grid.from_rasterio(src.crs, src.transform, src.width, src.height)
                      if georef else None)
            size = (src.width, src.height)
    except RasterioError as exc:
        reason = " ".join(str(exc).split())[:160]
        raise StacError(f"{item_id}: asset {key!r} ({path}) cannot be opened ({reason})") \
            from None
    if header is None:
        if size != (claimed.width, claimed.height):
            raise StacError(f"{item_id}: asset {key!r} is {size[0]}x{size[1]} px without "
                            f"georeferencing, but proj:shape says {claimed.width}x"
                            f"{claimed.height}; the item does not describe its files")
        return claimed
    same = (size == (claimed.width, claimed.height) and same_crs(header.crs, claimed.crs)
            and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6 * max(header.res))
                    for a, b in zip(header.transform, claimed.transform)))
    if same:
        return claimed
    log.warning("%s: proj:* of the item (%s) does not match the header of asset %r (%s): %s; "
                "reading it on the header's grid", item_id, claimed.describe(), key,
                header.describe(), claimed.difference(header))
    return header


def _band_scaling(item_id: str, key: str, asset) -> tuple[float, float] | None:
    """``(scale, offset)`` of an asset's first ``raster:bands`` entry, None when it has none."""
    bands = asset.extra_fields.get("raster:bands")
    if bands is None:
        return None
    if not isinstance(bands, list) or (bands and not isinstance(bands[0], dict)):
        raise StacError(f"{item_id}: raster:bands of asset {key!r} is not a list of objects")
    if not bands or "scale" not in bands[0]:
        return None
    values = _numbers([bands[0]["scale"], bands[0].get("offset", 0.0)], 2)
    if values is None:
        raise StacError(f"{item_id}: raster:bands scale/offset of asset {key!r} "
                        f"({bands[0].get('scale')!r}, {bands[0].get('offset')!r}) are not "
                        "finite numbers")
    return values


def item_scene(item, profiles: Sequence[Profile], signer=None, href: str | None = None, *,
               remote: bool = False) -> Scene:
    """The :class:`Scene` of one STAC item; ``href`` names it (default its self link);
    ``remote``: it was read from a URL (its assets must be remote too)."""
    collection = item.collection_id
    if collection is not None and collection not in COLLECTIONS:
        raise StacError(f"{item.id}: an item of the collection {str(collection)[:80]!r}; "
                        f"landcover reads Landsat Collection 2 Level-2 "
                        f"({', '.join(COLLECTIONS[:3])} ...)")
    if not item.assets:
        raise StacError(f"{item.id}: the item has no assets (no files to read)")
    assets = _Assets(item, signer, remote)
    matched = match_profile(profiles, assets)
    if matched is None:
        raise StacError(f"{item.id}: no asset is a Landsat band file that a profile reads "
                        f"(assets: {', '.join(sorted(item.assets))})")
    profile, found = matched
    red = next((a for a in item.assets.values() if "reflectance" in (a.roles or [])),
               next(iter(item.assets.values())))
    grid, proj = None, _proj(item, red)
    if proj is not None:
        code, transform, (height, width) = proj
        grid = Grid(code, transform, width, height)
    scene = open_scene(assets, profile, found, grid=grid)
    if grid is not None:  # the claim against the first band's own header
        first = next(iter(scene.bands.values()))
        checked = _header_grid(item.id, assets.keys.get(_basename(first), _basename(first)),
                               first, grid)
        if checked is not grid:
            scene = dataclasses.replace(scene, grid=checked)
    scale, offset = dict(scene.scale), dict(scene.offset)
    for band, path in scene.bands.items():
        name = _basename(path)
        asset = assets.assets.get(name)
        scaling = _band_scaling(item.id, assets.keys.get(name), asset) if asset else None
        if scaling is not None:
            scale[band], offset[band] = scaling
    href = href or item.get_self_href() or item.id
    return dataclasses.replace(scene, source=href, scale=scale, offset=offset,
                               attrs={**scene.attrs, "stac_item": item.id, "stac_href": href,
                                      "stac_collection": collection})


def _basename(gdal_path: str) -> str:
    return os.path.basename(gdal_path.split("?")[0])


_ODD = (KeyError, TypeError, ValueError, AttributeError, IndexError)  # pystac on odd JSON


def _document(href: str, remote_only: bool) -> dict:
    import json

    data = read_href(href, remote_only=remote_only)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise StacError(f"{href}: not a JSON document (or cut short)") from None
    if not isinstance(doc, dict):
        raise StacError(f"{href}: a JSON {type(doc).__name__}, not a STAC ItemCollection, Item "
                        "or Catalog")
    return doc


def _join(base: str, href: str) -> str:
    """``href`` relative to the document at ``base`` (a URL or an absolute local path)."""
    from urllib.parse import urljoin

    if "://" in href or href.startswith("/"):
        return href
    if is_url(base):
        return urljoin(base, href)
    return str((Path(base.removeprefix("file://")).parent / href).resolve())


def _item(doc: dict, href: str, where: str):
    """A pystac Item from ``doc``; malformed: a StacError naming it and ``where`` it is."""
    import pystac

    name = doc.get("id")
    if not isinstance(name, str) or not name:
        raise StacError(f"{where}: an item without an id")
    try:
        item = pystac.Item.from_dict(doc, href=href, preserve_dict=False)
    except (pystac.STACError, pystac.STACTypeError, *_ODD) as exc:
        raise StacError(f"{where}: item {name[:80]!r} is not a valid STAC item "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    if not isinstance(doc.get("assets"), dict):
        raise StacError(f"{where}: item {name[:80]!r} has no assets (no files to read)")
    return item


def read_items(href: str) -> list:
    """``(item, href naming it)`` of every item of an ItemCollection (``FILE#ID``), an Item, or a
    static Catalog/Collection (its child and item links, breadth-first, each document once, at
    most :data:`MAX_DOCUMENTS`). A document read from a URL may link to URLs only."""
    href = str(href)
    remote = is_url(href)
    root = _absolute(href)
    doc = _document(root, False)
    kind = doc.get("type")
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise StacError(f"{href}: an ItemCollection without a list of features")
        out = []
        for index, feature in enumerate(features):
            if not isinstance(feature, dict):
                raise StacError(f"{href}: feature {index + 1} is not an object")
            where = f"{href}: feature {index + 1}"
            item = _item(feature, None, where)
            self_href = item.get_self_href()
            if self_href is None or (remote and not is_url(self_href)):
                # relative asset hrefs are relative to the document (set_self_href would
                # keep them pointing where the old self link said)
                item.remove_links("self")
                item.set_self_href(root)
                out.append((item, f"{root}#{item.id}"))
            else:
                out.append((item, self_href))
        return out
    if kind == "Feature":
        item = _item(doc, None, href)
        item.set_self_href(root)
        return [(item, root)]
    if kind in ("Catalog", "Collection"):
        return _walk(root, doc, remote)
    raise StacError(f"{href}: a JSON document, but not a STAC ItemCollection, Item or Catalog")


def _walk(root: str, doc: dict, remote: bool) -> list:
    """The items under a static catalog (see :func:`read_items`)."""
    from collections import deque

    seen, out = {root}, []
    queue = deque([(root, doc)])
    while queue:
        at, doc = queue.popleft()
        links = doc.get("links") or []
        if not isinstance(links, list):
            raise StacError(f"{at}: its links are not a list")
        for link in links:
            if not isinstance(link, dict) or link.get("rel") not in ("child", "item"):
                continue
            target = link.get("href")
            if not isinstance(target, str) or not target:
                raise StacError(f"{at}: a {link.get('rel')} link without an href")
            target = _join(at, target)
            if remote and not is_url(target):
                raise StacError(f"{at}: links to {target[:120]!r}, not an http(s) URL; a remote "
                                "catalog may not point at local files")
            if target.split("#")[0] in seen:
                continue  # a catalog that links to itself (or twice to one document)
            seen.add(target.split("#")[0])
            if len(seen) > MAX_DOCUMENTS:
                raise StacError(f"{root}: more than {MAX_DOCUMENTS} documents in the catalog")
            child = _document(target, remote)
            kind = child.get("type")
            if kind == "Feature":
                out.append((_item(child, target, target), target))
            elif kind in ("Catalog", "Collection"):
                queue.append((target, child))
            else:
                raise StacError(f"{target}: linked from {at}, but not a STAC Item or Catalog")
    return out


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
            scenes += [item_scene(item, profiles, self.signer, at, remote=is_url(href))
                       for item, at in items]
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
