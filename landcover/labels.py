"""Labels on the stack grid: raster labels reprojected with nearest, vector labels rasterised.

:func:`open_labels` returns a :class:`RasterLabels` or :class:`VectorLabels`. Both read any window of
the target grid as int32 class *codes*, ``-1`` where there is no label, so dask tasks can rasterise
tile by tile (memory bounded by the tile, whatever the size of the grid). Values that cannot be class
codes (not integers, or outside 0..254) come back as :data:`NOT_A_CODE` so that they are counted as
unknown instead of silently dropped.

CRS: labels in another CRS are reprojected onto the stack grid (geometries with geopandas, rasters
with GDAL's warper and nearest resampling). When the two CRSs differ only by a datum realisation that
moves the grid by less than a tenth of a pixel (NAD83 versus NAD83(HARN) is 0.8 m at 28.5 m pixels),
the labels are taken as drawn on the stack's pixels and not resampled: a sub-pixel shift would only
move class borders by one pixel here and there, at random. The measured shift is logged.

Overlapping polygons (``prepare.labels.overlap``): ``ignore`` (default) leaves pixels claimed by two
different classes without a label and counts them; ``smallest`` lets the smaller polygon win (a pond
inside a forest polygon); ``first`` and ``last`` follow file order. Pixels are burnt when their
centre falls inside a polygon, or whenever touched with ``all_touched``. ``erode: r`` drops labels
that have another class (or no label) within ``r`` pixels: the mixed pixels on class borders.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landcover.classes import MAX_CODE, PALETTE, ClassTable, class_table
from landcover.config import LabelsConfig
from landcover.errors import LabelError
from landcover.grid import Grid, same_crs, short_crs

log = logging.getLogger(__name__)

# rasterio's rasterize makes an in-memory dataset before it gives it a transform, and silences the
# NotGeoreferencedWarning of that with warnings.catch_warnings, which is not thread-safe: under
# dask's threads another thread's catch_warnings can restore the filters in between and the raw
# warning leaks ("Dataset has no geotransform ... identity matrix", seen with vector labels and
# prepare.split.by: column). The result is right (the transform is set next); a standing filter for
# that message of rasterio.features alone, set at import (before any thread), keeps it quiet.
def quiet_rasterize() -> None:
    """Ignore the NotGeoreferencedWarning that rasterio.features leaks under threads."""
    warnings.filterwarnings("ignore", message="Dataset has no geotransform",
                            module=r"rasterio\.features")


quiet_rasterize()

NOT_A_CODE = 100_000  # labelled, but not a usable class code (fractional, negative, > 254)
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
CODE_COLUMNS = ("class_code", "code", "class", "classvalue", "class_id", "label", "id")
NAME_COLUMNS = ("class_name", "name", "classname", "label_name", "label", "class")


def datum_shift_px(src_crs: str, dst: Grid) -> float:
    """How far (in target pixels) the corners of ``dst`` move between ``src_crs`` and ``dst.crs``."""
    from pyproj import Transformer

    tr = Transformer.from_crs(dst.crs, src_crs, always_xy=True)
    left, bottom, right, top = dst.bounds
    xs = np.array([left, right, left, right, (left + right) / 2])
    ys = np.array([top, top, bottom, bottom, (top + bottom) / 2])
    tx, ty = tr.transform(xs, ys)
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        return math.inf
    return float(np.max(np.hypot(tx - xs, ty - ys)) / abs(dst.res[0]))


def _resolve_crs(crs: str | None, target: Grid, path: str) -> str:
    """The CRS to treat the labels in: their own, or the target's for sub-pixel datum differences."""
    if crs is None:
        log.warning("%s: labels have no CRS; assuming the stack CRS %s", path, short_crs(target.crs))
        return target.crs
    if same_crs(crs, target.crs):
        return target.crs
    shift = datum_shift_px(crs, target)
    if shift < 0.1:
        log.warning("%s: labels are in %s, the scenes in %s; the two differ by %.3f pixels on this "
                    "grid, so the labels are used on the stack grid without resampling", path,
                    short_crs(crs), short_crs(target.crs), shift)
        return target.crs
    log.warning("%s: labels are in %s; reprojected onto the stack grid (%s) with nearest "
                "resampling", path, short_crs(crs), short_crs(target.crs))
    return crs


def _to_codes(values: np.ndarray, nodata=None) -> np.ndarray:
    """Label values -> int32 codes: -1 for nodata/NaN, :data:`NOT_A_CODE` for non-codes."""
    values = np.asarray(values)
    has = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        has &= values != nodata
    v = values[has]
    good = (v >= 0) & (v <= MAX_CODE) & (v == np.round(v))
    out = np.full(values.shape, -1, np.int32)
    codes = np.full(v.shape, NOT_A_CODE, np.int32)
    codes[good] = v[good].astype(np.int32)  # only in-range values are cast (no overflow)
    out[has] = codes
    return out


def erode_codes(codes: np.ndarray, radius: int) -> np.ndarray:
    """Drop codes that have another code (or no label) within ``radius`` pixels (square window)."""
    if radius <= 0:
        return codes
    h, w = codes.shape
    padded = np.pad(codes, radius, constant_values=-1)
    keep = codes >= 0
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            keep &= padded[dy:dy + h, dx:dx + w] == codes
    return np.where(keep, codes, -1).astype(np.int32)


@dataclass
class RasterLabels:
    """A single-band label raster on any grid."""

    path: str
    grid: Grid  # with the CRS it is used in (see module docstring)
    nodata: float | None
    colormap: dict = field(default_factory=dict)
    kind: str = "raster"

    def bounds(self) -> tuple[float, float, float, float]:
        return self.grid.bounds

    def codes(self, target: Grid, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        from landcover.gdalio import read_window

        fill = self.nodata if self.nodata is not None else -1
        values = read_window(self.path, self.grid, target, row0, col0, h, w, fill,
                              resampling="nearest")
        if values is None:
            return np.full((h, w), -1, np.int32)
        return _to_codes(values, fill)

    def table(self, codes_seen) -> ClassTable:
        items = []
        for i, code in enumerate(sorted(codes_seen)):
            rgb = self.colormap.get(code)
            color = "#{:02x}{:02x}{:02x}".format(*rgb[:3]) if rgb else PALETTE[i % len(PALETTE)]
            items.append({"code": int(code), "name": f"class_{code}", "color": color})
        return class_table(items, f"classes derived from {self.path}")


@dataclass
class VectorLabels:
    """Polygons (or points/lines) with one class code per feature, in the target CRS."""

    path: str
    frame: object  # GeoDataFrame with columns 'code', 'geometry' (rows with a usable code only)
    names: dict  # code -> name (for a derived class table)
    overlap: str = "ignore"
    all_touched: bool = False
    kind: str = "vector"
    extra: dict = field(default_factory=dict)  # the file's other columns, row by row with frame

    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.frame.total_bounds)

    def codes(self, target: Grid, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        from rasterio.features import rasterize
        from rasterio.transform import Affine
        from shapely.geometry import box

        a, _, c, _, e, f = target.transform
        transform = Affine(a, 0.0, c + col0 * a, 0.0, e, f + row0 * e)
        x0, y0 = c + col0 * a, f + row0 * e
        window = box(min(x0, x0 + w * a), min(y0, y0 + h * e), max(x0, x0 + w * a),
                     max(y0, y0 + h * e))
        hits = self.frame.sindex.query(window, predicate="intersects")
        out = np.full((h, w), -1, np.int32)
        if len(hits) == 0:
            return out
        sub = self.frame.iloc[np.sort(hits)]
        order = {"last": sub.index, "first": sub.index[::-1],
                 "smallest": sub.geometry.area.sort_values(ascending=False, kind="stable").index,
                 "ignore": sub.index}[self.overlap]
        sub = sub.loc[order]
        shapes = list(zip(sub.geometry, sub["code"].astype(int)))
        out = rasterize(shapes, out_shape=(h, w), transform=transform, fill=-1,
                        all_touched=self.all_touched, dtype="int32")
        if self.overlap == "ignore" and sub["code"].nunique() > 1:
            claims = np.zeros((h, w), np.uint8)
            for code, group in sub.groupby("code"):
                claims += rasterize(((g, 1) for g in group.geometry), out_shape=(h, w),
                                    transform=transform, fill=0, all_touched=self.all_touched,
                                    dtype="uint8")
            out[claims > 1] = -1
        return out

    def table(self, codes_seen) -> ClassTable:
        items = [{"code": int(code), "name": self.names.get(code, f"class_{code}"),
                  "color": PALETTE[i % len(PALETTE)]} for i, code in enumerate(sorted(codes_seen))]
        return class_table(items, f"classes derived from {self.path}")


def _open_raster(path: Path, target: Grid, cfg: LabelsConfig) -> RasterLabels:
    from rasterio.errors import RasterioIOError

    from landcover.gdalio import open_raster

    try:
        with open_raster(path) as src:
            if src.count != 1:
                log.warning("%s: %d bands; the first holds the labels", path, src.count)
            if src.crs is None and src.transform.is_identity:
                raise LabelError(f"{path}: the label raster has no georeferencing; save it "
                                 "with a CRS and transform")
            from landcover.grid import crs_string

            own = crs_string(src.crs) if src.crs else None
            crs = _resolve_crs(own, target, str(path))
            grid = Grid.from_rasterio(src.crs or crs, src.transform, src.width, src.height)
            grid = Grid(crs, grid.transform, grid.width, grid.height)
            nodata = cfg.nodata if cfg.nodata is not None else src.nodata
            try:
                colormap = src.colormap(1)
            except ValueError:
                colormap = {}
    except RasterioIOError as exc:
        raise LabelError(f"{path}: cannot open the label raster ({exc})") from None
    if nodata is None:
        log.warning("%s: the label raster has no nodata value, so every value is a class code; "
                    "set prepare.labels.nodata if one value means 'no label'", path)
    return RasterLabels(str(path), grid, nodata, colormap)


def _pick_column(frame, wanted: str | None, candidates, what: str, path: Path,
                 keys: str = "prepare.labels.") -> str | None:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    if wanted is not None:
        if wanted not in columns:
            raise LabelError(f"{path}: no column {wanted!r} ({keys}{what}); columns are "
                             f"{', '.join(columns) or 'none'}")
        return wanted
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _naming_column(texts, codes: np.ndarray) -> str | None:
    """The first text column whose names and the class ``codes`` map one to one (each code one
    name, each name one code, over the features with both): the class names of labels whose
    name column has no usual name (``croptype``, ``lc_name``, ...). An identifier column (a
    name per feature) does not qualify unless every feature has its own code."""
    usable = (codes >= 0) & (codes <= MAX_CODE)
    for column in texts.columns:
        values = texts[column]
        pairs = {}
        ok = True
        for code, name in zip(codes[usable], values.to_numpy()[usable]):
            if not isinstance(name, str) or not name.strip():
                continue
            if pairs.setdefault(int(code), name.strip()) != name.strip():
                ok = False
                break
        if ok and pairs and len(set(pairs.values())) == len(pairs):
            return column
    return None


def _open_vector(path: Path, target: Grid, cfg: LabelsConfig,
                 table: ClassTable | None, keys: str = "prepare.labels.") -> VectorLabels:
    import geopandas as gpd
    import pandas as pd
    import shapely

    try:
        frame = gpd.read_file(path, layer=cfg.layer) if cfg.layer else gpd.read_file(path)
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        message = " ".join(str(exc).split())
        raise LabelError(f"{path}: cannot read the vector labels ({message})") from None
    if len(frame) == 0:
        raise LabelError(f"{path}: the label file has no features; add labelled polygons or "
                         "points")
    column = _pick_column(frame, cfg.column, CODE_COLUMNS, "column", path, keys)
    if column is None:
        columns = [c for c in frame.columns if c != frame.geometry.name]
        raise LabelError(f"{path}: no class column found (tried {', '.join(CODE_COLUMNS)}); name "
                         f"it with {keys}column (columns: "
                         f"{', '.join(columns) or 'none'})")
    values = frame[column]
    names: dict[int, str] = {}
    if pd.api.types.is_numeric_dtype(values):
        codes = _to_codes(values.to_numpy(dtype=float, na_value=np.nan)).astype(np.int64)
        texts = frame[[c for c in frame.columns if c != frame.geometry.name
                       and not pd.api.types.is_numeric_dtype(frame[c])]]
        name_column = _pick_column(frame, cfg.name_column, (), "name_column", path, keys) \
            if cfg.name_column else _pick_column(texts.set_geometry(frame.geometry), None,
                                                 NAME_COLUMNS, "name_column", path)
        if name_column is None and not cfg.name_column:
            name_column = _naming_column(texts, codes)
            if name_column is not None:
                log.info("%s: class names taken from column %r (its names match the codes of "
                         "%r one to one); set %sname_column to choose another", path,
                         name_column, column, keys)
        if name_column is not None and name_column != column:
            for code, name in zip(codes, frame[name_column]):
                if 0 <= code <= MAX_CODE and isinstance(name, str) and name.strip():
                    if names.setdefault(int(code), name.strip()) != name.strip():
                        raise LabelError(f"{path}: code {code} has two names ({names[code]!r} "
                                         f"and {name.strip()!r}) in column {name_column!r}")
    else:
        text = values.astype("string").str.strip()
        if table is not None:
            by_name = {c.name.lower(): c.code for c in table.classes}
            codes = np.array([by_name.get(v.lower(), NOT_A_CODE) if isinstance(v, str) and v
                              else -1 for v in text.fillna("")], np.int64)
            unknown = sorted({v for v, c in zip(text.fillna(""), codes) if c == NOT_A_CODE})
            if unknown:
                log.warning("%s: %d feature(s) have class names that are not in the class table "
                            "(%s); they are left unlabelled", path, int((codes == NOT_A_CODE).sum()),
                            ", ".join(unknown[:10]))
        else:
            distinct = sorted({v for v in text.dropna() if v})
            if len(distinct) > MAX_CODE:
                raise LabelError(f"{path}: column {column!r} has {len(distinct)} class names; at "
                                 f"most {MAX_CODE} classes are supported")
            lookup = {name: i + 1 for i, name in enumerate(distinct)}
            names = {code: name for name, code in lookup.items()}
            codes = np.array([lookup.get(v, -1) if isinstance(v, str) else -1
                              for v in text.fillna("")], np.int64)
            log.info("%s: class names in %r numbered %s", path, column,
                     ", ".join(f"{c}={n}" for c, n in names.items()))
    missing = int((codes == -1).sum())
    if missing:
        log.warning("%s: %d feature(s) have no class in column %r and are ignored", path, missing,
                    column)
    others = {c: frame[c].to_numpy() for c in frame.columns if c != frame.geometry.name}
    frame = gpd.GeoDataFrame({"code": codes}, geometry=frame.geometry.values, crs=frame.crs)
    usable = ((frame["code"] >= 0) & frame.geometry.notna() & ~frame.geometry.is_empty).to_numpy()
    frame = frame[usable]
    others = {c: v[usable] for c, v in others.items()}
    if len(frame) == 0:
        raise LabelError(f"{path}: no feature has a usable class in column {column!r}")
    invalid = ~frame.geometry.is_valid
    if invalid.any():
        log.info("%s: repairing %d invalid geometries", path, int(invalid.sum()))
        frame.loc[invalid, "geometry"] = shapely.make_valid(frame.geometry[invalid].values)
    crs = _resolve_crs(frame.crs.to_string() if frame.crs else None, target, str(path))
    if crs == target.crs:
        frame = frame.set_crs(target.crs, allow_override=True)
    else:
        frame = frame.to_crs(target.crs)
    frame = frame.reset_index(drop=True)
    return VectorLabels(str(path), frame, names, cfg.overlap, cfg.all_touched, extra=others)


def open_labels(path: str | Path, target: Grid, cfg: LabelsConfig | None = None,
                table: ClassTable | None = None,
                keys: str = "prepare.labels.") -> RasterLabels | VectorLabels:
    """Open labels for the stack grid ``target``; checks they overlap it.

    ``keys`` is how messages name the column settings: ``prepare.labels.column``, or ``--column``
    for ``evaluate`` (``keys="--"``).

    Raises:
        LabelError: unreadable file, no features, no class column, or no overlap with the scenes.
    """
    cfg = cfg or LabelsConfig()
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{path}: no such file", flag="--labels")
    if path.suffix.lower() in RASTER_SUFFIXES:
        labels = _open_raster(path, target, cfg)
        bounds = labels.grid.bounds
        crs = labels.grid.crs
    else:
        labels = _open_vector(path, target, cfg, table, keys)
        bounds, crs = labels.bounds(), target.crs
    if not same_crs(crs, target.crs):
        from rasterio.warp import transform_bounds

        bounds = transform_bounds(crs, target.crs, *bounds, densify_pts=21)
    left, bottom, right, top = target.bounds
    if bounds[0] >= right or bounds[2] <= left or bounds[1] >= top or bounds[3] <= bottom:
        raise LabelError(
            f"{path}: the labels (bounds {', '.join(f'{v:.0f}' for v in bounds)}) do not overlap "
            f"the scenes (bounds {', '.join(f'{v:.0f}' for v in target.bounds)} in "
            f"{short_crs(target.crs)}); check that labels and scenes cover the same area and that "
            "the labels' CRS is right")
    return labels


def sample_column(path: str | Path, layer: str | None = None) -> str | None:
    """``"reference"`` when ``path`` is a sample written by :func:`landcover.sample.sample` (a
    GeoPackage with ``reference`` and ``map_code`` fields), else ``None``."""
    path = Path(path)
    if path.suffix.lower() != ".gpkg" or not path.is_file():
        return None
    try:
        import pyogrio

        fields = set(pyogrio.read_info(path, layer=layer)["fields"])
    except Exception:  # noqa: BLE001 - not readable here: open_labels reports it properly
        return None
    return "reference" if {"reference", "map_code"} <= fields else None


def window_codes(labels, target: Grid, row0: int, col0: int, h: int, w: int,
                 erode: int = 0) -> np.ndarray:
    """Codes over a window of ``target``, with erosion using a margin read around the window."""
    if erode <= 0:
        return labels.codes(target, row0, col0, h, w)
    r0, c0 = max(0, row0 - erode), max(0, col0 - erode)
    r1 = min(target.height, row0 + h + erode)
    c1 = min(target.width, col0 + w + erode)
    codes = erode_codes(labels.codes(target, r0, c0, r1 - r0, c1 - c0), erode)
    return codes[row0 - r0:row0 - r0 + h, col0 - c0:col0 - c0 + w]
