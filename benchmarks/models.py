"""Every architecture of the registry on the same splits, next to the random forest of training.

    python benchmarks/models.py [--case demo --case maipo] [--arch ltae --arch convlstm ...]
                                [--set KEY=VALUE ...] [--workdir DIR] [--json results.json]
                                [--speed-dates 24]

Per case (``benchmarks/real_data.py``'s cases: ``demo``, ``maipo`` with the fields % 5 == 0 as
test, ``nc``), the dataset is prepared once and every architecture trained on it with the default
``train.*`` settings (plus ``--set``); ``landcover train`` fits the random-forest baseline once (with
the first architecture) on the same training pixels and scores it on the same test pixels.

Columns (test split): OA, macro F1, mIoU, training time (``train`` wall time, baseline
excluded), **classify px/s**: the bundle's network on the test patches in batches of 32 windows
(``classify.batch_size``; the model calls of ``landcover classify``, without reading or blending),
and **OA, other dates**: the test split with 3 dates removed (the 2nd, 5th and 8th of the kept ones
... clipped to the series) and the days of 2 others shifted by 8 (the ``days`` input; the
observations stay those of the real dates) - ``-`` for a network that takes a fixed number of
dates. Then a speed table: pixels per second of each network (default config, random weights) on
a ``--speed-dates`` stack of 30 px windows, batches of 32, on this CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import CASES

REMOVE, SHIFT, SHIFT_DAYS = (1, 4, 7), (2, 5), 8.0


def _test_arrays(ds):
    from landcover.pipeline import PatchStream

    xs, ys, ws = [], [], []
    for x, y, w in PatchStream(ds, "test", batch_size=64).batches(epoch=0):
        xs.append(x), ys.append(y), ws.append(w)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def _predict(model, x, days, batch=32):
    """Class probabilities of windows ``x``, batched exactly as ``landcover classify`` does."""
    import threading

    from landcover.classify import predict_windows

    return predict_windows(model, threading.Lock(), x, batch, days)


def _oa(logits, y, w, ignore):
    mask = (w > 0) & (y != ignore)
    return float((logits.argmax(-1) == y)[mask].mean())


def evaluate_bundle(bundle, ds, arrays) -> dict:
    from landcover.bundle import load_bundle
    from landcover.network_training import dataset_days

    model, meta = load_bundle(bundle)
    x, y, w = arrays
    takes = bool(meta["input"].get("takes_dates"))
    days = dataset_days(ds) if takes else None
    _predict(model, x[:32], days)  # traced
    t0 = time.perf_counter()
    logits = _predict(model, x, days)
    px = len(x) * x.shape[2] * x.shape[3] / (time.perf_counter() - t0)
    out = {"classify_px_per_s": round(px), "oa_check": _oa(logits, y, w, ds.ignore_label)}
    t = x.shape[1]
    keep = [i for i in range(t) if i not in REMOVE]
    if meta["input"].get("variable_time_steps") and len(keep) >= 2:
        d = None
        if takes:
            d = days.copy()
            d[[i for i in SHIFT if i < t]] += SHIFT_DAYS
            d = d[keep]
        try:
            out["oa_other_dates"] = _oa(_predict(model, x[:, keep], d), y, w, ds.ignore_label)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
            out["other_dates_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return out


def run_case(name: str, work: Path, archs, extra) -> dict:
    from landcover.config import load_config
    from landcover.dataset import open_dataset
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes
    from landcover.train import train

    make, _ = CASES[name]
    scenes, labels, config, data_settings = make(work)
    cfg = load_config(config, data_settings + extra)
    dataset = work / f"{name}.zarr"
    if not dataset.exists():
        prepare(LocalScenes(tuple(scenes), cfg.scenes.profile), labels, dataset, cfg,
                progress=False)
    ds = open_dataset(dataset)
    arrays = _test_arrays(ds)
    rows, baseline = [], None
    for i, arch in enumerate(archs):
        sets = [f"train.model.architecture={arch}"]
        if i > 0:
            sets.append("train.baseline=none")
        acfg = load_config(config, data_settings + extra + sets)
        t0 = time.monotonic()
        summary = train(dataset, work / f"{name}_{arch}", acfg, progress=False, overwrite=True)
        seconds = summary["seconds"]
        test = summary["metrics"]["test"]
        if summary.get("baseline"):
            baseline = {**summary["baseline"]["test"], "seconds": summary["baseline"]["seconds"]}
        row = {"architecture": arch, "oa": test["overall_accuracy"], "macro_f1": test["macro_f1"],
               "miou": test["mean_iou"], "train_seconds": seconds,
               "epochs": summary["epochs_run"], "wall_seconds": round(time.monotonic() - t0, 1),
               **evaluate_bundle(work / f"{name}_{arch}", ds, arrays)}
        rows.append(row)
        print(f"  {name} {arch}: {json.dumps(row)}", flush=True)
    return {"case": name, "settings": data_settings + extra, "dates": ds.attrs["dates"],
            "test_patches": len(arrays[0]), "rows": rows, "baseline": baseline}


def table(r: dict) -> str:
    b = r["baseline"]
    lines = [(f"## {r['case']}: test split, {len(r['dates'])} dates, {r['test_patches']} test "
              f"patches; settings: {' '.join(r['settings']) or '(none)'}"), "",
             ("| architecture | OA | macro F1 | mIoU | train s (epochs) | classify px/s | "
              "OA, other dates |"), "|---|---:|---:|---:|---:|---:|---:|"]
    f = "{:.3f}".format
    for row in r["rows"]:
        other = row.get("oa_other_dates")
        lines.append(f"| {row['architecture']} | {f(row['oa'])} | {f(row['macro_f1'])} | "
                     f"{f(row['miou'])} | {row['train_seconds']:.0f} ({row['epochs']}) | "
                     f"{row['classify_px_per_s']:,d} | "
                     f"{('error' if 'other_dates_error' in row else '-') if other is None else f(other)} |")
    if b:
        lines.append(f"| random forest | {f(b['overall_accuracy'])} | {f(b['macro_f1'])} | "
                     f"{f(b['mean_iou'])} | {b['seconds']:.0f} | - | - |")
    return "\n".join(lines)


def speed(archs, dates: int, window: int = 30, batch: int = 32, bands: int = 6) -> list[dict]:
    import dataclasses

    from landcover.config import Config
    from landcover.models import build_model, model_input_shape, model_inputs

    rng = np.random.default_rng(0)
    f = bands + 3
    x = rng.normal(size=(batch, dates, window, window, f)).astype(np.float32)
    x[..., bands] = 1.0
    days = np.arange(dates, dtype=np.float32) * 15
    out = []
    for arch in archs:
        spec = dict(dataclasses.asdict(Config().train.model), architecture=arch)
        model = build_model(spec, model_input_shape(spec, dates, window, window, f), 7,
                            valid_channel=bands)
        inputs = model_inputs(model, x, days)
        model.predict_on_batch(inputs)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 5 or n < 3:
            model.predict_on_batch(inputs)
            n += 1
        px = n * batch * window * window / (time.perf_counter() - t0)
        out.append({"architecture": arch, "params": int(model.count_params()),
                    "px_per_s": round(px)})
    return out


def main(argv=None) -> int:
    from landcover.models import architecture_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    ap.add_argument("--arch", action="append")
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    ap.add_argument("--speed-dates", type=int, default=24)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args(argv)
    archs = args.arch or list(architecture_names())
    results = {"cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.case or ["demo", "maipo"]:
            if not CASES[name][1].exists():
                print(f"## {name}: skipped, {CASES[name][1]} is absent\n")
                continue
            r = run_case(name, work, archs, args.extra)
            results["cases"].append(r)
            print(table(r) + "\n", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
    if not args.skip_speed:
        s = speed(list(architecture_names()), args.speed_dates)
        results["speed"] = s
        base = next((r["px_per_s"] for r in s if r["architecture"] == "convlstm"), None)
        print(f"## speed: {args.speed_dates} dates, 30 px windows, batches of 32, default "
              "train.model settings\n\n| architecture | parameters | px/s | vs convlstm |\n"
              "|---|---:|---:|---:|")
        for r in s:
            ratio = f"{r['px_per_s'] / base:.2f}x" if base else "-"
            print(f"| {r['architecture']} | {r['params']:,d} | {r['px_per_s']:,d} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
