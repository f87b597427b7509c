"""What ``landcover info`` reports: per-scene metadata and QA fractions, and the stack as a whole.

QA fractions are counted window by window (memory bounded by ``chunk_size``), from the quality layer
alone: ``fill`` is a share of all pixels; ``cloud``, ``cloud_shadow``, ``cirrus``, ``snow`` and ``water``
are shares of the non-fill pixels; ``valid`` is the share of non-fill pixels that no configured invalid
flag (and, with ``scenes.mask.saturation``, no QA_RADSAT bit of the stacked bands) excludes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from landcover import qa
from landcover.config import ScenesConfig
from landcover.gdalio import read_window
from landcover.scenes import Scene
from landcover.stack import check_alignment, common_bands, target_grid

REPORTED_FLAGS = ("cloud", "cloud_shadow", "cirrus", "snow", "water")


def qa_fractions(scene: Scene, cfg: ScenesConfig) -> dict:
    """Fill, cloud, shadow, cirrus, snow, water and valid fractions of one scene from its QA layers."""
    grid, step = scene.grid, cfg.chunk_size
    bands = [b for b in cfg.bands if b in scene.bands] or list(scene.bands)
    counts = {name: 0 for name in ("pixels", "fill", "valid", *REPORTED_FLAGS)}
    known = set(qa.known_flags(scene.mask_kind, scene.mask_codes)) if scene.mask_path else set()
    for row0, col0, h, w in grid.tiles(step):
        counts["pixels"] += h * w
        if scene.mask_path:
            layer = read_window(scene.mask_path, grid, grid, row0, col0, h, w, 0,
                                 resampling="nearest")
            flags = qa.decode(scene.mask_kind, layer, scene.mask_codes)
            fill = flags.get("fill", np.zeros((h, w), bool))
            invalid = qa.invalid_mask(scene.mask_kind, layer, cfg.mask.invalid_flags,
                                      scene.mask_codes) | fill
        else:
            first = next(iter(scene.bands.values()))
            dn = read_window(first, grid, grid, row0, col0, h, w, 0, resampling="nearest")
            fill = dn == scene.nodata if scene.nodata is not None else np.zeros(dn.shape, bool)
            flags, invalid = {}, fill.copy()
        if scene.radsat_path and cfg.mask.saturation:
            radsat = read_window(scene.radsat_path, grid, grid, row0, col0, h, w, 0,
                                  resampling="nearest")
            invalid |= qa.radsat_mask(radsat, [scene.band_numbers[b] for b in bands])
        counts["fill"] += int(fill.sum())
        counts["valid"] += int((~invalid).sum())
        for name in REPORTED_FLAGS:
            if name in flags:
                counts[name] += int((flags[name] & ~fill).sum())
    data = counts["pixels"] - counts["fill"]
    out = {"fill_fraction": counts["fill"] / counts["pixels"] if counts["pixels"] else 0.0,
           "valid_fraction": counts["valid"] / data if data else 0.0}
    for name in REPORTED_FLAGS:
        has = name in known
        out[f"{name}_fraction"] = (counts[name] / data if data else 0.0) if has else None
    return out


def scene_summary(scene: Scene, cfg: ScenesConfig) -> dict:
    """Everything ``info`` says about one scene, JSON-ready."""
    grid = scene.grid
    return {
        "scene_id": scene.scene_id, "sensor": scene.sensor, "date": scene.date.isoformat(),
        "path_row": scene.path_row, "profile": scene.profile, "source": scene.source,
        "crs": grid.crs, "width": grid.width, "height": grid.height,
        "resolution": list(grid.res), "transform": list(grid.transform),
        "georeferenced_from_mtl": scene.georef_from_mtl, "bands": list(scene.bands),
        "has_qa": scene.mask_path is not None, "mtl_cloud_cover": scene.cloud_cover,
        **qa_fractions(scene, cfg),
    }


def stack_summary(scenes: Sequence[Scene], cfg: ScenesConfig) -> dict:
    """The stack the scenes would make with ``cfg``: grid, dates, bands, size, reprojections."""
    grid = target_grid(scenes, cfg.grid)
    if not cfg.grid.align:
        check_alignment(scenes, grid)
    bands = [b for b in cfg.bands if all(b in s.bands for s in scenes)] or list(common_bands(scenes))
    dates = sorted({s.date for s in scenes})
    reprojected = [s.scene_id for s in scenes if not grid.same_lattice(s.grid)]
    nbytes = len(dates) * (len(bands) * 4 + 1) * grid.width * grid.height
    return {
        "dates": len(dates), "first_date": dates[0].isoformat(), "last_date": dates[-1].isoformat(),
        "scenes": len(scenes), "mosaicked_dates": len(scenes) - len(dates), "bands": bands,
        "missing_bands": [b for b in cfg.bands if b not in bands],
        "grid": grid.to_dict(), "grid_description": grid.describe(),
        "reprojected_scenes": reprojected, "size_bytes": nbytes, "chunk_size": cfg.chunk_size,
    }


def summarize(scenes: Sequence[Scene], cfg: ScenesConfig, progress=None) -> dict:
    """Per-scene summaries and the stack summary; ``progress``: a :mod:`landcover.progress`
    reporter, told of every scene read."""
    from landcover.progress import stage

    out = []
    with stage(progress, "Reading QA", len(scenes)) as s:
        for scene in scenes:
            out.append(scene_summary(scene, cfg))
            s.advance()
    return {"scenes": out, "stack": stack_summary(scenes, cfg)}


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""  # pragma: no cover


def _pct(value) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}%"


def format_text(report: dict) -> str:
    """Human-readable ``info`` output: one line per scene, then the stack."""
    lines = [f"{'scene':<42} {'sensor':<6} {'date':<10} {'grid':<30} {'valid':>6} {'cloud':>6} "
             f"{'shadow':>6} {'fill':>6}"]
    for s in report["scenes"]:
        grid = f"{s['crs'] if s['crs'].startswith('EPSG') else 'custom CRS'} {s['width']}x" \
               f"{s['height']} @ {s['resolution'][0]:g} m"
        if s["georeferenced_from_mtl"]:
            grid += " (MTL)"
        lines.append(f"{s['scene_id']:<42} {s['sensor']:<6} {s['date']:<10} {grid:<30} "
                     f"{_pct(s['valid_fraction'])} {_pct(s['cloud_fraction'])} "
                     f"{_pct(s['cloud_shadow_fraction'])} {_pct(s['fill_fraction'])}")
    st = report["stack"]
    lines.append("")
    lines.append(f"stack: {st['dates']} dates ({st['first_date']} .. {st['last_date']}) from "
                 f"{st['scenes']} scenes ({st['mosaicked_dates']} mosaicked), bands "
                 f"{','.join(st['bands'])}")
    lines.append(f"       grid {st['grid_description']}, {_size(st['size_bytes'])} when "
                 f"loaded, chunks of {st['chunk_size']} px; {len(st['reprojected_scenes'])} "
                 "scene(s) reprojected onto it")
    if st["missing_bands"]:
        lines.append(f"       not in every scene: {','.join(st['missing_bands'])} (set "
                     "scenes.bands to stack these scenes)")
    return "\n".join(lines)
