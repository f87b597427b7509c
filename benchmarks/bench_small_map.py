"""Benchmark: how long a small map takes to classify, beside the time to import the framework.

Issue 27, item 4: a 10,000-pixel map classifies in under 5 s on 2 cores beyond the time to import
the framework. Measured here, every run in a fresh subprocess:

* ``landcover -q classify SCENES --model BUNDLE --out MAP --overwrite`` on a synthetic
  ``--height`` x ``--width`` (100 x 101) px scene series of ``--dates`` (47) dates (Landsat 8 C2 L2
  folders written by :func:`landcover.synthetic.write_c2l2_scene`: seeded reflectance with a
  season, clouds and shadows), wall time from the start of the process to its exit;
* with two bundles: the default network (``convlstm``, seeded weights as in
  ``bench_classify.make_bundle``, not trained: only time is measured) and a per-pixel LightGBM
  ``random_forest`` (what ``train.model.architecture: auto`` usually keeps on small sets), fitted
  on seeded pixels of the same series;
* the framework's import alone: ``python -c "import keras"`` (with ``KERAS_BACKEND`` as set, the
  default TensorFlow), ``python -c "import tensorflow"`` and ``python -c "import lightgbm"``, and
  ``python -c pass`` (the interpreter's own start);
* the difference: classify minus the import of the framework the bundle uses (keras for the
  network, lightgbm for the forest), the figure the issue bounds (under 5 s); in wall seconds
  and in CPU seconds (user + system of the process, steadier on a shared machine).

Every figure is the median of ``--repeats`` runs (default 3; all runs printed); the machine is
shared, so its speed drifts. ``--json`` prints the figures as one JSON object.

Run:  python benchmarks/bench_small_map.py [--repeats 3] [--dates 47] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

SEED = 20240927
BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
MEAN = {"blue": 0.05, "green": 0.08, "red": 0.07, "nir": 0.30, "swir1": 0.20, "swir2": 0.12}


def make_scenes(folder: Path, height: int, width: int, dates: int) -> list[Path]:
    """``dates`` Landsat 8 C2 L2 scene folders of ``height`` x ``width`` px (reused while the
    parameters match)."""
    from affine import Affine

    from landcover.qa import encode_qa_pixel
    from landcover.synthetic import reflectance_to_dn, write_c2l2_scene

    params = {"height": height, "width": width, "dates": dates, "seed": SEED, "version": 1}
    stamp = folder / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    transform = Affine(30.0, 0.0, 300000.0, 0.0, -30.0, 5100000.0)
    yy, xx = np.mgrid[:height, :width]
    fields = ((yy // 10) * 7 + (xx // 10) * 3) % 5  # 10 px fields of 5 kinds
    for d in range(dates):
        date = dt.date(2021, 1, 5) + dt.timedelta(days=8 * d)
        season = 0.8 + 0.4 * np.sin(2 * np.pi * (d / 46 + fields / 5))
        cloud = (yy - rng.integers(0, height)) ** 2 + (xx - rng.integers(0, width)) ** 2 < \
            rng.integers(0, 30) ** 2
        shadow = np.roll(cloud, (3, 4), (0, 1)) & ~cloud
        sr = {}
        for b in BANDS:
            refl = MEAN[b] * (0.6 + 0.2 * fields) * (season if b == "nir" else 1.0)
            refl = refl + rng.normal(0, 0.01, refl.shape)
            refl = np.where(cloud, 0.6, np.where(shadow, refl * 0.4, refl))
            sr[b] = reflectance_to_dn(refl)
        write_c2l2_scene(folder, sensor="LC08", path=190, row=25, date=date, crs_epsg=32633,
                         transform=transform, sr=sr, qa_pixel=encode_qa_pixel(
                             cloud=cloud, dilated_cloud=cloud, cloud_shadow=shadow))
    stamp.write_text(json.dumps(params))
    return sorted(p for p in folder.iterdir() if p.is_dir())


def network_bundle(folder: Path, scenes: list[Path]) -> Path:
    """The default network for the scenes' dates, seeded weights (``bench_classify``)."""
    from bench_classify import make_bundle

    return make_bundle(folder, scenes)


def pixel_bundle(folder: Path, scenes: list[Path]) -> Path:
    """A LightGBM ``random_forest`` bundle fitted on seeded pixels of the scenes' series (the
    labels: the synthetic field kinds, read back from the first date's red band)."""
    from landcover.bundle import write_metadata
    from landcover.config import load_config
    from landcover.features import feature_names
    from landcover.pixel_model import bundle_attrs, fit_pixel_classifier, pixel_features
    from landcover.scenes import find_scenes
    from landcover.stack import date_groups

    if (folder / "bundle.json").exists():
        return folder
    from bench_classify import CLASSES

    cfg = load_config(None, ["train.model.architecture=random_forest"])
    bands = list(cfg.scenes.bands)
    dates = [d.isoformat() for d, _ in date_groups(find_scenes([str(s) for s in scenes]))]
    meta = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": cfg.to_dict()["train"]["model"],
        "input": {"layout": ["time", "y", "x", "feature"], "time_steps": len(dates),
                  "variable_time_steps": False, "patch_size": 30,
                  "features": feature_names(bands, True), "bands": bands, "fill": "zero",
                  "doy": True, "dtype": "float32"},
        "normalisation": {"mean": [MEAN[b] for b in bands],
                          "std": [0.03, 0.03, 0.03, 0.08, 0.06, 0.05], "bands": bands},
        "dates": dates, "dates_dropped": [],
        "classes": [{"index": i, "code": i + 1, "name": n, "color": c, "weight": 1.0}
                    for i, (n, c) in enumerate(CLASSES)],
        "ignore_label": 255,
        "output": {"kind": "log_probabilities", "classes": len(CLASSES)},
        "config": {"scenes": cfg.to_dict()["scenes"]},
        "training": {"note": "benchmark bundle: fitted on seeded pixels"},
    }
    rng = np.random.default_rng(SEED)
    n, t, f = 4000, len(dates), len(meta["input"]["features"])
    y = rng.integers(0, 5, n)
    x = rng.normal(0, 1, (n, t, f)).astype(np.float32)
    x[:, :, :len(bands)] += y[:, None, None] * 0.5  # a learnable signal
    x[:, :, len(bands)] = 1.0  # valid
    attrs = bundle_attrs(meta)
    model = fit_pixel_classifier("random_forest", pixel_features(x, attrs), y,
                                 num_classes=len(CLASSES), attrs=attrs, rounds=100)
    folder.mkdir(parents=True)
    meta.update(model.to_files(folder))
    write_metadata(folder, meta)
    return folder


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a command in a fresh process (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def classify_cmd(scenes: list[Path], bundle: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "landcover.cli.main", "-q", "classify",
            *map(str, scenes), "--model", str(bundle), "--out", str(out), "--overwrite"]


def machine() -> str:
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), "?")
    return f"nproc={os.cpu_count()}, CPU {cpu}, Python {sys.version.split()[0]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=100)
    ap.add_argument("--width", type=int, default=101)
    ap.add_argument("--dates", type=int, default=47)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-small-map"))
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()

    work = args.workdir
    scenes = make_scenes(work / "scenes", args.height, args.width, args.dates)
    bundles = {"convlstm": network_bundle(work / f"convlstm-{args.dates}", scenes),
               "random_forest": pixel_bundle(work / f"random_forest-{args.dates}", scenes)}
    framework = {"convlstm": "keras", "random_forest": "lightgbm"}
    py = sys.executable
    imports = {"python": [py, "-c", "pass"], "keras": [py, "-c", "import keras"],
               "tensorflow": [py, "-c", "import tensorflow"],
               "lightgbm": [py, "-c", "import lightgbm"]}
    runs: dict[str, list[float]] = {k: [] for k in (*imports, *bundles)}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # alternately, so drift spreads over all
        for name, cmd in [*imports.items(), *((n, classify_cmd(scenes, b, work / f"map-{n}.tif"))
                                              for n, b in bundles.items())]:
            wall, used = timed(cmd)
            runs[name].append(wall)
            cpu[name].append(used)
    median = {k: statistics.median(v) for k, v in runs.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "machine": machine(), "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "pixels": args.height * args.width, "dates": args.dates, "repeats": args.repeats,
        "seconds": {k: round(v, 2) for k, v in median.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in median_cpu.items()},
        "runs": {k: [round(s, 2) for s in v] for k, v in runs.items()},
        "beyond_import": {name: round(median[name] - median[framework[name]], 2)
                          for name in bundles},
        "beyond_import_cpu": {name: round(median_cpu[name] - median_cpu[framework[name]], 2)
                              for name in bundles},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}; KERAS_BACKEND={result['backend']}")
    print(f"map: {args.height} x {args.width} px x {args.dates} dates; median of "
          f"{args.repeats} fresh processes (all runs in brackets)")
    for name in imports:
        print(f"  import {name:<22} {median[name]:6.2f} s  {result['runs'][name]}, CPU "
              f"{median_cpu[name]:.2f} s")
    for name in bundles:
        print(f"  classify, {name:<18} {median[name]:6.2f} s  {result['runs'][name]}, CPU "
              f"{median_cpu[name]:.2f} s -> {result['beyond_import'][name]:.2f} s beyond "
              f"importing {framework[name]} (CPU {result['beyond_import_cpu'][name]:.2f} s)")


if __name__ == "__main__":
    main()
