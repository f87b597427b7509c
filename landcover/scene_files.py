"""One scene's files -> a :class:`Scene` record: the sensor profile that reads them, its band files,
scaling, quality layers and grid.

The files are those of a :class:`SceneFiles`: a folder, the members of a ``.tar`` archive (read in
place through GDAL's ``/vsitar/``), or a STAC item's assets (:mod:`landcover.stac`). File patterns
match the name case-sensitively but the suffix case-insensitively (``*_B4.TIF`` finds ``x_B4.tif``
too). Finding scenes under the paths a user gives is :mod:`landcover.scenes`.

Shape and transform always come from the rasters. Only when a raster carries no georeferencing at all
(CRS missing and an identity transform) is it placed from the MTL: ``UTM_ZONE`` and
``CORNER_UL_PROJECTION_X/Y_PRODUCT`` (pixel centres) with ``GRID_CELL_SIZE_REFLECTIVE``. USGS writes
southern scenes in the *northern* UTM zone with negative northings (EPSG:326zz); an MTL with positive
northings and a southern corner latitude is taken as the southern zone (EPSG:327zz).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landcover.errors import (
    BandShapeError,
    MetadataError,
    MissingBandError,
    RasterReadError,
    SceneNotFoundError,
    UnknownSensorError,
)
from landcover.grid import Grid, utm_epsg
from landcover.mtl import mtl_get, parse_mtl
from landcover.profiles import Profile, resolve_profiles

log = logging.getLogger("landcover.scenes")  # the name its warnings have always carried

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class Scene:
    """One acquisition of one path/row, ready to be read.

    Attributes:
        scene_id: product ID (or scene ID for pre-collection layouts).
        source: the folder or archive it came from.
        profile: name of the sensor profile that read it (:func:`scene_profile` gives the
            :class:`~landcover.profiles.Profile` itself).
        sensor: sensor code as in the ID (``LC08``, ``LE07``, ``LT5`` ...), or the profile's
            ``sensor`` when the ID has none.
        date: acquisition date.
        path, row: WRS path and row (``None`` when the ID has none).
        bands: ``{band name: GDAL path}`` in profile order (names as in the profile: ``red``,
            ``ndvi`` ...).
        band_numbers: ``{band name: sensor band number}``: the trailing digits of the file suffix
            (``SR_B4`` -> 4), ``0`` when it has none (``NDVI``): QA_RADSAT bits and MTL per-band
            scaling apply only to numbered bands.
        scale, offset: ``{band: value}``; reflectance = DN * scale + offset.
        nodata: DN that marks fill (``None`` if the product has none).
        valid_range: inclusive valid DN range, or ``None``.
        mask_path, mask_kind, mask_codes: the quality layer (see :mod:`landcover.qa`).
        radsat_path: QA_RADSAT, if the product has one.
        grid: the raster grid (from the TIFF; from the MTL only when the TIFF has none).
        georef_from_mtl: True when the grid came from the MTL.
        cloud_cover: MTL ``CLOUD_COVER`` (percent) if present.
        attrs: the other named groups of the ID (level, tier, processing date ...).
        sensor_profile: the profile that read it (not compared; use :func:`scene_profile`).
    """

    scene_id: str
    source: str
    profile: str
    sensor: str
    date: dt.date
    path: int | None
    row: int | None
    bands: dict[str, str]
    band_numbers: dict[str, int]
    scale: dict[str, float]
    offset: dict[str, float]
    nodata: float | None
    valid_range: tuple[float, float] | None
    grid: Grid
    mask_path: str | None = None
    mask_kind: str | None = None
    mask_codes: dict | None = None
    radsat_path: str | None = None
    georef_from_mtl: bool = False
    cloud_cover: float | None = None
    attrs: dict = field(default_factory=dict)
    sensor_profile: Profile | None = field(default=None, compare=False, repr=False)

    @property
    def path_row(self) -> str:
        return f"{self.path:03d}/{self.row:03d}" if self.path is not None else "-"


def scene_profile(scene: Scene) -> Profile:
    """The :class:`~landcover.profiles.Profile` that read ``scene``.

    A scene built by hand (no ``sensor_profile``) gets the shipped profile of its ``profile`` name.
    """
    if scene.sensor_profile is not None:
        return scene.sensor_profile
    return resolve_profiles(scene.profile)[0]


def scene_profiles(scenes: Sequence[Scene]) -> tuple[Profile, ...]:
    """The distinct profiles that read ``scenes``, in order of first use (for profile records)."""
    out: list[Profile] = []
    for scene in scenes:
        profile = scene_profile(scene)
        if profile not in out:
            out.append(profile)
    return tuple(out)


def name_matches(name: str, pattern: str) -> bool:
    """``fnmatch`` of a file name, case-sensitive except for a literal suffix such as ``.TIF``."""
    suffix = re.search(r"\.[A-Za-z0-9]+$", pattern)
    if suffix is None:
        return fnmatch.fnmatchcase(name, pattern)
    n = len(suffix.group())
    return (len(name) > n and name[-n:].lower() == suffix.group().lower()
            and fnmatch.fnmatchcase(name[:-n], pattern[:-n]))


def stacking_order(scene: Scene) -> tuple:
    """Sort key of scenes: date, then path/row (the mosaic priority), then ID."""
    return scene.date, scene.path or 0, scene.row or 0, scene.scene_id


class SceneFiles:
    """Files of one scene: a folder on disk or the members of a tar archive (a STAC item's assets
    in :mod:`landcover.stac`)."""

    def __init__(self, location: Path, names: list[str], archive: bool):
        self.location = location
        self.names = names  # relative names (folder: file names; archive: member names)
        self.archive = archive

    @classmethod
    def from_folder(cls, folder: Path) -> SceneFiles:
        return cls(folder, sorted(n for n in os.listdir(folder) if (folder / n).is_file()), False)

    @classmethod
    def from_archive(cls, path: Path) -> SceneFiles:
        try:
            with tarfile.open(path) as tar:
                names = sorted(m.name for m in tar.getmembers() if m.isfile())
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise SceneNotFoundError(f"{path}: cannot read the archive ({exc}); re-download it") \
                from None
        return cls(path, names, True)

    def glob(self, pattern: str) -> list[str]:
        return [n for n in self.names if name_matches(os.path.basename(n), pattern)]

    def gdal_path(self, name: str) -> str:
        if self.archive:
            return f"/vsitar/{self.location.resolve()}/{name}"
        return str(self.location / name)

    def read_bytes(self, name: str) -> bytes:
        if self.archive:
            with tarfile.open(self.location) as tar:
                return tar.extractfile(name).read()
        return (self.location / name).read_bytes()


def _has_bands(container: SceneFiles, profile: Profile, found: re.Match) -> bool:
    """True when ``container`` holds at least one band file of the matched sensor."""
    bands = profile.sensors.get(profile.sensor_of(found), {})
    return any(container.glob(profile.band_file.format(band=suffix)) for suffix in bands.values())


def match_profile(profiles: Sequence[Profile],
                  container: SceneFiles) -> tuple[Profile, re.Match] | None:
    """The profile that reads ``container``, and its ID match.

    The ID is looked for in the container's name first, then in its file names; a match must start
    the name. Within each of these two passes the first profile (in the order tried) that finds one
    of its band files wins. If none does, the first match of a profile whose IDs name the sensor is
    taken anyway, so that a folder named like a product ID gets a precise error (unknown sensor,
    missing band); profiles with generic IDs (a date alone) never claim a folder without their band
    files, unless they are the only profile tried. So ``auto`` lets no generic profile take a folder
    that another profile reads.
    """
    stem = container.location.name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    for names in ([stem], [os.path.basename(n) for n in container.names]):
        fallback = None
        for profile in profiles:
            for name in names:
                found = profile.match(name)
                if not found or found.start() != 0:
                    continue
                if _has_bands(container, profile, found):
                    return profile, found
                if fallback is None and (profile.has_sensor_code or len(profiles) == 1):
                    fallback = profile, found
        if fallback is not None:
            return fallback
    return None


def unique_scenes(scenes: Sequence[Scene]) -> list[Scene]:
    """``scenes`` in :func:`stacking_order`; a scene given twice is an error naming both places."""
    seen: dict[str, str] = {}
    for scene in scenes:
        if scene.scene_id in seen:
            raise SceneNotFoundError(f"{scene.source}: scene {scene.scene_id} is also in "
                                     f"{seen[scene.scene_id]}; pass each scene once")
        seen[scene.scene_id] = scene.source
    return sorted(scenes, key=stacking_order)


def _parse_date(profile: Profile, text: str, where: Path) -> dt.date:
    try:
        return dt.datetime.strptime(text, profile.date_format).date()
    except ValueError:
        raise MetadataError(f"{where}: {text!r} is not a date in the form "
                            f"{profile.date_format}") from None


def _read_metadata(container: SceneFiles, profile: Profile) -> tuple[dict | None, str | None]:
    for pattern in profile.metadata:
        names = container.glob(pattern)
        if names:
            name = names[0]
            return parse_mtl(container.read_bytes(name), container.gdal_path(name)), name
    return None, None


def _one_file(container: SceneFiles, pattern: str, what: str, scene_id: str) -> str | None:
    names = container.glob(pattern)
    if len(names) > 1:
        raise MissingBandError(f"{container.location}: {len(names)} files match {pattern} for "
                               f"{what} of {scene_id}; keep one")
    return container.gdal_path(names[0]) if names else None


def open_scene(container: SceneFiles, profile: Profile, found: re.Match,
               grid: Grid | None = None) -> Scene:
    """The scene in ``container``, read by ``profile`` (``found``: its ID's match, from
    :func:`match_profile`); ``grid``, when known (from STAC ``proj:*``), spares opening
    its rasters."""
    groups = {k: v for k, v in found.groupdict().items() if v is not None}
    scene_id = found.group(0)
    sensor = profile.sensor_of(found)
    where = container.location
    if sensor not in profile.sensors:
        raise UnknownSensorError(
            f"{where}: sensor {sensor or '?'} of {scene_id} is not supported by profile "
            f"{profile.name} (supported: {', '.join(profile.sensors)}); use another profile with "
            "scenes.profile")
    mtl, mtl_name = _read_metadata(container, profile)

    bands, numbers, scale, offset, unscaled = {}, {}, {}, {}, []
    for band, suffix in profile.sensors[sensor].items():
        pattern = profile.band_file.format(band=suffix)
        gdal_path = _one_file(container, pattern, f"band {band}", scene_id)
        if gdal_path is None:
            if profile.optional_bands:
                continue
            raise MissingBandError(f"{where}: band {band} ({pattern}) of {scene_id} is missing; "
                                   "re-download the scene")
        bands[band] = gdal_path
        number = re.search(r"(\d+)$", suffix)
        numbers[band] = int(number.group(1)) if number else 0
        scale[band], offset[band] = profile.scale, profile.offset
        if mtl is not None and profile.mtl_scale and number:
            spec, group = profile.mtl_scale, profile.mtl_scale.get("group")
            mult = mtl_get(mtl, spec["mult"].format(number=numbers[band]), float, group=group)
            add = mtl_get(mtl, spec["add"].format(number=numbers[band]), float, group=group)
            if mult is None:
                unscaled.append(band)
            scale[band] = profile.scale if mult is None else mult
            offset[band] = profile.offset if add is None else add
    if not bands:
        expected = ", ".join(profile.band_file.format(band=suffix)
                             for suffix in profile.sensors[sensor].values())
        raise MissingBandError(f"{where}: no band files of {scene_id} found (profile "
                               f"{profile.name} expects {expected}); check the folder or the "
                               "profile's band_file")
    if unscaled:
        log.warning("%s: the MTL %s has no %s for band %s of %s; using the profile's scale %g and "
                    "offset %g", where, mtl_name, profile.mtl_scale["mult"].format(number="N"),
                    ", ".join(unscaled), scene_id, profile.scale, profile.offset)

    mask_path = radsat_path = None
    if profile.mask:
        mask_path = _one_file(container, profile.mask["file"], "the quality layer", scene_id)
        if mask_path is None:
            log.warning("%s: no quality layer (%s): clouds and shadows of %s cannot be masked",
                        where, profile.mask["file"], scene_id)
    if profile.saturation:
        radsat_path = _one_file(container, profile.saturation["file"], "QA_RADSAT", scene_id)

    files = list(bands.values()) + [p for p in (mask_path, radsat_path) if p]
    if grid is None:
        grid, from_mtl = _scene_grid(files, mtl, mtl_name, where)
    else:
        from_mtl = False
    path = int(groups["path"]) if "path" in groups else None
    row = int(groups["row"]) if "row" in groups else None
    attrs = {k: v for k, v in groups.items() if k not in ("sensor", "path", "row", "date")}
    return Scene(
        scene_id=scene_id, source=str(where), profile=profile.name, sensor=sensor,
        date=_parse_date(profile, groups["date"], where), path=path, row=row, bands=bands,
        band_numbers=numbers, scale=scale, offset=offset,
        nodata=None if profile.nodata is None else float(profile.nodata),
        valid_range=profile.valid_range, grid=grid,
        mask_path=mask_path, mask_kind=(profile.mask or {}).get("kind"),
        mask_codes=(profile.mask or {}).get("codes"), radsat_path=radsat_path,
        georef_from_mtl=from_mtl,
        cloud_cover=mtl_get(mtl, "CLOUD_COVER", float) if mtl else None, attrs=attrs,
        sensor_profile=profile,
    )


def _check_readable(src, path: str) -> None:
    """Cheap truncation check: the last block of a TIFF must lie inside the file."""
    if path.startswith("/vsi"):
        return
    rows, cols = src.block_shapes[0]
    last = f"BLOCK_OFFSET_{(src.width - 1) // cols}_{(src.height - 1) // rows}"
    size_key = last.replace("OFFSET", "SIZE")
    offset = src.get_tag_item(last, "TIFF", bidx=1)
    length = src.get_tag_item(size_key, "TIFF", bidx=1)
    if offset and length and int(offset) + int(length) > os.path.getsize(path):
        raise RasterReadError(f"{path}: the file is truncated (data ends before its last block); "
                              "re-download the scene")


def _scene_grid(files: list[str], mtl: dict | None, mtl_name: str | None,
                where: Path) -> tuple[Grid, bool]:
    """Grid shared by all ``files`` of a scene (raises BandShapeError if they disagree)."""
    from rasterio.errors import RasterioIOError

    from landcover.gdalio import open_raster

    grids = []
    for path in files:
        try:
            with open_raster(path) as src:
                _check_readable(src, path)
                georef = src.crs is not None or not src.transform.is_identity
                grids.append((path, georef, src.crs, src.transform, src.width, src.height))
        except RasterioIOError as exc:
            raise RasterReadError(f"{path}: cannot open the raster ({exc}); the file may be "
                                  "truncated or corrupt, re-download the scene") from None
    first = grids[0]
    for path, georef, crs, transform, width, height in grids[1:]:
        if (width, height) != (first[4], first[5]) or (georef and (crs != first[2] or
                                                                   transform != first[3])):
            raise BandShapeError(
                f"{path}: grid {width}x{height} differs from {first[0]} ({first[4]}x{first[5]}); "
                "the bands of one scene must share one grid, re-download the scene")
    if first[1]:
        if first[2] is None:
            raise BandShapeError(f"{first[0]}: the raster has a transform but no CRS; assign one "
                                 "with gdal_edit.py -a_srs")
        return Grid.from_rasterio(first[2], first[3], first[4], first[5]), False
    if mtl is None:
        raise MetadataError(f"{first[0]}: the raster has no georeferencing and the scene has no "
                            "MTL to place it; add the MTL file or georeference the rasters")
    return _grid_from_mtl(mtl, mtl_name, first[4], first[5], where), True


def _grid_from_mtl(mtl: dict, mtl_name: str, width: int, height: int, where: Path) -> Grid:
    from affine import Affine
    from rasterio.crs import CRS

    projection = mtl_get(mtl, "MAP_PROJECTION")
    zone = mtl_get(mtl, "UTM_ZONE", int)
    ulx = mtl_get(mtl, "CORNER_UL_PROJECTION_X_PRODUCT", float)
    uly = mtl_get(mtl, "CORNER_UL_PROJECTION_Y_PRODUCT", float)
    res = mtl_get(mtl, "GRID_CELL_SIZE_REFLECTIVE", float)
    if projection != "UTM" or None in (zone, ulx, uly, res):
        raise MetadataError(f"{where / mtl_name}: the rasters have no georeferencing and the MTL has "
                            "no UTM corner coordinates to place them")
    lat = mtl_get(mtl, "CORNER_UL_LAT_PRODUCT", float, default=0.0)
    epsg = utm_epsg(zone, south=lat < 0 and uly > 0)
    lines = mtl_get(mtl, "REFLECTIVE_LINES", int)
    samples = mtl_get(mtl, "REFLECTIVE_SAMPLES", int)
    if (lines, samples) != (height, width):
        raise MetadataError(f"{where / mtl_name}: the MTL describes {samples}x{lines} pixels but the "
                            f"rasters have {width}x{height}; cannot place ungeoreferenced rasters")
    transform = Affine(res, 0.0, ulx - res / 2, 0.0, -res, uly + res / 2)  # corners: pixel centres
    return Grid.from_rasterio(CRS.from_epsg(epsg), transform, width, height)
