"""Scene discovery: folders, EarthExplorer ``.tar`` archives, or folders that contain them.

:func:`find_scenes` turns the paths a user gives into :class:`Scene` records (product ID, sensor,
date, band files by band name, scale/offset, nodata and valid range, the quality layers, and the
raster grid: :mod:`landcover.scene_files` reads one scene's files). :func:`scene_source` is the
source of a command's SCENES arguments: these paths and STAC documents (:mod:`landcover.stac`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from landcover.errors import SceneNotFoundError
from landcover.profiles import Profile, resolve_profiles
from landcover.scene_files import (
    ARCHIVE_SUFFIXES,
    Scene,
    SceneFiles,
    match_profile,
    name_matches,
    open_scene,
    scene_profile,
    scene_profiles,
    stacking_order,
    unique_scenes,
)

log = logging.getLogger(__name__)

__all__ = ["LocalScenes", "Scene", "SceneSource", "Sources", "as_scenes", "find_scenes",
           "name_matches", "scene_profile", "scene_profiles", "scene_source", "stacking_order",
           "unique_scenes"]


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _scan(path: Path, profiles: Sequence[Profile]) -> list[Scene]:
    """Open every scene at or under ``path``.

    A folder whose name or files match a profile is a scene (its subfolders are not searched); other
    folders are searched recursively, and archives inside them are scenes.
    """
    if path.is_file():
        container = SceneFiles.from_archive(path)
        matched = match_profile(profiles, container)
        return [open_scene(container, *matched)] if matched else []
    scenes = []
    seen: set[str] = set()  # real paths of the folders walked: symlinked folders are followed once
    for root, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            log.warning("%s: a symlink to a folder already read (%s); skipped", root, real)
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        root_path = Path(root)
        if any(f.lower().endswith((".tif", ".tiff")) for f in files):
            container = SceneFiles.from_folder(root_path)
            matched = match_profile(profiles, container)
            if matched:
                scenes.append(open_scene(container, *matched))
                dirs[:] = []
                continue
        for f in sorted(files):
            if f.lower().endswith(ARCHIVE_SUFFIXES):
                scenes.extend(_scan(root_path / f, profiles))
    return scenes


def find_scenes(paths: Sequence[str | os.PathLike], *,
                profile: str | Profile | Sequence[Profile] = "auto") -> list[Scene]:
    """Discover and open every scene under ``paths``, sorted by date then path/row.

    Args:
        paths: scene folders, ``.tar`` archives, or folders containing them (searched recursively).
        profile: ``auto``, a shipped profile name, the path of a profile YAML, or
            :class:`~landcover.profiles.Profile` objects (e.g. from
            :func:`landcover.profiles.profile_from_record`), tried in order.

    Raises:
        SceneNotFoundError: a path does not exist, is empty, or holds no recognisable scene.
        UnknownSensorError, MissingBandError, MetadataError, BandShapeError, RasterReadError.
    """
    profiles = resolve_profiles(profile)
    scenes: list[Scene] = []
    for raw in paths:
        path = Path(raw).absolute()  # dask workers (other processes, machines) open files by path
        if not path.exists():
            raise SceneNotFoundError(f"{path}: no such file or folder")
        if path.is_dir() and not any(path.iterdir()):
            raise SceneNotFoundError(f"{path}: the folder is empty; point to Landsat scene folders "
                                     "or .tar archives")
        if path.is_file() and not _is_archive(path):
            raise SceneNotFoundError(f"{path}: not a scene folder or a .tar archive")
        found = _scan(path, profiles)
        if not found:
            names = ", ".join(p.name for p in profiles)
            raise SceneNotFoundError(
                f"{path}: no recognisable Landsat scene (tried profile{'s' * (len(profiles) > 1)} "
                f"{names}); expected folders or .tar archives named like "
                "LC08_L2SP_PPPRRR_YYYYMMDD_YYYYMMDD_02_T1 that hold the profile's band files, or "
                "set scenes.profile to a profile YAML for another layout")
        scenes.extend(found)
    return unique_scenes(scenes)


@runtime_checkable
class SceneSource(Protocol):
    """Anything that lists scenes: local paths (:class:`LocalScenes`), later a STAC search.

    The library's entry points (``prepare``, ``classify``) take a source or a sequence of
    :class:`Scene` objects; a scene's files may be any path GDAL opens (a local file,
    ``/vsitar/...``, ``/vsicurl/https://...``)."""

    def scenes(self) -> list[Scene]:
        """The scenes, opened (IDs, dates, band paths, grids), in :func:`stacking_order`."""
        ...


@dataclass(frozen=True)
class LocalScenes:
    """Scene folders, ``.tar`` archives, or folders that contain them (see :func:`find_scenes`)."""

    paths: tuple[str, ...]
    profile: str | Profile | tuple[Profile, ...] = "auto"

    def scenes(self) -> list[Scene]:
        return find_scenes(self.paths, profile=self.profile)


@dataclass(frozen=True)
class Sources:
    """Several sources as one (local folders and STAC documents on one command line)."""

    parts: tuple

    def scenes(self) -> list[Scene]:
        return unique_scenes([s for part in self.parts for s in part.scenes()])


def scene_source(paths: Sequence[str], profile="auto", signer=None) -> SceneSource:
    """The source of SCENES arguments: STAC documents (``.json`` files or http(s) URLs, see
    :mod:`landcover.stac`) and scene folders, archives or folders of them (:class:`LocalScenes`)."""
    from landcover.stac import StacScenes, is_stac

    stac = tuple(str(p) for p in paths if is_stac(str(p)))
    local = tuple(str(p) for p in paths if not is_stac(str(p)))
    parts = ([LocalScenes(local, profile)] if local else []) + \
        ([StacScenes(stac, profile, signer)] if stac else [])
    return parts[0] if len(parts) == 1 else Sources(tuple(parts))


def as_scenes(source: SceneSource | Sequence[Scene]) -> list[Scene]:
    """The scenes of a source or a sequence of scenes, in :func:`stacking_order`.

    Raises:
        SceneNotFoundError: there are none.
        TypeError: ``source`` holds something else than :class:`Scene` objects (such as paths:
            turn those into scenes with :class:`LocalScenes` or :func:`find_scenes`).
    """
    if isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected scenes, got the path {str(source)!r}; turn paths into scenes "
                        "with landcover.scenes.LocalScenes")
    scenes = source.scenes() if isinstance(source, SceneSource) else list(source)
    if not scenes:
        raise SceneNotFoundError("no scenes given")
    for scene in scenes:
        if not isinstance(scene, Scene):
            raise TypeError(f"expected Scene objects, got {type(scene).__name__} {scene!r}; "
                            "turn paths into scenes with landcover.scenes.LocalScenes")
    return sorted(scenes, key=stacking_order)
