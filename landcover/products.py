"""The files of a map run: the map, its legend, style and STAC item, the optional probabilities
and quicklook, named from the map's path (``landcover classify`` and ``landcover smooth``)."""

from __future__ import annotations

from pathlib import Path

from landcover.catalog import item_path
from landcover.errors import UsageError


def output_paths(out: str | Path, probabilities: bool, quicklook: bool) -> dict[str, Path]:
    """The files a run writes: the map, its legend (GDAL category names, ``MAP.tif.aux.xml``), its
    QGIS style, its STAC item (``MAP.stac.json``, :mod:`landcover.catalog`), and optional
    probabilities/quicklook."""
    out = Path(out).absolute()
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"{out.name}: the classification is a GeoTIFF; give a name ending in "
                         ".tif", flag="--out")
    paths = {"map": out, "legend": out.with_name(out.name + ".aux.xml"),
             "style": out.with_suffix(".qml"), "item": item_path(out)}
    if probabilities:
        paths["probabilities"] = out.with_name(f"{out.stem}_probabilities.tif")
    if quicklook:
        paths["quicklook"] = out.with_name(f"{out.stem}_quicklook.png")
    return paths
