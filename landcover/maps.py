"""Map products: class codes and probabilities -> GeoTIFF/COG, QGIS style, quicklook, tags.

Inference (:mod:`landcover.classify`) writes its results block by block into a Zarr store with an
array ``classes`` ``(H, W)`` uint8 (:data:`~landcover.contract.NODATA` where nothing was observed)
and, with probabilities, an array ``probabilities`` ``(K + 1, H, W)`` of quantised class
probabilities and an uncertainty band (see :func:`encode_probabilities`). This module turns that
store into the files users open:

* the map: a Cloud Optimized GeoTIFF (GDAL's COG driver: tiled, DEFLATE, internal overviews with
  nearest resampling) with a band description, ``CLASS_<code>`` names and a ``CLASSES`` JSON in the
  band metadata, and the dataset tags of :mod:`landcover.contract`; its colour table is in the
  legend below (a map written without one keeps a TIFF colour table of 256 entries);
* the probabilities: one band per class, ``p x scale`` with GDAL band scale ``1/scale``, and a last
  band of uncertainty; AVERAGE overviews;
* the legend in GDAL's own place, a PAM sidecar ``MAP.tif.aux.xml`` (:func:`write_legend`): the
  colour table and category names of the values ``0 .. max(code)`` and a thematic raster attribute
  table (value, class name, colour) of the classes. GDAL reads it with the map. QGIS 3.22 without
  the ``.qml`` lists one legend entry per colour-table entry, labelled by its category name: a TIFF
  colour table always has 256 entries (249 unused codes in the legend), so the map has none and the
  sidecar's table stops at the largest code (docs/maps.md says what QGIS reads);
* a QGIS ``.qml`` paletted style (QGIS loads a same-named ``.qml`` automatically);
* a quicklook PNG with map coordinates, a scale bar, the CRS, a legend of class names and area
  shares, and nodata drawn as a grey checkerboard (distinct from the page and from every class).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landcover import __version__
from landcover.bundle.meta import BundleMeta
from landcover.classes import ClassTable
from landcover.contract import (
    NODATA,
    PROBABILITY_SCALE,
    TAG_ARCHITECTURE,
    TAG_CLASSES,
    TAG_CONFIG,
    TAG_CREATED,
    TAG_DATES,
    TAG_MODEL,
    TAG_MODEL_HASH,
    TAG_PRODUCT,
    TAG_SCALE,
    TAG_SCENES,
    TAG_VERSION,
)
from landcover.gdalio import gdal_env, open_raster
from landcover.grid import Grid, pixel_area_m2
from landcover.outputs import remove

TIFF_BLOCK = 512


# ------------------------------------------------------------------------------- pixel products
def uncertainty(prob: np.ndarray, kind: str) -> np.ndarray:
    """``(h, w)`` in [0, 1]: normalised Shannon entropy, or the margin ``1 - (p1 - p2)``."""
    K = prob.shape[-1]
    if kind == "margin":
        if K < 2:
            return np.zeros(prob.shape[:-1], np.float32)
        top = np.sort(prob, axis=-1)[..., -2:]
        return (1.0 - (top[..., 1] - top[..., 0])).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(prob > 0, prob * np.log(prob), 0.0), axis=-1)
    return (ent / math.log(K) if K > 1 else np.zeros_like(ent)).astype(np.float32)


def encode_classes(prob: np.ndarray, observed: np.ndarray, codes: Sequence[int]):
    """``(class codes (h, w) uint8 with NODATA where not observed, class indices (h, w))`` of the
    most probable class of ``prob (h, w, K)``."""
    index = prob.argmax(axis=-1)
    out = np.asarray(codes, np.uint8)[index]
    out[~observed] = NODATA
    return out, index


def encode_probabilities(prob: np.ndarray, observed: np.ndarray, dtype: str,
                         kind: str) -> np.ndarray:
    """``(K + 1, h, w)`` stored values: probabilities x scale, then the uncertainty band; nodata
    where not observed (see :data:`~landcover.contract.PROBABILITY_SCALE`)."""
    scale, nodata = PROBABILITY_SCALE[dtype]
    layers = np.concatenate([np.moveaxis(prob, -1, 0), uncertainty(prob, kind)[None]])
    q = np.rint(layers * scale).astype(dtype)
    q[:, ~observed] = nodata
    return q


def class_areas(table: ClassTable, counts, grid: Grid) -> list[dict]:
    """Per class: code, name, pixels, share of the classified pixels, hectares (projected CRS)."""
    px_area = pixel_area_m2(grid.crs, grid.transform)
    total = int(np.sum(counts))
    rows = []
    for cl, n in zip(table.classes, counts):
        row = {"code": cl.code, "name": cl.name, "pixels": int(n),
               "share": round(float(n) / total, 6) if total else None}
        if px_area is not None:
            row["hectares"] = round(float(n) * px_area / 1e4, 2)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------ failed writes
FULL_DISK = 1 << 20  # bytes: with less free space than this, a failed write is a full disk


def write_failed(out: Path, exc: BaseException):
    """The :class:`~landcover.errors.OutputError` of a write that failed under ``out`` (GDAL,
    OGR and SQLite report a full disk as their own errors, without ``ENOSPC``): a full disk
    when the errno says so or less than :data:`FULL_DISK` is left, else the writer's message.
    The caller's :class:`~landcover.outputs.OutputSet` removes what was written."""
    import errno
    import shutil

    from landcover.errors import OutputError

    out = Path(out)
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        free = None
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < FULL_DISK):
        left = f" ({free / 1e6:.1f} MB left)" if free is not None else ""
        return OutputError(f"{out}: the disk is full{left}; the run stopped and left no output; "
                           "free some space or write elsewhere")
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return OutputError(f"{out}: cannot write ({detail}); the run stopped and left no output")


def write_errors() -> tuple:
    """The exceptions a failed write raises: OS errors, GDAL/rasterio and OGR/pyogrio errors."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    kinds = [OSError, RasterioError, CPLE_BaseError]
    try:
        from pyogrio.errors import DataLayerError, DataSourceError

        kinds += [DataLayerError, DataSourceError]
    except ImportError:  # pragma: no cover - pyogrio comes with geopandas
        pass
    return tuple(kinds)


@contextlib.contextmanager
def writing(out: Path):
    """Turn a failed write inside the block into :func:`write_failed`'s one-line error (the
    library's own errors pass through). Put it after the run's ``OutputSet`` in one ``with``, so
    that the output set then removes the temporaries."""
    from landcover.errors import LandcoverError

    try:
        yield
    except LandcoverError:
        raise
    except write_errors() as exc:
        raise write_failed(out, exc) from exc


# ------------------------------------------------------------------------------------------ tags
def map_tags(meta: BundleMeta, dates: Sequence[dt.date], scene_ids: Sequence[str], config: dict,
             bundle: str) -> dict:
    """Dataset tags of a map: product, version, time, model and its hash, dates, scenes, classes,
    the configuration that made it."""
    return {
        TAG_PRODUCT: "classification",
        TAG_VERSION: __version__,
        TAG_CREATED: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        TAG_MODEL: bundle,
        TAG_MODEL_HASH: meta.content_hash,
        TAG_ARCHITECTURE: meta.model_name,
        TAG_DATES: json.dumps([d.isoformat() for d in dates]),
        TAG_SCENES: json.dumps(list(scene_ids)),
        TAG_CLASSES: json.dumps([{"code": c["code"], "name": c["name"], "color": c["color"]}
                                 for c in meta.classes]),
        TAG_CONFIG: json.dumps(config),
    }


# -------------------------------------------------------------------------------------- GeoTIFFs
def tiff_block(width: int, height: int) -> int:
    """Tile size: 512, smaller for small maps so that they still get internal overviews."""
    size = TIFF_BLOCK
    while size > 64 and max(width, height) <= size:
        size //= 2
    return size


def _cog(src: Path, dst: Path, resampling: str, block: int) -> None:
    from rasterio.shutil import copy

    with gdal_env():
        copy(str(src), str(dst), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=block,
             OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")


def _write_blocks(store: str, name: str, grid: Grid, windows, path: Path, count: int,
                  dtype: str, nodata, decorate) -> None:
    """Stream a store array into a tiled GeoTIFF, block by block (``windows`` = the blocks'
    ``(r0, r1, c0, c1)``), then convert it to a COG."""
    import zarr
    from rasterio.windows import Window

    arr = zarr.open_group(store, mode="r")[name]
    plain = path.with_name(path.name + ".plain.tif")
    block = tiff_block(grid.width, grid.height)
    try:
        with open_raster(plain, "w", driver="GTiff", width=grid.width, height=grid.height,
                           count=count, dtype=dtype, crs=grid.crs, transform=grid.affine,
                           nodata=nodata, tiled=True, blockxsize=block, blockysize=block,
                           compress="deflate", BIGTIFF="IF_SAFER") as dst:
            for r0, r1, c0, c1 in windows:
                window = Window(c0, r0, c1 - c0, r1 - r0)
                if count == 1:
                    dst.write(arr[r0:r1, c0:c1], 1, window=window)
                else:
                    dst.write(arr[:, r0:r1, c0:c1], window=window)
            decorate(dst)
        _cog(plain, path, "NEAREST" if name == "classes" else "AVERAGE", block)
    finally:
        remove(plain)


def colour_table(table: ClassTable, size: int = 256) -> dict[int, tuple[int, int, int, int]]:
    """``{value: (r, g, b, a)}`` for the values ``0 .. size - 1``: each class's colour, every
    other value transparent."""
    cmap = {value: (0, 0, 0, 0) for value in range(size)}
    for cl in table.classes:
        cmap[cl.code] = (*cl.rgb, 255)
    return cmap


def write_map(store: str, grid: Grid, windows, table: ClassTable, path: Path,
              tags: dict, legend: Path | None = None) -> None:
    """The class map COG from the store's ``classes`` array; with ``legend``, the PAM sidecar of
    colours and class names there (:func:`write_legend`; the caller renames it to
    ``MAP.tif.aux.xml``) and no colour table in the TIFF (QGIS would list its 256 entries);
    without, a TIFF colour table."""
    def decorate(dst):
        if legend is None:
            dst.write_colormap(1, colour_table(table))
        dst.set_band_description(1, "land cover class")
        dst.update_tags(**tags)
        dst.update_tags(1, CLASSES=json.dumps({str(cl.code): cl.name for cl in table.classes}),
                        **{f"CLASS_{cl.code}": cl.name for cl in table.classes},
                        NODATA_MEANING="no valid observation on any date")

    _write_blocks(store, "classes", grid, windows, path, 1, "uint8", NODATA, decorate)
    if legend is not None:
        write_legend(table, legend)


def write_probabilities(store: str, grid: Grid, windows, table: ClassTable, path: Path,
                        tags: dict, dtype: str, kind: str) -> None:
    """The probability COG (one band per class, then uncertainty ``kind``) from the store."""
    scale, nodata = PROBABILITY_SCALE[dtype]

    def decorate(dst):
        K = len(table)
        for b, cl in enumerate(table.classes, start=1):
            dst.set_band_description(b, f"p({cl.name})")
            dst.update_tags(b, CLASS_CODE=str(cl.code), CLASS_NAME=cl.name)
        dst.set_band_description(K + 1, f"uncertainty ({kind})")
        dst.update_tags(K + 1, UNCERTAINTY=kind,
                        MEANING="normalised Shannon entropy of the class probabilities (0 certain, "
                                "1 uniform)" if kind == "entropy" else
                                "1 - (largest - second largest probability)")
        dst.scales = [1.0 / scale] * (K + 1)
        dst.offsets = [0.0] * (K + 1)
        dst.update_tags(**{**tags, TAG_PRODUCT: "probabilities",
                           TAG_SCALE: f"value / {scale} = probability; {nodata} = nodata "
                                      "(no valid observation)"})

    _write_blocks(store, "probabilities", grid, windows, path, len(table) + 1, dtype, nodata,
                  decorate)


def legend_xml(table: ClassTable, nodata: int | None = NODATA) -> str:
    """The PAM ``.aux.xml`` of a class map: a palette colour interpretation, a colour table and
    GDAL category names for the values ``0..max(code)`` (transparent and empty for values that
    are not a class; the nodata value lies beyond), and a thematic raster attribute table with one
    row per class (``Value``, ``Class_Name``, ``Red``, ``Green``, ``Blue``, ``Alpha``).

    GDAL reads the colour table from here only while the TIFF has none of its own (a TIFF colour
    table has 256 entries, and QGIS 3.22 lists each as a legend entry): :func:`write_map` writes
    the map without one when it writes this legend."""
    import xml.etree.ElementTree as ET

    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    names = {cl.code: cl.name for cl in table.classes}
    size = max(names) + 1
    ET.SubElement(band, "ColorInterp").text = "Palette"
    cats = ET.SubElement(band, "CategoryNames")
    for value in range(size):
        ET.SubElement(cats, "Category").text = names.get(value, "")
    colours = ET.SubElement(band, "ColorTable")
    for value, (r, g, b, a) in colour_table(table, size).items():
        ET.SubElement(colours, "Entry", c1=str(r), c2=str(g), c3=str(b), c4=str(a))
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    # GDAL field types: 0 integer, 2 string; usages: 5 min-max (the value), 2 name, 6-9 RGBA
    fields = (("Value", 0, 5), ("Class_Name", 2, 2), ("Red", 0, 6), ("Green", 0, 7),
              ("Blue", 0, 8), ("Alpha", 0, 9))
    for i, (name, ftype, usage) in enumerate(fields):
        f = ET.SubElement(rat, "FieldDefn", index=str(i))
        ET.SubElement(f, "Name").text = name
        ET.SubElement(f, "Type").text = str(ftype)
        ET.SubElement(f, "Usage").text = str(usage)
    for i, cl in enumerate(table.classes):
        row = ET.SubElement(rat, "Row", index=str(i))
        for v in (cl.code, cl.name, *cl.rgb, 255):
            ET.SubElement(row, "F").text = str(v)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_legend(table: ClassTable, path: Path) -> None:
    """Write :func:`legend_xml` to ``path`` (the map's ``MAP.tif.aux.xml``, or a temporary name
    that is renamed to it together with the map)."""
    Path(path).write_text(legend_xml(table), encoding="utf-8")


def read_category_names(map_path: Path) -> dict[int, str]:
    """The category names GDAL reads with a map (from its ``.aux.xml``): ``{value: name}`` of the
    non-empty ones; ``{}`` without a sidecar."""
    import xml.etree.ElementTree as ET

    aux = Path(str(map_path) + ".aux.xml")
    if not aux.is_file():
        return {}
    cats = ET.parse(aux).getroot().find("PAMRasterBand[@band='1']/CategoryNames")
    if cats is None:
        return {}
    return {i: c.text for i, c in enumerate(cats.findall("Category")) if c.text}


def write_style(table: ClassTable, path: Path) -> None:
    """A QGIS style: a paletted renderer with one entry (colour, class name) per class code."""
    import xml.etree.ElementTree as ET

    root = ET.Element("qgis", version="3.28.0", styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(pipe, "rasterrenderer", type="paletted", band="1", opacity="1",
                             alphaBand="-1", nodataColor="")
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for cl in table.classes:
        ET.SubElement(palette, "paletteEntry", value=str(cl.code), color=cl.color.lower(),
                      label=cl.name, alpha="255")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    text = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + \
        ET.tostring(root, encoding="unicode") + "\n"
    path.write_text(text, encoding="utf-8")


NODATA_CHECKER = ((208, 208, 208), (240, 240, 240))  # nodata in the quicklook: a grey checkerboard


def nice_length(span: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k) of about a fifth of ``span`` (> 0)."""
    target = span / 5
    k = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10 ** k <= target:
            return float(m * 10 ** k)
    return float(10 ** k)


def quicklook_rgba(codes: np.ndarray, table: ClassTable, cell: int = 6) -> np.ndarray:
    """``(h, w, 4)`` uint8 colours of a class-code array: the class colours, and nodata (any value
    that is not a class) as a grey checkerboard of ``cell`` px squares."""
    h, w = codes.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    checker = ((np.arange(h)[:, None] // cell + np.arange(w)[None, :] // cell) % 2).astype(bool)
    rgba[..., 3] = 255
    rgba[..., :3] = np.where(checker[..., None], NODATA_CHECKER[0], NODATA_CHECKER[1])
    for cl in table.classes:
        rgba[codes == cl.code, :3] = cl.rgb
    return rgba


def _crs_label(crs) -> str:
    epsg = crs.to_epsg() if crs is not None else None
    if crs is None:
        return "no CRS"
    try:
        from pyproj import CRS

        name = CRS.from_user_input(crs.to_wkt()).name
    except Exception:  # noqa: BLE001 - the label is decoration; the EPSG code is enough
        name = ""
    return f"EPSG:{epsg} ({name})" if epsg else name or crs.to_string()


def write_quicklook(map_path: Path, table: ClassTable, counts, path: Path, *, title: str,
                    max_size: int = 1000) -> None:
    """A PNG of the map (read from its overviews, at most ``max_size`` px) with map coordinates on
    the axes, a scale bar, the CRS, a legend (class names and area shares) and nodata as a grey
    checkerboard."""
    from rasterio.enums import Resampling

    with open_raster(map_path) as src:
        shape = preview_shape(src.height, src.width, max_size)
        codes = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        bounds, crs = src.bounds, src.crs
    draw_quicklook(codes, tuple(bounds), crs, table, counts, path, title=title)


def preview_shape(height: int, width: int, max_size: int = 1000) -> tuple[int, int]:
    """The shape of a map's quicklook: the map shrunk to at most ``max_size`` px a side."""
    f = max(1.0, max(width, height) / max_size)
    return max(1, round(height / f)), max(1, round(width / f))


def store_preview(store: str, grid: Grid, max_size: int = 1000) -> np.ndarray:
    """The class codes of a classify store's ``classes`` array at the quicklook's size
    (:func:`preview_shape`), each the pixel nearest its cell's centre: the quicklook of a map
    before its COG is written."""
    import zarr

    arr = zarr.open_group(store, mode="r")["classes"]
    h, w = preview_shape(grid.height, grid.width, max_size)
    rows = np.minimum(((np.arange(h) + 0.5) * grid.height / h).astype(np.int64), grid.height - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * grid.width / w).astype(np.int64), grid.width - 1)
    return np.asarray(arr.get_orthogonal_selection((rows, cols)))


def draw_quicklook(codes: np.ndarray, bounds: tuple[float, float, float, float], crs,
                   table: ClassTable, counts, path: Path, *, title: str) -> None:
    """The quicklook PNG of :func:`write_quicklook` from the codes at its size, the map's
    ``(left, bottom, right, top)`` and CRS (a rasterio CRS, a string or None)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle
    from rasterio.crs import CRS as RasterioCRS

    if crs is not None and not isinstance(crs, RasterioCRS):
        crs = RasterioCRS.from_user_input(crs)
    shape = codes.shape
    left, bottom, right, top = bounds
    geographic = bool(crs is not None and crs.is_geographic)
    rgba = quicklook_rgba(codes, table)
    total = max(int(np.sum(counts)), 1)
    # a Figure of its own, not pyplot's: drawn in a thread beside the map's COG (classify)
    fig = Figure(figsize=(9, 7 * shape[0] / max(shape[1], 1) + 1.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    extent = (left, right, bottom, top)
    ax.imshow(rgba, interpolation="nearest", extent=extent)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_xlabel(("longitude (°)" if geographic else "easting (m)") + "    CRS: "
                  + _crs_label(crs), fontsize=7)
    ax.set_ylabel("latitude (°)" if geographic else "northing (m)", fontsize=7)
    # scale bar, lower left, in metres (degrees converted at the map's mid latitude)
    width = right - left
    per_metre = 1.0
    if geographic:
        per_metre = 1.0 / (111_320.0 * max(math.cos(math.radians((top + bottom)
                                                                  / 2)), 1e-6))
    metres = nice_length(width / per_metre)
    bar, height = metres * per_metre, (top - bottom) * 0.012
    x0, y0 = left + width * 0.04, bottom + (top - bottom) * 0.05
    ax.add_patch(Rectangle((x0 - width * 0.01, y0 - height * 1.5), bar + width * 0.02,
                           height * 5, facecolor="white", edgecolor="none", alpha=0.8))
    for part in range(2):
        ax.add_patch(Rectangle((x0 + part * bar / 2, y0), bar / 2, height,
                               facecolor="black" if part == 0 else "white", edgecolor="black",
                               linewidth=0.6))
    label = f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
    ax.text(x0 + bar / 2, y0 + height * 1.6, label, ha="center", va="bottom", fontsize=7)
    handles = [Patch(facecolor=cl.color, edgecolor="0.3",
                     label=f"{cl.code} {cl.name} ({100 * n / total:.1f}%)")
               for cl, n in zip(table.classes, counts)]
    handles.append(Patch(facecolor="#{:02x}{:02x}{:02x}".format(*NODATA_CHECKER[0]),
                         edgecolor="0.3",
                         hatch="xx", label="no data"))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
              frameon=False)
    fig.savefig(path, format="png", bbox_inches="tight")


def write_array_map(codes: np.ndarray, grid: Grid, table: ClassTable, path: Path,
                    tags: dict | None = None, legend: Path | None = None) -> None:
    """A class map COG (and legend) from an in-memory ``(H, W)`` uint8 array of codes: for small
    maps, tests and examples (a large map is written block by block by :func:`write_map`)."""
    import tempfile

    import zarr

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as folder:
        group = zarr.open_group(str(Path(folder) / "store"), mode="w")
        group.create_array("classes", shape=codes.shape, dtype="uint8", chunks=codes.shape,
                           fill_value=NODATA)
        group["classes"][:] = codes.astype(np.uint8)
        write_map(str(Path(folder) / "store"), grid, [(0, grid.height, 0, grid.width)], table,
                  path, {TAG_CLASSES: json.dumps(table.to_list()), **(tags or {})},
                  legend=legend)
