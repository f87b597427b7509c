"""What ``landcover prepare`` writes: the summary, the dataset's attributes and arrays, the
Zarr store with its preview of the splits, and the check that there is room for it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import warnings
from pathlib import Path

import numpy as np

from landcover.classes import ClassTable
from landcover.config import Config
from landcover.contract import DATASET_FORMAT, IGNORE
from landcover.dataset import SPLITS, compressor
from landcover.grid import Grid
from landcover.outputs import check_space
from landcover.prepare.records import (
    Accounting,
    Assignment,
    Counts,
    Dates,
    Features,
    Kept,
    Sources,
    Stats,
    Windows,
)
from landcover.prepare.tiles import plain
from landcover.runtime import check_memory, versions
from landcover.scenes import scene_profiles

log = logging.getLogger(__name__)


def check_room(out: Path, planned, src) -> None:
    """Before extraction: the tile tasks must fit in memory, and the work store (uncompressed
    reflectance and validity of every window) and the dataset (compressed features, at most as
    large) in the output folder's free space."""
    from landcover.scheduler import parallel_tasks

    n = sum(len(tile) for tile in planned)
    s, T, B = src.layout.size, len(src.dates), len(src.bands)
    side = src.layout.tile + s
    # one tile task: a date of the tile and its windows' margin (bands + validity, float32 and
    # a warped copy), and the windows it cuts from every date
    per_task = side * side * (B + 2) * 4 * 3 + max(map(len, planned)) * T * s * s * (4 * B + 2)
    check_memory(per_task * parallel_tasks(), f"prepare.patches.tile_size={src.layout.tile}",
                 "the tile tasks need", "prepare.patches.tile_size")
    work = n * T * s * s * (4 * B + 1) + n * s * s
    check_space(out.parent, 2 * work, f"preparing {n} windows of {T} dates")


def class_records(table: ClassTable, weights: np.ndarray, pixels: np.ndarray) -> list[dict]:
    """Stage 12: per class its index, code, name, colour, weight and unique pixels per split."""
    return [{"index": i, "code": c.code, "name": c.name, "color": c.color,
             "weight": float(weights[i]),
             "pixels": {SPLITS[k]: int(pixels[k, i]) for k in range(3)}}
            for i, c in enumerate(table.classes)]


def summarise(kept: Kept, dates: Dates, counts: Counts, classes: list[dict],
             accounting: Accounting, assignment: Assignment, unknown: dict, p,
             size: int) -> dict:
    """Stage 12: the summary (returned, shown by the CLI and stored in the attributes)."""
    split_o, n, t_idx = kept.sample_split, len(kept.order), dates.index
    masked = 1.0 - counts.valid[kept.order][:, t_idx].sum() / (n * size * size * len(t_idx))
    return {
        "patches": n, "patches_per_split": {SPLITS[k]: int((split_o == k).sum()) for k in range(3)},
        "dates": [d.isoformat() for d in dates.kept],
        "dates_dropped": [d.isoformat() for d in dates.dropped],
        "masked_share": round(float(masked), 4),
        "labelled_pixels": {c["name"]: sum(c["pixels"].values()) for c in classes},
        "labelled_pixels_per_split": {SPLITS[k]: {c["name"]: c["pixels"][SPLITS[k]]
                                                  for c in classes} for k in range(3)},
        "labels_kept": accounting.report,
        "split": {"by": p.split.by, "groups": dict(zip(SPLITS, assignment.groups))},
        "warnings": accounting.warnings,
        "unknown_codes": {str(k): v for k, v in unknown.items()},
    }


def dataset_attributes(src: Sources, cfg: Config, dates: Dates, stats: Stats, classes: list[dict],
                summary: dict, names: list[str]) -> dict:
    """Stage 12: the dataset's attributes (how it was made, what its arrays mean)."""
    from landcover.profiles import profile_record

    p, bands = cfg.prepare, list(src.bands)
    per_split = summary["patches_per_split"]
    starts = np.cumsum([0] + [per_split[k] for k in SPLITS])
    return {
        "landcover_dataset": DATASET_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bands": bands, "features": names,
        "dates": summary["dates"], "dates_dropped": summary["dates_dropped"],
        "date_valid_share": {d.isoformat(): round(float(v), 4)
                             for d, v in zip(dates.dates, dates.share)},
        "normalisation": {
            "mean": stats.mean.tolist(), "std": stats.std.tolist(), "count": stats.count,
            "bands": bands,
            "computed_on": "valid observations of the training windows on the kept dates"},
        "fill": p.features.fill, "doy": p.features.doy,
        "patch_size": src.layout.size, "stride": src.layout.stride,
        "ignore_label": IGNORE,
        "classes": classes,
        "class_weights": {"mode": p.weights.mode, "cap": p.weights.cap,
                          "by_code": {str(c["code"]): c["weight"] for c in classes}},
        "splits": {k: [int(starts[i]), int(starts[i + 1])] for i, k in enumerate(SPLITS)},
        "split_codes": {k: i for i, k in enumerate(SPLITS)},
        "grid": src.grid.to_dict(),
        "labels": {"path": src.labels.path, "kind": src.labels.kind},
        "scenes": [{"scene_id": sc.scene_id, "date": sc.date.isoformat(), "sensor": sc.sensor,
                    "source": sc.source} for sc in src.scenes],
        "profiles": [profile_record(pr) for pr in scene_profiles(src.scenes)],
        "summary": summary,
        "config": cfg.to_dict(),
        "versions": versions(data=True),
    }


def build_dataset(src: Sources, windows: Windows, kept: Kept, dates: Dates, features: Features,
             attrs: dict, groups: np.ndarray):
    """Stage 13: the ``xarray.Dataset`` to write (lazy inputs and weights)."""
    import xarray as xr

    a, _, c0, _, e, f0 = src.grid.transform
    rows = windows.rows[kept.order].astype(np.int32)
    cols = windows.cols[kept.order].astype(np.int32)
    ds = xr.Dataset(
        {"inputs": (("sample", "time", "patch_y", "patch_x", "feature"), features.inputs),
         "labels": (("sample", "patch_y", "patch_x"), features.labels),
         "weights": (("sample", "patch_y", "patch_x"), features.weights),
         "row": ("sample", rows), "col": ("sample", cols),
         "x_min": ("sample", c0 + cols * a), "y_max": ("sample", f0 + rows * e),
         "split": ("sample", kept.sample_split),
         "groups": (("sample", "patch_y", "patch_x"), groups)},
        coords={"time": np.array([np.datetime64(d, "ns") for d in dates.kept]),
                "feature": np.array(features.names, dtype=object),
                "scene_id": ("time", np.array([dates.scene_ids[i] for i in dates.index],
                                              dtype=object))},
        attrs=json.loads(json.dumps(attrs, default=plain)))
    ds["labels"].attrs.update({"meaning": "class index (see attrs classes); 255 = ignore"})
    ds["weights"].attrs.update({"meaning": "per-pixel sample weight: class weight, 0 = ignore"})
    ds["split"].attrs.update({"meaning": "0 train, 1 validation, 2 test"})
    ds["groups"].attrs.update({"meaning": "spatial group of each labelled pixel, for "
                                          "cross-validation folds and intervals; -1 = none"})
    ds["inputs"].attrs.update({"meaning": "standardised bands (invalid filled), validity, day of "
                                          "year; see attrs features and normalisation"})
    return ds


def write_dataset(ds, tmp: Path, src: Sources, progress) -> None:
    """Stage 13: the dataset to Zarr at ``tmp`` (consolidated metadata), and its split preview."""
    from landcover.scheduler import compute

    with warnings.catch_warnings():  # consolidated metadata: a zarr-python extension for v3
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        write = ds.to_zarr(str(tmp), mode="w", compute=False, consolidated=True,
                           encoding={name: {"compressors": [compressor()]}
                                     for name in ("inputs", "labels", "weights")})
    compute(write, label="Writing dataset", show=progress)
    _preview(tmp, src.grid, ds["row"].values, ds["col"].values, ds["split"].values,
             src.layout.size)


def _preview(tmp: Path, grid: Grid, rows, cols, split, size: int) -> None:
    """``splits.png``: where the windows of each split lie on the grid (one image, not patches)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colors = ("#1b9e77", "#d95f02", "#7570b3")
    step = max(1, math.ceil(max(grid.width, grid.height) / 1000))  # at most ~1000 px wide
    image = np.full((math.ceil(grid.height / step), math.ceil(grid.width / step)), np.nan)
    for k in range(3):  # windows of later splits drawn over earlier ones where inputs overlap
        for r, c in zip(rows[split == k], cols[split == k]):
            image[r // step:(r + size) // step, c // step:(c + size) // step] = k
    scale = 6.0 / max(grid.width, grid.height)
    fig, ax = plt.subplots(figsize=(max(3.0, grid.width * scale) + 1.8,
                                    max(3.0, grid.height * scale)))
    ax.imshow(image, cmap=ListedColormap(colors), vmin=-0.5, vmax=2.5, interpolation="nearest",
              extent=(0, grid.width, grid.height, 0))
    ax.set_xlabel("column (px)")
    ax.set_ylabel("row (px)")
    ax.set_title("Patches by split")
    ax.legend(handles=[Patch(color=colors[k], label=f"{SPLITS[k]} ({int((split == k).sum())})")
                       for k in range(3) if (split == k).any()],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(tmp / "splits.png", dpi=100)
    plt.close(fig)
