"""Map products, named and opened in one place: the files of a map run (the map, its legend,
style and STAC item, the optional probabilities and quicklook, named from the map's path:
``landcover classify`` and ``landcover smooth``), and the opening and checking of a class map
(:func:`open_map`, its ``LANDCOVER_CLASSES`` class table: :func:`resolve_classes`,
:func:`map_with_classes`) and of a probability file (:func:`open_probabilities`), for
``evaluate``, ``smooth``, ``sample`` and ``change``."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from landcover.catalog import item_path
from landcover.classes import ClassTable, class_table_from_tag, load_class_table
from landcover.contract import NODATA, PROBABILITY_SCALE, TAG_CLASSES, TAG_PRODUCT
from landcover.errors import ClassTableError, RasterReadError, UsageError
from landcover.gdalio import open_raster
from landcover.grid import Grid, pixel_area_m2

log = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------------------- the map
@dataclass(frozen=True)
class ClassMap:
    """A class map on disk: its grid, nodata values, pixel area and the class table of its tag."""

    path: str
    grid: Grid
    nodata: tuple[int, ...]
    pixel_area_m2: float | None
    table: ClassTable | None  # from the LANDCOVER_CLASSES tag; None when absent


def open_map(path: str | Path) -> ClassMap:
    """Open a class map (band 1 uint8 codes) and read its class table tag.

    Raises:
        RasterReadError: no such file, not a raster, not uint8, or without a CRS.
        ClassTableError: the ``LANDCOVER_CLASSES`` tag is not a valid class table.
    """
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.exists():
        raise RasterReadError(f"{path}: no such map file; pass the GeoTIFF written by "
                              "'landcover classify'")
    try:
        with open_raster(path) as src:
            dtype, count, crs, transform = src.dtypes[0], src.count, src.crs, src.transform
            width, height, nodata = src.width, src.height, src.nodata
            tag = src.tags().get(TAG_CLASSES)
            product = src.tags().get(TAG_PRODUCT)
    except RasterioIOError as exc:
        message = " ".join(str(exc).split())
        raise RasterReadError(f"{path}: cannot open the map ({message}); pass a GeoTIFF class "
                              "map") from None
    if product == "probabilities":
        raise RasterReadError(f"{path}: a probabilities raster (one band per class), not a class "
                              "map; pass the map written beside it by 'landcover classify'")
    if dtype != "uint8":
        raise RasterReadError(f"{path}: band 1 is {dtype}, not a class map of uint8 codes; pass "
                              "the map written by 'landcover classify'")
    if crs is None:
        raise RasterReadError(f"{path}: the map has no CRS, so the reference cannot be placed on "
                              "it; save it with a CRS and transform")
    if count > 1:
        log.warning("%s: %d bands; band 1 holds the class codes", path, count)
    values = {NODATA}
    if nodata is not None and not math.isnan(nodata) and nodata != NODATA:
        log.info("%s: nodata %g and %d are both left out", path, nodata, NODATA)
        values.add(int(nodata))
    table = None
    if tag:
        try:
            table = class_table_from_tag(tag, path)
        except ClassTableError as exc:
            exc.hint = "pass --classes classes.yaml"
            raise
    return ClassMap(str(path), Grid.from_rasterio(crs, transform, width, height),
                    tuple(sorted(values)), pixel_area_m2(crs, transform), table)


def resolve_classes(cmap: ClassMap, classes: str | Path | None) -> tuple[ClassTable, str]:
    """The class table: ``--classes`` when given (it wins over the tag), else the map's tag."""
    if classes is not None:
        if not Path(classes).is_file():
            raise ClassTableError(f"{classes}: no such file", flag="--classes")
        if cmap.table is not None:
            log.info("--classes %s replaces the class table of the map's %s tag", classes,
                     TAG_CLASSES)
        return load_class_table(classes), str(classes)
    if cmap.table is None:
        raise ClassTableError(f"{cmap.path}: the map has no {TAG_CLASSES} tag (it was not written "
                              "by 'landcover classify'), so its class codes have no names",
                              hint="pass --classes classes.yaml to name them")
    return cmap.table, f"{TAG_CLASSES} tag"


def map_with_classes(path: str | Path):
    """``(ClassMap, ClassTable)`` of a map of classify, for commands without ``--classes``: a map
    without a valid class table is refused with what to pass instead."""
    try:
        cmap = open_map(path)
        table, _ = resolve_classes(cmap, None)
    except ClassTableError as exc:
        exc.hint = ("pass a map written by 'landcover classify' (its LANDCOVER_CLASSES tag names "
                    "the classes), or check it with 'landcover evaluate --classes'")
        raise
    return cmap, table


# -------------------------------------------------------------------------- probabilities
@dataclass(frozen=True)
class ProbabilityFile:
    """A probability GeoTIFF written by classify: grid, storage, classes and uncertainty kind."""

    path: str
    grid: Grid
    dtype: str
    scale: int
    nodata: int
    table: ClassTable
    uncertainty: str
    tags: dict


def open_probabilities(path: str | Path) -> ProbabilityFile:
    """Open and check a probability file (K class bands + 1 uncertainty band, class tag).

    Raises:
        RasterReadError: missing, unreadable, or not a probability file of classify.
        ClassTableError: the class tag is missing or invalid.
    """
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise RasterReadError(f"{path}: no such file; pass the OUT_probabilities.tif written by "
                              "'landcover classify --probabilities'")
    try:
        with open_raster(path) as src:
            tags, dtype, count = src.tags(), src.dtypes[0], src.count
            grid = Grid.from_rasterio(src.crs, src.transform, src.width, src.height)
            kind = src.tags(count).get("UNCERTAINTY", "entropy")
    except RasterioIOError as exc:
        raise RasterReadError(f"{path}: cannot open ({' '.join(str(exc).split())})") from None
    if dtype not in PROBABILITY_SCALE:
        raise RasterReadError(f"{path}: bands are {dtype}; a probability file of classify is "
                              f"{' or '.join(PROBABILITY_SCALE)}")
    if TAG_CLASSES not in tags:
        raise ClassTableError(f"{path}: no {TAG_CLASSES} tag, so the bands have no classes; pass "
                              "the probabilities written by 'landcover classify --probabilities'")
    table = class_table_from_tag(tags[TAG_CLASSES], path)
    if count != len(table) + 1:
        raise RasterReadError(f"{path}: {count} bands for {len(table)} classes; a probability file "
                              "has one band per class and an uncertainty band")
    scale, nodata = PROBABILITY_SCALE[dtype]
    return ProbabilityFile(str(path), grid, dtype, scale, nodata, table, kind, tags)
