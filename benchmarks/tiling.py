"""How the tiling of ``landcover classify`` changes the map: test accuracy on the demo and on real
sperrorest-maipo for several window / overlap / blend settings, side by side in one run.

For each case a model trained with the default settings (``benchmarks/real_data.py``: prepare and
train through the library; reused from ``--workdir`` when ``CASE_model`` and ``CASE.zarr`` are
there) classifies the case's scenes once per tiling. Each map is scored on the dataset's test
split: every labelled test pixel once (the windows of ``prepare`` may share pixels), OA and macro
F1. Printed per setting: OA, macro F1, window predictions per grid pixel, seconds, the share of
pixels that differ from the first setting's map, and the *seam excess*: how much more often two
neighbouring pixels get different classes across a line where two windows' kept pixels meet than
across other lines (1.00: seams are invisible in the map), and in brackets the same figure of the
first setting's map on the same lines: on a sparse map (maipo's fields) a few field edges that fall
on those lines give a figure well above 1 for any tiling, so only the difference means a seam.

``--previous DIR`` adds the map of the landcover source tree in DIR (e.g. the commit before the
tiling changed, unpacked with ``git archive``), run in a subprocess, as the first row.

Run:  python benchmarks/tiling.py [--case demo --case maipo] [--workdir DIR] [--previous DIR]
          [--tiling WINDOW:OVERLAP:BLEND[:PRECISION] ...] ("default": the default tiling)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[1]

DEFAULT_TILINGS = ["30:15:15", "default", "256:0:0", "256:8:0", "256:16:0", "256:16:8",
                   "256:32:0", "64:16:0", "default:bfloat16"]


def scenes_of(case: str) -> list[str]:
    from real_data import MAIPO

    return {"demo": [str(ROOT / "data_samples")], "maipo": [str(MAIPO / "scenes")]}[case]


def ensure_model(case: str, work: Path) -> tuple[Path, Path]:
    model, dataset = work / f"{case}_model", work / f"{case}.zarr"
    if not (model / "bundle.json").exists():
        from real_data import run_case

        print(f"training the {case} model with the defaults ...", file=sys.stderr, flush=True)
        run_case(case, work, [])
    return model, dataset


def test_pixels(dataset: Path):
    """``(rows, cols, class index)`` of every labelled test pixel once."""
    import zarr

    g = zarr.open_group(str(dataset), mode="r")
    test = np.flatnonzero(g["split"][:] == g.attrs["split_codes"]["test"])
    labels, weights = g["labels"].get_orthogonal_selection((test,)), \
        g["weights"].get_orthogonal_selection((test,))
    s = labels.shape[1]
    rows = g["row"][:][test][:, None, None] + np.arange(s)[None, :, None]
    cols = g["col"][:][test][:, None, None] + np.arange(s)[None, None, :]
    rows, cols = np.broadcast_to(rows, labels.shape), np.broadcast_to(cols, labels.shape)
    keep = (labels != g.attrs["ignore_label"]) & (weights > 0)
    r, c, y = rows[keep], cols[keep], labels[keep]
    width = int(g.attrs["grid"]["width"])
    _, first = np.unique(r.astype(np.int64) * width + c, return_index=True)
    return r[first], c[first], y[first]


def scores(mapped: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (truth, mapped), 1)
    tp = np.diag(cm).astype(float)
    f1 = 2 * tp / np.maximum(cm.sum(0) + cm.sum(1), 1)
    present = cm.sum(1) > 0
    return float(tp.sum() / cm.sum()), float(f1[present].mean())


def seam_excess(classes: np.ndarray, window: int, overlap: int) -> float:
    """Class changes across seam lines / across other lines (both axes)."""
    d = window - overlap
    ratios = []
    for axis in (0, 1):
        a = np.moveaxis(classes, axis, 0)
        change = (a[1:] != a[:-1]) & (a[1:] != 255) & (a[:-1] != 255)
        rate = change.mean(axis=1)  # per line between row i and i+1
        seams = np.arange(d - 1, len(rate), d)  # between pixel k d - 1 and k d
        other = np.setdiff1d(np.arange(len(rate)), seams)
        if len(seams) and rate[other].mean() > 0:
            ratios.append(rate[seams].mean() / rate[other].mean())
    return float(np.mean(ratios)) if ratios else float("nan")


def classify_here(case: str, model: Path, out: Path, sets: list[str]) -> dict:
    from landcover.classify import classify, model_scenes, resolve_config

    meta, cfg = resolve_config(model, None, sets)
    t0 = time.perf_counter()
    summary = classify(model_scenes(scenes_of(case), meta, cfg), model, out, cfg, meta=meta,
                       overwrite=True, progress=False)
    summary["wall"] = time.perf_counter() - t0
    return summary


def classify_previous(tree: Path, case: str, model: Path, out: Path) -> dict:
    code = ("import json, sys, time\n"
            "from landcover.classify import classify, model_scenes, resolve_config\n"
            f"meta, cfg = resolve_config({str(model)!r})\n"
            "t0 = time.perf_counter()\n"
            f"s = classify(model_scenes({scenes_of(case)!r}, meta, cfg), {str(model)!r}, "
            f"{str(out)!r}, cfg, meta=meta, overwrite=True, progress=False)\n"
            "s['wall'] = time.perf_counter() - t0\n"
            "print(json.dumps({k: s[k] for k in ('window', 'overlap', 'windows', 'grid', "
            "'wall')}))\n")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # run from the tree itself: "python -c" puts the working directory first on sys.path
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tree, check=False)
    if res.returncode:
        raise SystemExit(f"the previous tree failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def read_map(path: Path, codes: list[int]) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        m = src.read(1)
    index = np.full(256, 255, np.uint8)
    index[codes] = np.arange(len(codes))
    return index[m]


def run_case(case: str, work: Path, tilings: list[str], previous: Path | None) -> list[dict]:
    from landcover.bundle import read_metadata

    model, dataset = ensure_model(case, work)
    model, dataset = model.resolve(), dataset.resolve()
    meta = read_metadata(model)
    codes = [c["code"] for c in meta["classes"]]
    rows, cols, truth = test_pixels(dataset)
    results, first = [], None
    runs = ([("previous default", None)] if previous else []) + [(t, t) for t in tilings]
    for label, tiling in runs:
        out = work / f"{case}_{label.replace(':', '_').replace(' ', '_')}.tif"
        if tiling is None:
            summary = classify_previous(previous, case, model, out)
        else:
            parts = tiling.split(":")
            if parts[0] == "default":
                sizes, precision = [], parts[1:2]
            else:
                sizes, precision = parts[:3], parts[3:4]
            sets = [f"classify.{k}={v}" for k, v in zip(("window", "overlap", "blend"), sizes)]
            sets += [f"classify.precision={p}" for p in precision]
            summary = classify_here(case, model, out, sets)
        window, overlap = summary["window"], summary["overlap"]
        classes = read_map(out, codes)
        oa, f1 = scores(classes[rows, cols].astype(np.int64), truth.astype(np.int64), len(codes))
        g = summary["grid"]
        per_px = summary["windows"] * window ** 2 / (g["width"] * g["height"])
        first = classes if first is None else first
        valid = (classes != 255) & (first != 255)
        differ = float((classes[valid] != first[valid]).mean())
        r = {"case": case, "tiling": label, "window": window, "overlap": overlap, "oa": oa,
             "macro_f1": f1, "predictions_per_pixel": per_px, "seconds": summary["wall"],
             "differ_from_first": differ, "seam_excess": seam_excess(classes, window, overlap)
             if tiling is not None else float("nan"),
             # the first map on the same lines: what the scene's own edges give there
             "seam_excess_first": seam_excess(first, window, overlap)
             if tiling is not None else float("nan"), "test_pixels": len(truth)}
        results.append(r)
        print(f"| {case} | {label} | {oa:.4f} | {f1:.4f} | {per_px:.2f} | {summary['wall']:.1f} "
              f"| {differ:.2%} | {r['seam_excess']:.2f} ({r['seam_excess_first']:.2f}) |",
              flush=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=["demo", "maipo"])
    ap.add_argument("--workdir")
    ap.add_argument("--previous", type=Path)
    ap.add_argument("--tiling", action="append",
                    help="WINDOW:OVERLAP:BLEND[:PRECISION], or default[:PRECISION]")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        print("| case | window:overlap:blend | test OA | macro F1 | predictions / px | s | "
              "differ from first | seam excess (first map) |\n|---|---|---:|---:|---:|---:|---:|---:|")
        results = []
        for case in args.case or ["demo", "maipo"]:
            results += run_case(case, work, args.tiling or DEFAULT_TILINGS, args.previous)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
