"""STAC for the scenes: reading STAC documents as scenes, and searching a STAC API for them.

* :mod:`landcover.stac.items`: ItemCollections, Items and static catalogs (files or URLs) as the
  same :class:`~landcover.scenes.Scene` objects as the scenes' folders (:class:`StacScenes`, a
  :class:`~landcover.scenes.SceneSource`), with remote documents not trusted;
* :mod:`landcover.stac.search`: ``landcover search``, the items of a STAC API collection.

The map's own STAC item is :mod:`landcover.catalog`.
"""

from __future__ import annotations

from landcover.stac.items import (
    COLLECTIONS,
    StacScenes,
    gdal_href,
    is_stac,
    is_url,
    item_scene,
    read_href,
    read_items,
    signer_of,
)

__all__ = ["COLLECTIONS", "StacScenes", "gdal_href", "is_stac", "is_url", "item_scene",
           "read_href", "read_items", "signer_of"]
