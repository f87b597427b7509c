"""A classification run: the plan, the block store, the block tasks on the current dask
scheduler, then the map products from the finished store, under the output lock."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landcover.bundle import BundleMeta, check_bundle
from landcover.catalog import write_map_item
from landcover.classes import ClassTable
from landcover.classify.blocks import classify_block, reading_ahead
from landcover.classify.plan import Plan, build_plan, check_resources, resolve_config
from landcover.classify.store import fingerprint, full_disk_error, open_store, partial_path
from landcover.classify.worker import loading_in_background
from landcover.config import Config
from landcover.errors import ModelError
from landcover.maps import (
    class_areas,
    draw_quicklook,
    map_tags,
    store_preview,
    write_errors,
    write_map,
    write_probabilities,
    write_style,
)
from landcover.outputs import OutputSet, remove
from landcover.postprocess import configured_steps
from landcover.postprocess import describe as describe_steps
from landcover.products import output_paths
from landcover.scenes import Scene, SceneSource

log = logging.getLogger(__package__)  # the package's: messages keep the name "landcover.classify"


def classify(scenes: SceneSource | Sequence[Scene], model_dir: str | Path, out: str | Path,
             cfg: Config | None = None, *, meta: BundleMeta | None = None,
             probabilities: bool = False, overwrite: bool = False, resume: bool = False,
             post: Sequence = (), progress=None) -> dict:
    """Classify the scenes with a model bundle; returns a summary of the run.

    Args:
        scenes: a :class:`~landcover.scenes.SceneSource` or :class:`~landcover.scenes.Scene`
            objects (:func:`model_scenes` reads local paths with the bundle's sensor profiles).
        post: post-processing steps (:mod:`landcover.postprocess`), applied to the probabilities
            of every block with the halo they need; the config's steps (``classify.smooth``,
            when enabled) follow them.
        progress: a :mod:`landcover.progress` reporter (``True`` logs stages; ``None`` silent).

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`). Everything that can be
    checked (bundle, scenes, bands, grids, dates, outputs) is checked before anything is written.

    Raises:
        ModelError, OutputExistsError, OutputLockedError, ResumeError, SceneError,
        GridMismatchError, ConfigError.
    """
    t_start = time.perf_counter()
    model_dir = Path(model_dir).absolute()
    if meta is None or cfg is None:
        meta, cfg = resolve_config(model_dir)
    post = (*post, *configured_steps(cfg, sorted(meta.class_codes)))
    paths = output_paths(out, probabilities, cfg.classify.quicklook)
    with OutputSet(list(paths.values()), overwrite, folders=[False] * len(paths)) as outputs:
        try:
            return _run(Request(scenes, model_dir, cfg, meta, paths, probabilities, resume,
                                post, progress, t_start), outputs)
        except write_errors() as exc:
            stopped = full_disk_error(exc, paths["map"])
            if stopped is None:
                raise
            raise stopped from exc


@dataclass(frozen=True)
class Request:
    """What :func:`classify` was asked for, resolved: the scenes, the bundle with its metadata and
    the config, the products to write, the options, and the time the run started."""

    scenes: SceneSource | Sequence[Scene]
    model_dir: Path
    cfg: Config
    meta: BundleMeta
    paths: dict[str, Path]  # the products (landcover.products.output_paths)
    probabilities: bool
    resume: bool
    post: tuple  # the post-processing steps, the config's last
    progress: object  # a landcover.progress reporter, True or None
    t_start: float  # time.perf_counter() when the run started


def _run(req: Request, outputs: OutputSet) -> dict:
    """The classification, under the output lock."""
    import dask

    from landcover.scheduler import compute

    out = req.paths["map"]
    plan, kept, table = build_plan(req.scenes, req.model_dir, req.cfg, req.meta,
                                   partial_path(out), req.probabilities, req.post)
    check_resources(plan, req.meta, out.parent)
    check_bundle(req.model_dir)  # a truncated or foreign model fails here, before any writing
    resumed = open_store(plan, fingerprint(plan, kept, req.cfg), req.resume)
    log.info("%d dates, grid %s, window %d px (overlap %d), %d blocks of %d px%s", len(kept),
             plan.grid.describe(), plan.window, plan.overlap, len(plan.blocks()), plan.block,
             f", {resumed} already done" if resumed else "")

    shared = dask.delayed(plan, traverse=False)  # one graph key: its fields are not walked
    here = runs_here()
    tasks, previous = [], None
    for i, j in plan.blocks():
        if here:  # one block after the other, in plan order: the read-ahead's order
            previous = dask.delayed(block_in_turn, pure=False)(shared, i, j, previous)
            tasks.append(previous)
        else:  # a cluster's workers take the blocks as they come, each its own model
            tasks.append(dask.delayed(classify_block, pure=False)(shared, i, j))
    import dask.threaded  # the scheduler's imports before the model's, not beside
    # the model loads while the first block is read; started after this thread's own imports,
    # which would otherwise compete with Keras's for Python's lock (README, "Benchmarks");
    # the next block is read while one is predicted, and the quicklook's imports are done
    # while the last is
    warm = warm_quicklook if "quicklook" in req.paths else None
    with loading_in_background(plan), \
            (reading_ahead(plan, when_idle=warm) if here else contextlib.nullcontext()):
        try:
            (results,) = compute(tasks, label="Classifying", show=req.progress, unit="blocks")
        except ModelError:  # the model would not load: nothing of this run is worth resuming
            if not req.resume:
                remove(Path(plan.store))
            raise
    t_model = time.perf_counter()
    counts = np.sum([r["counts"] for r in results], axis=0)
    write_products(plan, kept, table, req.meta, req.cfg, req.paths, outputs, counts)
    remove(Path(plan.store))
    return {
        "output": str(out), "files": {k: str(v) for k, v in req.paths.items()},
        "grid": plan.grid.to_dict(), "dates": [d.isoformat() for d, _ in kept],
        "window": plan.window, "overlap": plan.overlap, "blend": plan.blend,
        "block_size": plan.block, "batch_size": plan.batch_size, "precision": plan.precision,
        "features_on": plan.features_on,
        "predictions_per_pixel": round(predictions_per_pixel(plan, results), 3),
        "post": describe_steps(plan.post),
        "blocks": len(results), "blocks_resumed": resumed,
        "windows": int(sum(r["windows"] for r in results)),
        "windows_skipped": int(sum(r["windows_skipped"] for r in results)),
        "nodata_pixels": int(sum(r["nodata"] for r in results)),
        "classified_pixels": int(counts.sum()), "classes": class_areas(table, counts, plan.grid),
        "model": str(req.model_dir), "content_hash": req.meta.content_hash,
        "seconds": round(time.perf_counter() - req.t_start, 2),
        "seconds_classifying": round(t_model - req.t_start, 2),
    }


def write_products(plan: Plan, kept, table: ClassTable, meta: BundleMeta, cfg: Config,
                   paths: dict[str, Path], outputs: OutputSet, counts) -> None:
    """The map products from the finished store, each under a temporary name, then put in place
    as one set (the map last: its presence means the run completed)."""
    resolved = cfg.to_dict()
    config = {"scenes": resolved["scenes"],
              "classify": {**resolved["classify"], "window": plan.window,
                           "overlap": plan.overlap, "blend": plan.blend,
                           "block_size": plan.block, "batch_size": plan.batch_size,
                           "precision": plan.precision, "features_on": plan.features_on,
                           "post": describe_steps(plan.post)},
              "model": meta.config}
    tags = map_tags(meta, [d for d, _ in kept], ["+".join(s.scene_id for s in g) for _, g in kept],
                    config, plan.bundle)
    windows = [plan.block_window(i, j) for i, j in plan.blocks()]
    tmp = {k: outputs.temporary(p) for k, p in paths.items()}
    def draw():  # from the store (Python's lock, mostly) while GDAL writes the COG
        draw_quicklook(store_preview(plan.store, plan.grid), plan.grid.bounds, plan.grid.crs,
                       table, counts, tmp["quicklook"],
                       title=f"{paths['map'].name}: {kept[0][0]} .. {kept[-1][0]}, "
                             f"{len(kept)} dates")

    with ThreadPoolExecutor(1, thread_name_prefix="landcover-quicklook") as drawing:
        quicklook = drawing.submit(draw) if "quicklook" in paths else None
        write_map(plan.store, plan.grid, windows, table, tmp["map"], tags, legend=tmp["legend"])
        write_style(table, tmp["style"])
        if plan.probabilities:
            write_probabilities(plan.store, plan.grid, windows, table, tmp["probabilities"],
                                tags, plan.probability_dtype, plan.uncertainty)
    if quicklook is not None:
        quicklook.result()  # its error, if any
    # the STAC item last: sizes and checksums of the temporaries (renaming keeps the bytes)
    write_map_item(tmp["item"], paths, plan.grid, kept, table, meta, files=tmp,
                   probability_dtype=plan.probability_dtype, uncertainty=plan.uncertainty)
    outputs.commit({paths[k]: tmp[k] for k in paths})


def predictions_per_pixel(plan: Plan, results: list[dict]) -> float:
    """Window pixels predicted per pixel of the grid (1.0: no pixel predicted twice)."""
    windows = sum(r["windows"] for r in results)
    return windows * plan.window ** 2 / max(1, plan.grid.width * plan.grid.height)


def runs_here() -> bool:
    """The block tasks run in this process (dask's threaded or synchronous scheduler, no
    distributed client): they then run one at a time, in order, and read ahead
    (:func:`landcover.classify.blocks.reading_ahead`); the model already uses every core for one
    call, so two blocks in it at once only took turns."""
    import dask

    if "distributed" in sys.modules:  # as landcover.scheduler.compute finds a client
        from distributed import get_client

        try:
            get_client()
            return False
        except ValueError:
            pass
    return dask.config.get("scheduler", None) in (None, "threads", "threading", "synchronous",
                                                  "sync", "single-threaded")


def block_in_turn(plan: Plan, i: int, j: int, previous) -> dict:
    """:func:`classify_block` after the block before it (``previous``: its result, unused)."""
    return classify_block(plan, i, j)


def warm_quicklook() -> None:
    """Import what the quicklook draws with (about 0.4 s of one core) while the model predicts
    the last blocks, not after them."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure
    import matplotlib.patches  # noqa: F401 - the quicklook's imports
