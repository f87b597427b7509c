"""The resumable block store: a Zarr group beside the output (``.OUT.partial``, :func:`partial_path`)
holding the class codes (and probabilities) in chunks of one block, the settings of its run
(``run.json``, :func:`fingerprint`), and one marker per finished block (``done/I_J.json``,
:func:`done_marker`) with the CRC32 of the block's chunks, its counts and windows. ``--resume``
reopens it when the settings agree and computes again the blocks whose marker or chunks are
damaged."""

from __future__ import annotations

import errno
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from landcover.classify.plan import Plan, plain
from landcover.config import Config
from landcover.contract import NODATA, PARTIAL_FORMAT, PROBABILITY_SCALE
from landcover.dataset import compressor, file_crc
from landcover.errors import OutputError, ResumeError
from landcover.maps import FULL_DISK, write_failed
from landcover.outputs import PartialRun, partial_path
from landcover.postprocess import describe as describe_steps

log = logging.getLogger(__package__)  # the package's: messages keep the name "landcover.classify"


def done_marker(plan: Plan, i: int, j: int) -> Path:
    """The marker of the finished block ``(i, j)``: its record, written once its data is."""
    return Path(plan.store) / "done" / f"{i}_{j}.json"


def chunk_sums(plan: Plan, group, i: int, j: int) -> dict:
    """CRC32 of the store's chunk files of block ``(i, j)`` (one per array: chunks are whole
    blocks), by path relative to the store; None for a chunk not written (all fill value)."""
    coords = {"classes": (i, j), "probabilities": (0, i, j)}
    sums = {}
    for name in ["classes"] + (["probabilities"] if plan.probabilities else []):
        rel = f"{name}/{group[name].metadata.encode_chunk_key(coords[name])}"
        f = Path(plan.store) / rel
        sums[rel] = file_crc(f) if f.is_file() else None
    return sums


def _marker_fits(plan: Plan, group, marker: Path, record) -> bool:
    """A finished block's record agrees with its name and with the block's class codes in the
    store: the counts per class and of nodata are those of the codes (a record with edited
    counts would otherwise make the summary: 4,154,545 pixels on a 65,536-pixel grid)."""
    try:
        i, j = (int(v) for v in marker.stem.split("_"))
        if list(record["block"]) != [i, j] or (i, j) not in plan.blocks():
            return False
        counts, nodata = record["counts"], record["nodata"]
        if len(counts) != plan.num_classes or not all(
                isinstance(v, int) and v >= 0 for v in (*counts, nodata)):
            return False
        for key in ("windows", "windows_skipped"):
            if not isinstance(record[key], int) or record[key] < 0:
                return False
    except (ValueError, KeyError, TypeError):
        return False
    r0, r1, c0, c1 = plan.block_window(i, j)
    codes = group["classes"][r0:r1, c0:c1]
    lut = np.full(256, plan.num_classes, np.int64)
    lut[list(plan.codes)] = np.arange(plan.num_classes)
    found = np.bincount(lut[codes].ravel(), minlength=plan.num_classes + 1)
    missing = int((codes == NODATA).sum())  # every other code is a class: found[K] is nodata
    return found[:plan.num_classes].tolist() == list(counts) and missing == nodata == found[-1]


def _damaged_blocks(plan: Plan, group=None) -> list[Path]:
    """Markers of finished blocks whose chunks are missing or changed since they were written,
    or whose record does not fit the block (with the store's ``group``: :func:`_marker_fits`)."""
    bad = []
    for marker in sorted((Path(plan.store) / "done").glob("*.json")):
        try:
            record = json.loads(marker.read_text())
            sums = record["chunks"]
            if not isinstance(sums, dict):
                raise TypeError("chunks")
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(marker)
            continue
        for rel, crc in sums.items():
            f = Path(plan.store) / rel
            if (crc is None and f.exists()) or (crc is not None and (
                    not f.is_file() or file_crc(f) != crc)):
                bad.append(marker)
                break
        else:
            if group is not None and not _marker_fits(plan, group, marker, record):
                bad.append(marker)
    return bad


def fingerprint(plan: Plan, kept, cfg: Config) -> dict:
    """The settings a run's blocks depend on (``run.json``): ``--resume`` continues a store only
    under the same."""
    return {"format": PARTIAL_FORMAT, "content_hash": plan.content_hash,
            "scenes": [[s.source for s in g] for _, g in kept],
            "grid": plan.grid.to_dict(), "window": plan.window, "overlap": plan.overlap,
            "blend": plan.blend, "precision": plan.precision,
            "block": plan.block, "probabilities": plan.probabilities,
            "probability_dtype": plan.probability_dtype, "uncertainty": plan.uncertainty,
            "post": describe_steps(plan.post),
            "scenes_config": plain(cfg.to_dict()["scenes"])}


def _reopen_store(plan: Plan):
    """The interrupted run's Zarr group, checked to hold the arrays of this plan (its
    ``zarr.json`` files can be gone or garbled: KeyError, FileNotFoundError, JSONDecodeError)."""
    import zarr

    H, W = plan.grid.height, plan.grid.width
    K = plan.num_classes
    expected = {"classes": ((H, W), "uint8", (plan.block, plan.block))}
    if plan.probabilities:
        expected["probabilities"] = ((K + 1, H, W), plan.probability_dtype,
                                     (K + 1, plan.block, plan.block))
    try:
        group = zarr.open_group(plan.store, mode="r+")
        for name, (shape, dtype, chunks) in expected.items():
            arr = group[name]
            if (tuple(arr.shape), str(arr.dtype), tuple(arr.chunks)) != (shape, dtype, chunks):
                raise ValueError(f"{name} is {arr.dtype} {arr.shape} in chunks {arr.chunks}")
    except Exception as exc:  # noqa: BLE001 - any damage to the store's metadata
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ResumeError(f"{plan.store}: the interrupted run's block store is damaged "
                          f"({type(exc).__name__}: {detail})",
                          hint="run again without --resume (the store is then started "
                               "afresh)") from None
    return group


def open_store(plan: Plan, settings: dict, resume: bool) -> int:
    """Create the block store, or reopen it for ``--resume`` when it was made with the same
    ``settings`` (:func:`fingerprint`; :class:`landcover.outputs.PartialRun`); returns the blocks
    already done."""
    import zarr

    store = Path(plan.store)
    run = PartialRun(store, "run.json", folder=store)
    if resume:
        run.resume(plain(settings),
                   nothing=f"{store}: nothing to resume (no interrupted run of this output)",
                   other=f"{store}: the interrupted run used other settings ({{keys}})")
        group = _reopen_store(plan)
        damaged = _damaged_blocks(plan, group)
        for marker in damaged:
            marker.unlink()
        if damaged:
            log.warning("%s: %d finished block(s) of the interrupted run are missing or damaged "
                        "(%s); computing them again", store, len(damaged),
                        ", ".join(m.stem for m in damaged))
        return len(list((store / "done").glob("*.json")))
    run.start("use --resume to continue it")
    H, W = plan.grid.height, plan.grid.width
    group = zarr.open_group(str(store), mode="w")
    group.create_array("classes", shape=(H, W), dtype="uint8", chunks=(plan.block, plan.block),
                       fill_value=NODATA, compressors=[compressor()])
    if plan.probabilities:
        _, nodata = PROBABILITY_SCALE[plan.probability_dtype]
        group.create_array("probabilities", shape=(plan.num_classes + 1, H, W),
                           dtype=plan.probability_dtype,
                           chunks=(plan.num_classes + 1, plan.block, plan.block),
                           fill_value=nodata, compressors=[compressor()])
    (store / "done").mkdir()
    run.write(plain(settings))
    return 0


def full_disk_error(exc: BaseException, out: Path):
    """The one-line error of a run stopped by a full disk, or by a disk error (EIO, EROFS,
    EACCES, EPERM) while its block store exists; None for any other failure. The finished blocks
    stay in the ``.OUT.partial`` store, so it says to resume (a plain "left no output" would
    hide the store and the work in it)."""
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        free = None
    code = getattr(exc, "errno", None)
    full = code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < FULL_DISK)
    other = isinstance(exc, OSError) and code in (errno.EIO, errno.EROFS, errno.EACCES,
                                                  errno.EPERM)
    if not (full or other):
        return None
    partial = partial_path(out)
    where = getattr(exc, "filename", None) or out
    if not (partial / "run.json").is_file():
        return write_failed(out, exc) if full else None
    done = len(list((partial / "done").glob("*.json")))
    what = "the disk is full" if full else (exc.strerror or str(exc))
    todo = "free some space" if full else "make the folder writable or check the disk"
    return OutputError(f"{where}: {what}; the run stopped before writing {out.name}, and its "
                       f"{done} finished block(s) are kept in {partial}; {todo}, then run the "
                       "same command with --resume")
