"""``landcover prepare``'s stages, in order, and :func:`prepare` that runs them (the package's
docstring lists what each does)."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landcover.classes import ClassTable, load_class_table
from landcover.config import Config
from landcover.contract import IGNORE
from landcover.dataset import write_checksums
from landcover.errors import DatasetError, LabelError
from landcover.features import FeatureSpec
from landcover.labels import open_labels
from landcover.lattice import make_layout
from landcover.outputs import OutputSet
from landcover.prepare.groups import estimate_groups, window_groups
from landcover.prepare.output import (
    dataset_attributes,
    check_room,
    class_records,
    build_dataset,
    summarise,
    write_dataset,
)
from landcover.prepare.records import (
    CHUNK_PATCHES,
    Accounting,
    Assignment,
    Counts,
    Dates,
    Features,
    Kept,
    Sources,
    Stats,
    Survey,
    Windows,
    Work,
)
from landcover.prepare.tiles import (
    class_weights,
    extract_tile,
    final_inputs,
    ignore_unobserved,
    kept_pixels,
    label_report,
    plan_tile,
    survey_tile,
)
from landcover.scenes import Scene, SceneSource, as_scenes

log = logging.getLogger(__name__)


def prepare(scenes: SceneSource | Sequence[Scene], labels_path: str | Path, out: str | Path,
            cfg: Config, *, overwrite: bool = False, progress=None) -> dict:
    """Build the patch dataset; returns the summary (also stored in the dataset's attributes).

    Args:
        scenes: a :class:`~landcover.scenes.SceneSource` (such as
            ``LocalScenes(paths, cfg.scenes.profile)``) or a sequence of
            :class:`~landcover.scenes.Scene` objects. Their files are opened by path in dask
            tasks: with a distributed scheduler, give absolute paths or GDAL URLs
            (:func:`~landcover.scenes.find_scenes` makes paths absolute).
        progress: a :mod:`landcover.progress` reporter (``True`` logs stages; ``None`` silent).
        labels_path: label raster or vector file.
        out: the dataset folder to write.
        cfg: the configuration (``scenes`` and ``prepare`` sections).

    Runs on the current dask scheduler (see :mod:`landcover.scheduler`).

    Raises:
        OutputExistsError, SceneError, LabelError, ClassTableError, DatasetError.
        TypeError: ``scenes`` holds something else than Scene objects (such as paths).
    """
    # absolute paths: dask workers (other processes, other machines) open files by path
    out = Path(out).absolute()
    labels_path = Path(labels_path).absolute()
    with OutputSet([out], overwrite, folders=[True]) as outputs:
        summary = _run(scenes, labels_path, outputs, cfg, progress)
    summary["output"] = str(out)
    return summary


def _run(scenes, labels_path: Path, outputs: OutputSet, cfg: Config, progress) -> dict:
    """The stages, under the output lock."""
    p = cfg.prepare
    src = _layout(scenes, labels_path, cfg)
    dropped = None
    if p.labels.drop_suspect:
        src, dropped = _drop_suspect(src, cfg, progress)
    survey = _survey(src, p, progress)
    src, survey, fitted = _fit_blocks(src, survey, p, progress)
    table, unknown = _resolve_table(src, survey)
    assignment = _assign(survey, table, src.groups, p.split)
    planned = _plan(src, table, assignment, p, progress)
    check_room(outputs.main, planned, src)
    tmp, work_path = outputs.temporary(kind="tmp"), outputs.temporary(kind="work")
    work = _extract(work_path, planned, src, table, assignment, cfg, progress)
    windows = Windows.of(planned)
    counts = _count_valid(work, progress)
    dates = _select_dates(src, counts, p.features)
    kept, placed_labels = _check_windows(work, windows, counts, dates, p, progress)
    accounting = _account_labels(src, table, survey, assignment, windows, kept,
                                 placed_labels, p)
    del placed_labels
    stats = _statistics(work, kept, dates, progress)
    weights = class_weights(accounting.pixels[0], table, p.weights)
    features = _features(work, kept, dates, stats, src.bands, weights, p)
    classes = class_records(table, weights, accounting.pixels)
    summary = summarise(kept, dates, counts, classes, accounting, assignment, unknown, p,
                       src.layout.size)
    if fitted is not None:
        summary["split"]["block_size"] = fitted
    if dropped is not None:
        summary["suspect_samples"] = dropped
    estimate = estimate_groups(src.groups, src.grid)
    summary["estimate_groups"] = {"kind": estimate.kind,
                                  **({"block_size": estimate.block} if estimate.kind == "blocks"
                                     else {})}
    attrs = dataset_attributes(src, cfg, dates, stats, classes, summary, features.names)
    groups = window_groups(estimate, src.grid, windows, kept)
    write_dataset(build_dataset(src, windows, kept, dates, features, attrs, groups), tmp, src,
                  progress)
    write_checksums(tmp)
    outputs.commit({outputs.main: tmp})
    return summary


MIN_GROUPS = 10


MIN_BLOCK = 8


def _group_count(survey: Survey) -> int:
    return len(np.unique(survey.group_keys // 256))


def _fit_blocks(src: Sources, survey: Survey, p, progress):
    """Stage 2b: with ``prepare.split.by: blocks``, halve the block size until the labelled area
    spans :data:`MIN_GROUPS` blocks (a block of the whole labelled area leaves validation and test
    empty). Returns ``(src, survey, the fitted block size or None)``.

    Raises:
        DatasetError: no block size of at least :data:`MIN_BLOCK` px gives enough blocks; the
            message names ``prepare.split.block_size``.
    """
    import dataclasses

    n = _group_count(survey)
    if src.groups.kind != "blocks" or n >= MIN_GROUPS:
        return src, survey, None
    first = block = src.groups.block
    while n < MIN_GROUPS and block // 2 >= MIN_BLOCK:
        block //= 2
        src = dataclasses.replace(src, groups=dataclasses.replace(src.groups, block=block))
        survey = _survey(src, p, progress)
        n = _group_count(survey)
    if n < MIN_GROUPS:
        raise DatasetError(f"prepare.split.block_size: the labelled pixels span {n} block(s) of "
                           f"{block} px (from {first}); splits and folds need {MIN_GROUPS}. Label "
                           "more of the area, or split by polygon (prepare.split.by=column)")
    log.warning("prepare.split.block_size: the labelled pixels span too few blocks of %d px; "
                "blocks of %d px instead (%d blocks)", first, block, n)
    return src, survey, block


def _layout(scenes: SceneSource | Sequence[Scene], labels_path: Path, cfg: Config) -> Sources:
    """Stage 1: the scenes' stack (validates bands and grids; nothing is read), the labels and
    split groups on its grid, and the window lattice."""
    from landcover.splits import open_groups
    from landcover.stack import date_groups, grid_of, stack_scenes

    p = cfg.prepare
    table = load_class_table(p.classes) if p.classes else None
    scenes = as_scenes(scenes)
    stack = stack_scenes(scenes, cfg.scenes)
    grid = grid_of(stack)
    dates = date_groups(scenes)
    labels = open_labels(labels_path, grid, p.labels, table)
    groups = open_groups(p.split, labels, labels_path, grid)
    layout = make_layout(grid, cfg)
    log.info("%d dates, grid %s, %d window positions", len(dates), grid.describe(),
             layout.n_rows * layout.n_cols)
    return Sources(scenes, dates, [str(b) for b in stack.band.values], grid, labels, groups,
                    layout, table, labels_path)


def _drop_suspect(src: Sources, cfg: Config, progress) -> tuple[Sources, dict]:
    """Stage 1b (``prepare.labels.drop_suspect``): the labels without the samples that
    :func:`landcover.check_samples.suspect_samples` marks suspect (a fixed ``test`` split of
    ``prepare.split.column`` kept as labelled), and what was dropped."""
    from landcover.check_samples import suspect_samples
    from landcover.splits import open_groups

    p = cfg.prepare
    found = suspect_samples(src.scenes, src.labels, cfg, progress=progress)
    spare = p.split.column if p.split.by == "column" else None
    labels = found.drop_from(src.labels, spare=spare)
    total = len(found.result.table)
    log.warning("prepare.labels.drop_suspect: dropped %d suspect samples of %d", len(found),
                total)
    groups = open_groups(p.split, labels, src.labels_path, src.grid)
    summary = {"dropped": len(found), "samples": total, "check": found.result.summary}
    return dataclasses.replace(src, labels=labels, groups=groups), summary


def _survey(src: Sources, p, progress) -> Survey:
    """Stage 2: class codes per pixel, counted per code and per (split group, code)."""
    import dask

    from landcover.scheduler import compute

    labels_d = dask.delayed(src.labels, traverse=False)
    tasks = [dask.delayed(survey_tile, pure=True)(labels_d, src.groups, src.grid, core,
                                                  p.labels.erode)
             for core, _ in src.layout.tiles()]
    (surveyed,) = compute(tasks, label="Reading labels", show=progress)
    keys = np.concatenate([s[2] for s in surveyed])
    counts = np.concatenate([s[3] for s in surveyed])
    keys, inverse = np.unique(keys, return_inverse=True)
    return Survey(hist=np.sum([s[0] for s in surveyed], axis=0),
                   not_a_code=sum(s[1] for s in surveyed), group_keys=keys,
                   group_counts=np.bincount(inverse, weights=counts,
                                            minlength=len(keys)).astype(np.int64),
                   no_group=np.sum([s[4] for s in surveyed], axis=0))


def _resolve_table(src: Sources, survey: Survey) -> tuple[ClassTable, dict]:
    """Stage 2 (end): the class table (derived from the codes seen when none is configured) and
    the labelled pixels whose codes are not in it."""
    hist, not_a_code, table = survey.hist, survey.not_a_code, src.table
    if hist.sum() + not_a_code == 0:
        raise LabelError(f"{src.labels_path}: no labelled pixel falls on the scenes' grid; the "
                         "labels do not overlap the scenes")
    if table is None:
        seen = np.flatnonzero(hist[:255])
        if len(seen) == 0:
            raise LabelError(f"{src.labels_path}: no usable class code (0..254) in the labels")
        table = src.labels.table(seen.tolist())
        log.info("class table derived from the labels: %s", table.describe())
    unknown = {int(c): int(hist[c]) for c in np.flatnonzero(hist) if c not in table.codes}
    if not_a_code:
        unknown["not a class code"] = int(not_a_code)
    if unknown:
        log.warning("%s: %d labelled pixels have codes outside the class table and are ignored: %s",
                    src.labels_path, sum(unknown.values()),
                    ", ".join(f"{k}: {v} px" for k, v in unknown.items()))
    return table, unknown


def _assign(survey: Survey, table: ClassTable, split_groups, sc) -> Assignment:
    """Stage 3: every split group to a split, stratified by class."""
    from landcover.splits import NONE, assign_groups

    lut = table.lut()
    gid, code = survey.group_keys // 256, survey.group_keys % 256
    cls = lut[code]
    ok = cls != IGNORE
    ids, inv = np.unique(gid, return_inverse=True)
    matrix = np.zeros((len(ids), len(table)), np.int64)
    np.add.at(matrix, (inv[ok], cls[ok].astype(np.int64)), survey.group_counts[ok])
    fixed = split_groups.fixed(ids)
    split = assign_groups(matrix, sc.fractions, sc.seed, fixed)
    per_split = [int((split == k).sum()) for k in range(3)]
    log.info("split groups (%s): %d train, %d validation, %d test, %d none", split_groups.kind,
             *per_split, int((split == NONE).sum()))
    return Assignment(lookup=(ids.astype(np.int64), split.astype(np.int64)), groups=per_split,
                       none_pixels=matrix[split == NONE].sum(axis=0).tolist(),
                       fixed_splits=sorted({int(k) for k in fixed.values() if k < NONE}))


def _plan(src: Sources, table: ClassTable, assignment: Assignment, p, progress) -> list:
    """Stage 4: the windows ``(row, col, split)`` to cut, per tile (tiles without any dropped)."""
    import dask

    from landcover.scheduler import compute

    known = np.zeros(256, bool)
    known[table.codes] = True
    labels_d = dask.delayed(src.labels, traverse=False)
    tasks = [dask.delayed(plan_tile, pure=True)(labels_d, src.groups, src.grid, src.layout, core,
                                                known, p.labels.erode, assignment.lookup,
                                                p.split.gap, p.patches.min_labelled)
             for core, _ in src.layout.tiles()]
    (planned,) = compute(tasks, label="Placing windows", show=progress)
    planned = [tile for tile in planned if tile]
    if not planned:
        raise DatasetError("no labelled pixel of a known class falls in a split (check the labels, "
                           "the class table and prepare.split)")
    return planned


def _extract(work: Path, planned: list, src: Sources, table: ClassTable,
             assignment: Assignment, cfg: Config, progress) -> Work:
    """Stage 5: cut the windows from every date into an uncompressed work store."""
    import dask
    import dask.array as da
    import zarr

    from landcover.scheduler import compute

    p = cfg.prepare
    T, B, s = len(src.dates), len(src.bands), src.layout.size
    labels_d = dask.delayed(src.labels, traverse=False)
    scenes_d = dask.delayed(tuple(g for _, g in src.dates), traverse=False)
    parts = {"reflectance": [], "valid": [], "labels": []}
    for tile in planned:
        part = dask.delayed(extract_tile, pure=True, nout=3)(
            scenes_d, tuple(src.bands), src.grid, cfg.scenes.mask, labels_d, src.groups,
            table.lut(), src.layout, tuple(tile), p.labels.erode, assignment.lookup, p.split.gap)
        k = len(tile)
        parts["reflectance"].append(da.from_delayed(part[0], (k, T, s, s, B), np.float32))
        parts["valid"].append(da.from_delayed(part[1], (k, T, s, s), bool))
        parts["labels"].append(da.from_delayed(part[2], (k, s, s), np.uint8))
    stores = []
    group = zarr.open_group(str(work), mode="w")
    for name, items in parts.items():
        arr = da.concatenate(items).rechunk({0: CHUNK_PATCHES})
        # Uncompressed: read several times, then deleted. Each dask chunk is one Zarr chunk.
        target = group.create_array(name, shape=arr.shape, dtype=arr.dtype,
                                    chunks=(CHUNK_PATCHES,) + arr.shape[1:], compressors=None)
        stores.append(da.store(arr, target, lock=False, compute=False))
    compute(*stores, label="Cutting patches", show=progress)

    def open_work(name):
        z = zarr.open_array(str(work / name), mode="r")
        return da.from_zarr(z, chunks=(CHUNK_PATCHES,) + z.shape[1:])

    return Work(str(work), open_work("reflectance"), open_work("valid"), open_work("labels"))


def _count_valid(work: Work, progress) -> Counts:
    """Stage 5 (end): valid observations per window and date, on its labelled pixels and all."""
    from landcover.scheduler import compute

    labelled = work.labels != IGNORE
    per_window_date = (work.valid & labelled[:, None]).sum(axis=(2, 3), dtype=np.int64)
    labelled_valid, n_labelled, valid = compute(
        per_window_date, labelled.sum(axis=(1, 2), dtype=np.int64),
        work.valid.sum(axis=(2, 3), dtype=np.int64), label="Counting valid pixels", show=progress)
    return Counts(labelled_valid, n_labelled, valid)


def _select_dates(src: Sources, counts: Counts, fc) -> Dates:
    """Stage 6: drop the dates whose valid share on the labelled pixels of the windows is below
    ``prepare.features.min_date_valid``."""
    dates = tuple(d for d, _ in src.dates)
    share = counts.labelled_valid.sum(axis=0) / max(1, int(counts.labelled.sum()))
    keep = share >= fc.min_date_valid
    if not keep.any():
        raise DatasetError(
            f"every date has less than {fc.min_date_valid:.0%} valid observations on the "
            f"labelled pixels (best {share.max():.1%}): the scenes are cloud-covered or the "
            "QA masks everything; add clearer scenes or lower prepare.features.min_date_valid")
    dropped = [f"{d.isoformat()} ({sh:.0%} valid)" for d, sh, k in zip(dates, share, keep)
               if not k]
    if dropped:
        log.warning("dropping %d date(s) with less than %.0f%% valid observations: %s",
                    len(dropped), 100 * fc.min_date_valid, ", ".join(dropped))
    scene_ids = tuple("+".join(sc.scene_id for sc in group) for _, group in src.dates)
    return Dates(dates, scene_ids, share, keep)


def _check_windows(work: Work, windows: Windows, counts: Counts, dates: Dates, p,
                   progress) -> tuple[Kept, np.ndarray]:
    """Stage 7: the ignore label where a pixel has too few valid observations on the kept dates;
    windows without a labelled pixel left or whose labelled pixels are mostly invalid dropped.
    Returns the kept windows and the labels as placed (for the label accounting)."""
    from landcover.scheduler import compute

    t_idx = dates.index
    checked = ignore_unobserved(work.labels, work.valid[:, t_idx], p.features.min_valid_dates)
    labels, placed = compute(checked, work.labels, label="Checking windows", show=progress)
    labelled_n = (labels != IGNORE).sum(axis=(1, 2))
    valid_share = counts.labelled_valid[:, t_idx].sum(axis=1) / np.maximum(
        1, counts.labelled * len(t_idx))
    ok = (labelled_n > 0) & (valid_share >= p.patches.min_valid)
    if not ok.any():
        raise DatasetError(f"no window passes prepare.patches.min_valid={p.patches.min_valid} on "
                           "its labelled pixels (after cloud masking); lower it or add clearer "
                           "scenes")
    split = np.where(ok, windows.split, -1).astype(np.int8)
    kept = Kept(split, labels, np.concatenate([np.flatnonzero(split == k) for k in range(3)]))
    if not (kept.sample_split == 0).any():
        raise DatasetError("the training split is empty; check prepare.split (by, fractions, the "
                           "split column or raster)")
    return kept, placed


def _account_labels(src: Sources, table: ClassTable, survey: Survey, assignment: Assignment,
                    windows: Windows, kept: Kept, placed_labels: np.ndarray, p) -> Accounting:
    """Stage 8: unique labelled pixels per split and class in the kept windows (a pixel in several
    overlapping windows of its split counts once), against the labels and the placed windows."""
    pixels = kept_pixels(kept.labels, windows.rows, windows.cols, kept.split, src.grid, len(table))
    placed = kept_pixels(placed_labels, windows.rows, windows.cols, windows.split, src.grid,
                         len(table)).sum(axis=0)
    report, warnings_ = label_report(table, survey, assignment, src.groups.kind, pixels, placed, p)
    return Accounting(pixels, report, warnings_)


def _statistics(work: Work, kept: Kept, dates: Dates, progress) -> Stats:
    """Stage 9: mean and std per band of the valid observations of the training windows on the
    kept dates (std 1 where it is ~0)."""
    import dask.array as da

    from landcover.scheduler import compute

    t_idx = dates.index
    is_train = da.from_array(kept.split == 0, chunks=work.reflectance.chunks[0])
    use = work.valid[:, t_idx] & is_train[:, None, None, None]
    x = da.where(use[..., None], work.reflectance[:, t_idx], 0.0).astype(np.float64)
    count, total, total2 = compute(use.sum(dtype=np.int64), x.sum(axis=(0, 1, 2, 3)),
                                   (x * x).sum(axis=(0, 1, 2, 3)), label="Statistics",
                                   show=progress)
    count = int(count)
    total, total2 = total.reshape(-1), total2.reshape(-1)
    if count == 0:
        raise DatasetError("no valid observation in the training windows; add clearer scenes")
    mean = total / count
    std = np.sqrt(np.maximum(total2 / count - mean ** 2, 0.0))
    return Stats(mean, np.where(std > 1e-6, std, 1.0), count)


def _features(work: Work, kept: Kept, dates: Dates, stats: Stats, bands: list[str],
              weights: np.ndarray, p) -> Features:
    """Stage 11: the dask graph of the dataset's arrays in sample order: inputs (made from the
    work store by :meth:`FeatureSpec.make`), labels, and per-pixel weights (class weight, 0 =
    ignore)."""
    import dask.array as da

    s, t_idx = work.labels.shape[-1], dates.index
    spec = FeatureSpec(tuple(bands), tuple(stats.mean.tolist()), tuple(stats.std.tolist()),
                       p.features.fill, p.features.doy)
    index = da.from_array(kept.order, chunks=CHUNK_PATCHES)
    featurize = functools.partial(final_inputs, work=work.path, t_idx=t_idx, spec=spec,
                                  dates=dates.kept)
    inputs = da.map_blocks(featurize, index, dtype=np.float32, new_axis=[1, 2, 3, 4],
                           chunks=(index.chunks[0], (len(t_idx),), (s,), (s,), (len(spec.names),)))
    labels = da.from_array(kept.labels[kept.order], chunks=(CHUNK_PATCHES, s, s))
    weight_lut = np.zeros(256, np.float32)
    weight_lut[:len(weights)] = weights
    pixel_weights = da.map_blocks(functools.partial(np.take, weight_lut), labels, dtype=np.float32)
    return Features(spec.names, inputs, labels, pixel_weights)
