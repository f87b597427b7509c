"""Lazy, masked spatio-temporal stacks: ``(time, band, y, x)`` reflectance and a ``(time, y, x)`` mask.

:func:`stack_scenes` builds an :class:`xarray.Dataset` backed by dask. Nothing is read until it is
computed; each dask task opens the files it needs *by path* (no shared handles, so the graph runs on
threads or on a distributed cluster) and reads one ``chunk_size`` x ``chunk_size`` window of one date.
Peak memory is therefore about ``workers x (bands + 1) x chunk_size^2 x 4 bytes`` plus what the
caller keeps, whatever the number of scenes.

Target grid (``scenes.grid``): by default the CRS, pixel size and pixel lattice of the most common scene
grid, over the union of all scenes' footprints (``extent: intersection`` for the common part). Scenes on
that lattice are windowed reads (no resampling); scenes on other grids are warped on the fly with GDAL
(bilinear for reflectance, nearest for quality layers), or refused when ``align`` is false.

Same-date scenes (neighbouring path/rows) are mosaicked: per pixel the first *valid* observation in
path/row order wins; where none is valid, the first observation with data.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from itertools import groupby

import numpy as np

from landcover import qa
from landcover.config import GridConfig, MaskConfig, ScenesConfig
from landcover.errors import GridMismatchError, MissingBandError
from landcover.gdalio import read_window
from landcover.grid import Grid, same_crs
from landcover.scenes import Scene, stacking_order

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- grid
def _grid_of_raster(path: str) -> Grid:
    from rasterio.errors import RasterioIOError

    from landcover.gdalio import open_raster

    try:
        with open_raster(path) as src:
            if src.crs is None:
                raise GridMismatchError(f"scenes.grid.like: {path} has no CRS; pick a "
                                        "georeferenced raster")
            return Grid.from_rasterio(src.crs, src.transform, src.width, src.height)
    except RasterioIOError as exc:
        raise GridMismatchError(f"scenes.grid.like: cannot open {path} ({exc})") from None


def _scene_bounds_in(scene: Scene, crs: str) -> tuple[float, float, float, float]:
    if same_crs(scene.grid.crs, crs):
        return scene.grid.bounds
    from rasterio.warp import transform_bounds

    return transform_bounds(scene.grid.crs, crs, *scene.grid.bounds, densify_pts=21)


def _order(scenes: Sequence[Scene]) -> list[Scene]:
    return sorted(scenes, key=stacking_order)


def target_grid(scenes: Sequence[Scene], cfg: GridConfig) -> Grid:
    """The grid every scene is stacked on (see the module docstring); independent of input order."""
    scenes = _order(scenes)
    if cfg.like:
        grid = _grid_of_raster(cfg.like)
        if not cfg.crs and not cfg.resolution:
            return grid
        reference = grid
    else:
        keys = [(s.grid.crs, round(s.grid.res[0], 3), round(s.grid.res[1], 3)) for s in scenes]
        counts = Counter(keys)
        best = max(counts.values())
        reference = next(s.grid for s, k in zip(scenes, keys) if counts[k] == best)
    crs = cfg.crs or reference.crs
    if cfg.crs:
        from rasterio.crs import CRS

        from landcover.grid import crs_string

        try:
            crs = crs_string(CRS.from_user_input(cfg.crs))
        except Exception:
            raise GridMismatchError(f"scenes.grid.crs: {cfg.crs!r} is not a CRS; use e.g. "
                                    "EPSG:32633") from None
    if cfg.resolution:
        rx = ry = float(cfg.resolution)
    elif same_crs(crs, reference.crs):
        rx, ry = reference.res
    else:
        from rasterio.warp import calculate_default_transform

        tf, _, _ = calculate_default_transform(reference.crs, crs, reference.width,
                                               reference.height, *reference.bounds)
        rx = ry = abs(tf.a)
    if same_crs(crs, reference.crs) and math.isclose(rx, reference.res[0], rel_tol=1e-9):
        ox, oy = reference.transform[2], reference.transform[5]
    else:
        ox = oy = 0.0
    boxes = [_scene_bounds_in(s, crs) for s in scenes]
    if cfg.extent == "intersection":
        left, bottom = max(b[0] for b in boxes), max(b[1] for b in boxes)
        right, top = min(b[2] for b in boxes), min(b[3] for b in boxes)
        if left >= right or bottom >= top:
            raise GridMismatchError("the scenes have no area in common; use "
                                    "scenes.grid.extent=union")
    else:
        left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
    covered = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    if (right - left) * (top - bottom) > 4 * covered:
        log.warning("the scenes are far apart: their union grid is mostly empty; stack scenes of "
                    "one region, or set scenes.grid.extent=intersection")
    eps = 1e-6
    left = ox + math.floor((left - ox) / rx + eps) * rx
    top = oy + math.ceil((top - oy) / ry - eps) * ry
    width = max(1, math.ceil((right - left) / rx - eps))
    height = max(1, math.ceil((top - bottom) / ry - eps))
    return Grid(crs, (rx, 0.0, left, 0.0, -ry, top), width, height)


def check_alignment(scenes: Sequence[Scene], grid: Grid) -> None:
    """Refuse scenes that would need resampling onto ``grid`` (``scenes.grid.align: false``)."""
    for scene in scenes:
        if not grid.same_lattice(scene.grid):
            other = next((s for s in scenes if s.grid.same_lattice(grid)), None)
            against = f"{other.scene_id} ({other.grid.describe()})" if other else grid.describe()
            diff = (other.grid if other else grid).difference(scene.grid)
            raise GridMismatchError(
                f"{scene.source}: grid {scene.grid.describe()} differs from {against} ({diff}); "
                "set scenes.grid.align=true to reproject the scenes onto one grid")


# ---------------------------------------------------------------------------------------- reading
def _intersects(scene: Scene, target: Grid, row0: int, col0: int, h: int, w: int) -> bool:
    a, _, c, _, e, f = target.transform
    wl, wr = c + col0 * a, c + (col0 + w) * a
    wt, wb = f + row0 * e, f + (row0 + h) * e
    left, bottom, right, top = _scene_bounds_in(scene, target.crs)
    return left < wr and right > wl and bottom < wt and top > wb


SMALL_INTEGERS = (np.uint8, np.int8, np.uint16, np.int16)
"""Raster types whose every value float32 holds exactly: kept as they are by
:func:`read_scene_dn` (half the memory of float32 or less)."""


def read_scene_dn(scene: Scene, bands: Sequence[str], target: Grid, mask: MaskConfig,
                  row0: int, col0: int, h: int, w: int, out: np.ndarray | None = None):
    """One scene's digital numbers (before scale and offset) and validity over a target window.

    Returns ``(dn (band, h, w), valid (h, w), has_data (h, w))``, or None when the scene does not
    touch the window. ``dn`` is written into ``out`` (float32) when given; otherwise it keeps the
    rasters' type when that is one of :data:`SMALL_INTEGERS`, else it is float32. The nodata and
    valid-range tests compare in float32 either way, so both give the same masks.
    """
    if not _intersects(scene, target, row0, col0, h, w):
        return None
    nodata = None if scene.nodata is None else np.float32(scene.nodata)
    fill = scene.nodata if scene.nodata is not None else 0
    has_data = np.ones((h, w), bool)
    check_range = bool(mask.valid_range and scene.valid_range is not None)
    out_of_range = np.zeros((h, w), bool) if check_range else None
    if check_range:
        lo, hi = (np.float32(v) for v in scene.valid_range)
    dn = out
    for i, band in enumerate(bands):  # band by band, while the plane is in the cache
        raw = read_window(scene.bands[band], scene.grid, target, row0, col0, h, w, fill,
                           resampling="bilinear")
        if raw is None:
            return None
        if dn is None:
            kind = raw.dtype if raw.dtype in SMALL_INTEGERS else np.float32
            dn = np.empty((len(bands), h, w), kind)
        plane = dn[i]
        if not np.can_cast(raw.dtype, plane.dtype, "safe") and plane.dtype != np.float32:
            dn = dn.astype(np.float32)  # a band of another type: everything in float32
            plane = dn[i]
        plane[...] = raw
        del raw
        if nodata is not None:
            has_data &= plane != nodata
        if plane.dtype.kind == "f":  # NaN is no data in a float raster (a profile's nodata: .nan)
            has_data &= ~np.isnan(plane)
        if check_range:
            out_of_range |= plane < lo
            out_of_range |= plane > hi
    invalid = ~has_data
    if check_range:
        invalid |= out_of_range
    if scene.mask_path:
        qa_fill = 1 if scene.mask_kind == "qa_pixel" else 0
        layer = read_window(scene.mask_path, scene.grid, target, row0, col0, h, w, qa_fill,
                             resampling="nearest")
        invalid |= np.asarray(qa.invalid_mask(scene.mask_kind, layer, mask.invalid_flags,
                                              scene.mask_codes))
    if scene.radsat_path and mask.saturation:
        radsat = read_window(scene.radsat_path, scene.grid, target, row0, col0, h, w, 0,
                              resampling="nearest")
        invalid |= np.asarray(qa.radsat_mask(radsat, [scene.band_numbers[b] for b in bands]))
    return dn, ~invalid, has_data


def scale_dn(dn: np.ndarray, scene: Scene, bands: Sequence[str],
             out: np.ndarray | None = None) -> np.ndarray:
    """Reflectance ``dn * scale + offset`` of :func:`read_scene_dn`'s digital numbers: float32,
    band by band (the same float32 operations whatever the type of ``dn``; in place when ``dn``
    is float32 and ``out`` is not given)."""
    if out is None:
        out = dn if dn.dtype == np.float32 else np.empty(dn.shape, np.float32)
    for i, band in enumerate(bands):
        np.multiply(dn[i], np.float32(scene.scale[band]), out=out[i])
        np.add(out[i], np.float32(scene.offset[band]), out=out[i])
    return out


def read_scene_window(scene: Scene, bands: Sequence[str], target: Grid, mask: MaskConfig,
                      row0: int, col0: int, h: int, w: int, out: np.ndarray | None = None):
    """One scene's reflectance and validity over a target window.

    Returns:
        ``(reflectance, valid, has_data)`` with reflectance float32 ``(band, h, w)`` (NaN where the
        product has no data; written into ``out`` when given), valid bool ``(h, w)`` (``True`` =
        clear, in range, unsaturated) and has_data bool ``(h, w)``; or None when the scene does not
        touch the window.
    """
    if out is None:
        out = np.empty((len(bands), h, w), np.float32)
    got = read_scene_dn(scene, bands, target, mask, row0, col0, h, w, out=out)
    if got is None:
        return None
    dn, valid, has_data = got
    reflectance = scale_dn(dn, scene, bands)
    if not has_data.all():  # a pixel missing in any band is no data in all bands
        np.copyto(reflectance, np.float32(np.nan), where=~has_data[None])
    return reflectance, valid, has_data


def read_date_block(scenes: Sequence[Scene], bands: Sequence[str], target: Grid, mask: MaskConfig,
                    row0: int, col0: int, h: int, w: int) -> np.ndarray:
    """Mosaic the scenes of one date over a window: float32 ``(1, band + 1, h, w)``.

    Layers ``0..band-1`` hold reflectance (NaN = no data), the last holds validity as 0/1.
    """
    if len(scenes) == 1:  # one scene: read straight into the block
        out = np.empty((len(bands) + 1, h, w), np.float32)
        got = read_scene_window(scenes[0], bands, target, mask, row0, col0, h, w, out=out[:-1])
        if got is None:
            out[:-1] = np.nan
            out[-1] = 0.0
        else:
            out[-1] = got[1]
        return out[None]
    out = np.full((len(bands) + 1, h, w), np.nan, np.float32)
    out[-1] = 0.0
    filled = np.zeros((h, w), bool)
    valid = np.zeros((h, w), bool)
    for scene in scenes:
        got = read_scene_window(scene, bands, target, mask, row0, col0, h, w)
        if got is None:
            continue
        refl, ok, has_data = got
        take = (ok & ~valid) | (has_data & ~filled & ~valid)
        np.copyto(out[:-1], refl, where=take[None])
        valid |= ok
        filled |= has_data
    out[-1] = valid
    return out[None]


# ------------------------------------------------------------------------------------------ stack
def _chunks(n: int, size: int) -> tuple[int, ...]:
    return tuple(min(size, n - i) for i in range(0, n, size))


def date_groups(scenes: Sequence[Scene]) -> list[tuple]:
    """``[(date, (scene, ...)), ...]`` in stacking order: one entry per date of the stack."""
    return [(date, tuple(group)) for date, group in groupby(_order(scenes), key=lambda s: s.date)]


def common_bands(scenes: Sequence[Scene]) -> tuple[str, ...]:
    """Bands that every scene provides, in the order of the first scene."""
    first = list(scenes[0].bands)
    return tuple(b for b in first if all(b in s.bands for s in scenes))


def scene_lacking(scenes: Sequence[Scene], bands: Sequence[str]):
    """``(the first scene that lacks one of bands, the bands it lacks)``, or None."""
    for scene in scenes:
        missing = [b for b in bands if b not in scene.bands]
        if missing:
            return scene, missing
    return None


def warn_mixed_products(scenes: Sequence[Scene]) -> None:
    """Warn when the scenes were read by more than one sensor profile, i.e. are different
    products (Collection 2 Level-2 surface reflectance beside Collection 1 Level-1
    top-of-atmosphere reflectance, ...): their values measure different things, so one stack of
    them mixes two kinds of dates."""
    from landcover.scenes import scene_profile

    kinds: dict[str, list[Scene]] = {}
    for scene in scenes:
        kinds.setdefault(scene.profile, []).append(scene)
    if len(kinds) < 2:
        return
    parts = []
    for name, group in kinds.items():
        description = scene_profile(group[0]).description
        parts.append(f"{len(group)} read as {name} ({description}; e.g. {group[0].scene_id})")
    log.warning("the scenes are different products: %s; their values need not measure the same "
                "thing (e.g. surface and top-of-atmosphere reflectance), so the stack would mix "
                "kinds of dates; use scenes of one product", "; ".join(parts))


def stack_grid(scenes: Sequence[Scene], cfg: ScenesConfig | None = None,
               bands: Sequence[str] | None = None) -> Grid:
    """The grid :func:`stack_scenes` stacks ``scenes`` on, after its checks (bands, alignment);
    reads no pixels and builds no graph.

    Raises:
        MissingBandError: a requested band is missing from a scene.
        GridMismatchError: grids differ and ``cfg.grid.align`` is false.
    """
    cfg = cfg or ScenesConfig()
    if not scenes:
        raise MissingBandError("no scenes to stack")
    scenes = _order(scenes)
    bands = tuple(bands or cfg.bands)
    lacking = scene_lacking(scenes, bands)
    if lacking:
        scene, missing = lacking
        raise MissingBandError(
            f"{scene.source}: band {missing[0]} is not available in {scene.scene_id} "
            f"(profile {scene.profile} has {', '.join(scene.bands)}); choose bands with "
            "scenes.bands")
    warn_mixed_products(scenes)
    grid = target_grid(scenes, cfg.grid)
    if not cfg.grid.align:
        check_alignment(scenes, grid)
    resampled = [s.scene_id for s in scenes if not grid.same_lattice(s.grid)]
    if resampled:
        log.info("%d scene(s) are reprojected onto %s: %s", len(resampled), grid.describe(),
                 ", ".join(resampled))
    return grid


def stack_scenes(scenes: Sequence[Scene], cfg: ScenesConfig | None = None, *,
                 bands: Sequence[str] | None = None):
    """Build the lazy stack of ``scenes``.

    Args:
        scenes: from :func:`landcover.scenes.find_scenes`.
        cfg: the ``scenes`` config section (bands, chunk size, mask flags, grid).
        bands: override ``cfg.bands``.

    Returns:
        ``xarray.Dataset`` with ``reflectance`` float32 ``(time, band, y, x)`` (surface or TOA
        reflectance; NaN where the product has no data; values under clouds are kept) and ``valid``
        bool ``(time, y, x)`` (``True`` = usable observation). Coordinates: ``time`` (datetime64,
        sorted), ``band`` (common names), ``y``/``x`` (pixel centres in the CRS), ``scene_id`` and
        ``sensor`` per date. Attributes: ``crs``, ``transform`` (GDAL order), ``grid`` description.

    Raises:
        MissingBandError: a requested band is missing from a scene.
        GridMismatchError: grids differ and ``cfg.grid.align`` is false.
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    cfg = cfg or ScenesConfig()
    bands = tuple(bands or cfg.bands)
    grid = stack_grid(scenes, cfg, bands)
    scenes = _order(scenes)
    dates = date_groups(scenes)
    ych, xch = _chunks(grid.height, cfg.chunk_size), _chunks(grid.width, cfg.chunk_size)
    name = "landcover-stack-" + tokenize(dates, bands, grid, cfg.mask, cfg.chunk_size)
    layers = len(bands) + 1
    dsk = {}
    for t, (_, group) in enumerate(dates):
        row0 = 0
        for i, h in enumerate(ych):
            col0 = 0
            for j, w in enumerate(xch):
                dsk[(name, t, 0, i, j)] = (read_date_block, group, bands, grid, cfg.mask,
                                           row0, col0, h, w)
                col0 += w
            row0 += h
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    data = da.Array(graph, name, chunks=((1,) * len(dates), (layers,), ych, xch),
                    dtype=np.float32, meta=np.empty((0, 0, 0, 0), np.float32))

    a, _, c, _, e, f = grid.transform
    coords = {
        "time": np.array([np.datetime64(d, "ns") for d, _ in dates]),
        "band": list(bands),
        "y": f + (np.arange(grid.height) + 0.5) * e,
        "x": c + (np.arange(grid.width) + 0.5) * a,
        "scene_id": ("time", ["+".join(s.scene_id for s in g) for _, g in dates]),
        "sensor": ("time", ["+".join(sorted({s.sensor for s in g})) for _, g in dates]),
    }
    attrs = {"crs": grid.crs, "transform": list(grid.transform), "grid": grid.describe()}
    reflectance = xr.DataArray(data[:, :-1], dims=("time", "band", "y", "x"), coords=coords,
                               attrs={**attrs, "units": "reflectance", "nodata": "nan"})
    valid = xr.DataArray(data[:, -1] > 0.5, dims=("time", "y", "x"),
                         coords={k: v for k, v in coords.items() if k != "band"},
                         attrs={**attrs, "meaning": "True = clear, in range, unsaturated"})
    return xr.Dataset({"reflectance": reflectance, "valid": valid}, attrs=attrs)


def grid_of(stack) -> Grid:
    """The :class:`Grid` of a stack made by :func:`stack_scenes`."""
    return Grid(stack.attrs["crs"], tuple(stack.attrs["transform"]), stack.sizes["x"],
                stack.sizes["y"])
