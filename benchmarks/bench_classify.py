"""Benchmark: ``landcover classify`` against the work that cannot be avoided, in one run.

Synthetic Landsat 8 C2 L2 scenes (``bench_stack.make_scenes``: seeded reflectance, clouds,
shadows, cirrus, saturation, a fill corner) and a model bundle holding the default network
(``train.model`` defaults: ConvLSTM 3 x 16 filters, 30 px patches, 7 classes; weights from the seed,
not trained: only time, memory and agreement are measured). Every job runs in a fresh subprocess,
one at a time, so its peak RSS (``VmHWM``) and its time are its own. Printed:

1. **End to end against the bare model** (``--size``, default 2048^2 x ``--dates`` 12, the default
   classify config):

   * *landcover*: wall time of ``landcover.classify.classify`` (planning, reading every date by
     blocks, features, the model, the Zarr block store, the COG with overviews, legend, style,
     STAC item, quicklook) -> pixels of the scene per second;
   * *bare model*: the windows a single non-overlapping tiling of the scene needs at the same
     window size (``ceil(H / s) x ceil(W / s)``), cut from the scene's rasters already in memory
     (each batch's inputs made as classify makes them, before its call is timed: features, or
     the digital numbers where the network makes the features, ``classify.features_on``) and
     passed to the same network with the same call and batch size -> the time of the model calls
     alone -> pixels of the scene per second; once more (one run) with the
     bundle's Keras network as trained, in float32, instead of the streamed network in the
     configured precision that classify predicts with;
   * *random forest*: a per-pixel scikit-learn forest (100 trees, the 72 band-date reflectances,
     fitted beforehand on 20,000 pixels labelled by landcover's map), end to end: reading the stack,
     predicting every pixel, writing a GeoTIFF;
   * *previous default* (``--previous DIR``: a landcover source tree, e.g. the commit before the
     tiling changed, unpacked with ``git archive``): its ``classify`` with its defaults; its time,
     peak memory and the share of pixels where its map differs from landcover's.
   * *importing the backend*: ``import keras`` in a fresh process (the backend's import, which
     the end-to-end run pays once whatever the scene's size, measured apart as for issue 27's small
     map), and the end-to-end ratio without it.
   * *the floor on these cores*: CPU seconds (every thread) of the end-to-end run, of the bare
     model's calls, and of one more end-to-end run whose model calls return uniform probabilities
     (everything else a run does: the import, loading, reading and decoding, features, blending,
     the store, the products). End to end cannot take less than the model's CPU seconds for
     classify's windows plus that, spread over every core (nor less than the model calls alone):
     printed with the most end to end / bare model that this allows on the machine, and how close
     the run came. Where the bare model keeps every core busy, the host's work cannot hide
     behind it.

2. **Memory as scenes and series grow**: peak RSS of ``classify`` on 1024^2 and 4096^2 px
   (``--memory-sizes``) at ``--dates`` dates, and on 1024^2 px at twice the dates; ratios.

End to end, the bare model, the import and the forest run alternately ``--repeats`` times
(default 2) and the fastest run of each counts; every run's seconds and the ratio of each pair
(end to end and the bare model run one after the other) are printed too, with their median: the
machine's speed drifts between runs, by up to a third on a shared 2-core VM, and the fastest of
each may come from different minutes. The last line is
``ratio end-to-end / bare-model: X.XX``; with ``--json``, one JSON object follows it:
``end_to_end_px_s``, ``bare_px_s``, ``forest_px_s`` (null with ``--skip-rf``), their ratios,
``end_to_end_over_bare_pairs`` and ``end_to_end_over_bare_median_pair``,
``import_s`` and ``end_to_end_beyond_import_over_bare``, the CPU seconds with ``floor_cores``,
``floor_s``, ``end_to_end_over_bare_bound`` and ``end_to_end_over_floor``, the seconds of each
run, the precision,
the machine and its load average at the start and the end (other work on a shared machine slows
every figure).
Issue 27's CPU criteria: end to end at least 0.8 of the bare model, and at least the forest.

``--set KEY=VALUE`` (repeatable) overrides the config of the end-to-end, bare-model and floor runs
(``--set classify.features_on=model``: the features made inside the network).

Run:  python benchmarks/bench_classify.py [--size 2048] [--dates 12] [--memory-sizes 1024 4096]
          [--workdir DIR] [--previous DIR] [--skip-memory] [--skip-rf] [--repeats 2] [--json]
          [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_prepare import peak_rss_mib
from bench_stack import make_scenes

CLASSES = [("water", "#2166ac"), ("forest", "#1b7837"), ("urban", "#d6604d"),
           ("summer_crop", "#f1c232"), ("spring_crop", "#a6611a"), ("grassland", "#9bd770"),
           ("wetland", "#762a83")]


def make_bundle(folder: Path, scenes: list[Path]) -> Path:
    """A model bundle of the default network for the scenes' dates (seeded weights)."""
    from landcover.bundle import MODEL_FILE, write_metadata
    from landcover.config import load_config
    from landcover.features import feature_names
    from landcover.runtime import import_keras
    from landcover.scenes import find_scenes
    from landcover.stack import date_groups

    if (folder / "bundle.json").exists():
        return folder
    keras = import_keras()
    from landcover.models import build_model

    cfg = load_config()
    bands = list(cfg.scenes.bands)
    features = feature_names(bands, True)
    dates = [d.isoformat() for d, _ in date_groups(find_scenes([str(s) for s in scenes]))]
    keras.utils.set_random_seed(0)
    spec = cfg.to_dict()["train"]["model"]
    if spec["architecture"] == "auto":  # the default network of ``auto``'s candidates
        spec["architecture"] = "convlstm"
    model = build_model(spec, (None, 30, 30, len(features)), len(CLASSES))
    folder.mkdir(parents=True)
    model.save(folder / MODEL_FILE)
    meta = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": spec,
        "input": {"layout": ["time", "y", "x", "feature"], "time_steps": len(dates),
                  "variable_time_steps": True, "patch_size": 30, "features": features,
                  "bands": bands, "fill": "zero", "doy": True, "dtype": "float32"},
        "normalisation": {"mean": [0.05, 0.08, 0.07, 0.30, 0.20, 0.12],
                          "std": [0.02, 0.03, 0.03, 0.08, 0.06, 0.05], "bands": bands},
        "dates": dates, "dates_dropped": [],
        "classes": [{"index": i, "code": i + 1, "name": n, "color": c, "weight": 1.0}
                    for i, (n, c) in enumerate(CLASSES)],
        "ignore_label": 255, "output": {"kind": "logits", "classes": len(CLASSES)},
        "config": {"scenes": cfg.to_dict()["scenes"]},
        "training": {"note": "benchmark bundle: seeded weights, not trained"},
    }
    write_metadata(folder, meta)
    return folder


def scenes_of(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.iterdir()) if p.is_dir() and p.name.startswith("LC08")]


# ------------------------------------------------------------------------------------ child jobs
def job_landcover(folder: Path, model: Path, out: Path, sets: list[str]) -> dict:
    from landcover.classify import classify, model_scenes, resolve_config

    meta, cfg = resolve_config(model, None, sets)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = classify(model_scenes(scenes_of(folder), meta, cfg), model, out, cfg, meta=meta,
                       overwrite=True, progress=False)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "windows": summary["windows"],
            "window": summary["window"], "overlap": summary["overlap"],
            "block": summary["block_size"], "batch": summary.get("batch_size"),
            "per_pixel": summary.get("predictions_per_pixel"),
            "features_on": summary.get("features_on", "host"),
            "precision": summary.get("precision", "float32"),
            "pixels": summary["grid"]["width"] * summary["grid"]["height"]}


def job_host(folder: Path, model: Path, out: Path, sets: list[str] = ()) -> dict:
    """``classify`` end to end with every model call replaced by uniform probabilities: the
    work of a run beyond the model's (importing the backend, loading the bundle, reading,
    decoding, features, blending, the store, the products), its seconds and CPU seconds."""
    from landcover.classify import blocks, resolve_config

    K = len(resolve_config(model)[0].classes)

    def uniform(model, lock, x, batch_size, days=None, temperature=1.0):
        n, s = (len(x), x.shape[2]) if not isinstance(x, tuple) else (len(x[0]), x[1].shape[2])
        return np.full((n, s, s, K), 1.0 / K, np.float32)

    blocks.predict_windows = uniform
    return job_landcover(folder, model, out, list(sets))


def job_bare(folder: Path, model_dir: Path, out: Path, trained: bool = False,
             sets: list[str] = ()) -> dict:
    """The model calls a non-overlapping tiling at landcover's window size needs, timed alone;
    ``trained``: with the bundle's Keras network as trained, in float32 (not the network
    classify predicts with), for comparison."""
    import dataclasses

    from landcover.classify import (
        BlockData,
        build_plan,
        model_scenes,
        predict_windows,
        resolve_config,
        worker_model,
    )
    from landcover.classify.blocks import window_batch
    from landcover.classify.worker import model_for

    meta, cfg = resolve_config(model_dir, None, list(sets))
    plan, _, _ = build_plan(model_scenes(scenes_of(folder), meta, cfg), model_dir, cfg, meta,
                            out.with_suffix(".store"))
    s, H, W = plan.window, plan.grid.height, plan.grid.width
    ny, nx = math.ceil(H / s), math.ceil(W / s)
    if not trained:
        model, lock = worker_model(plan)
        precision = plan.precision
    else:
        import threading

        from landcover.bundle import load_bundle
        from landcover.models import build_model, valid_channel_of

        keras_model, meta = load_bundle(model_dir)
        inp = meta["input"]
        model = build_model(meta["architecture"], (None, s, s, len(inp["features"])),
                            len(meta["classes"]), meta["output"].get("absent_classes", ()),
                            valid_channel_of(inp))
        model.set_weights(keras_model.get_weights())
        lock, precision = threading.Lock(), "float32"
        plan = dataclasses.replace(plan, features_on="host")  # the trained network's inputs
    # the scene's rasters in memory (reflected beyond its edges), read before timing; each
    # batch's inputs made as classify makes them (features, or the digital numbers where the
    # network makes its features: classify.features_on), before its call is timed
    data = BlockData(plan, np.arange(ny * s), np.arange(nx * s))
    B = plan.batch_size
    windows = [(i * s, j * s) for i in range(ny) for j in range(nx)]

    def call(x):
        predict_windows(model_for(plan, model, x), lock, x, B, plan.days)

    call(window_batch(plan, data, windows[:1] * B, 0, 0))  # trace once
    seconds = cpu = 0.0
    for a in range(0, len(windows), B):
        x = window_batch(plan, data, windows[a:a + B], 0, 0)
        t0, c0 = time.perf_counter(), time.process_time()
        call(x)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu, "windows": len(windows), "window": s,
            "batch": B, "pixels": H * W, "precision": precision,
            "features_on": plan.features_on}


def job_import() -> dict:
    """Importing the backend (what every classify pays once before its first model call)."""
    t0 = time.perf_counter()
    from landcover.runtime import import_keras

    import_keras()
    return {"seconds": time.perf_counter() - t0}


def job_rf(folder: Path, model_dir: Path, out: Path, labels_map: Path) -> dict:
    """A per-pixel random forest, end to end (read the stack, predict every pixel, write)."""
    import rasterio
    from sklearn.ensemble import RandomForestClassifier

    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    def read_stack():
        stack = stack_scenes(find_scenes(scenes_of(folder)))
        refl = stack.reflectance.values  # (T, B, H, W)
        T, nb, H, W = refl.shape
        return np.nan_to_num(refl.reshape(T * nb, H * W).T), stack.attrs, H, W

    with rasterio.open(labels_map) as src:
        target = src.read(1).ravel()
    x, _, H, W = read_stack()
    rng = np.random.default_rng(0)
    sample = rng.choice(np.flatnonzero(target != 255), 20000, replace=False)
    forest = RandomForestClassifier(100, n_jobs=-1, random_state=0).fit(x[sample], target[sample])
    del x
    t0 = time.perf_counter()
    x, attrs, H, W = read_stack()
    codes = np.concatenate([forest.predict(x[a:a + 262144])
                            for a in range(0, len(x), 262144)]).astype(np.uint8)
    with rasterio.open(out, "w", driver="GTiff", width=W, height=H, count=1, dtype="uint8",
                       crs=attrs["crs"], transform=rasterio.Affine(*attrs["transform"][:6]),
                       nodata=255, tiled=True, compress="deflate") as dst:
        dst.write(codes.reshape(H, W), 1)
    return {"seconds": time.perf_counter() - t0, "pixels": H * W}


def child(mode: str, folder: Path, model: Path, out: Path, sets: list[str]) -> None:
    jobs = {"landcover": lambda: job_landcover(folder, model, out, sets),
            "previous": lambda: job_landcover(folder, model, out, []),  # the tree on PYTHONPATH
            "bare": lambda: job_bare(folder, model, out, sets=sets),
            "bare_trained": lambda: job_bare(folder, model, out, trained=True),
            "host": lambda: job_host(folder, model, out, sets),
            "import": job_import,
            "rf": lambda: job_rf(folder, model, out, Path(sets[0]))}
    result = jobs[mode]()
    result["peak_mib"] = peak_rss_mib()
    print(json.dumps(result))


def run_child(mode: str, folder: Path, model: Path, out: Path, *sets: str,
              tree: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="2")
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(model),
                           str(out), *sets], check=False, capture_output=True, text=True,
                           env=env)
    if proc.returncode != 0:
        sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_floor(lc: dict, bare: dict, host: dict) -> dict:
    """The least time end to end can take on this machine's cores, from CPU seconds: the model
    calls of classify's windows (the bare model's CPU seconds per window) plus everything else
    a run does (``host``: the run with the model calls replaced), spread over every core, and
    not less than the model calls alone. ``bound``: the most end to end / bare model (px/s) this
    floor allows; ``of_floor``: how close the run came to it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    scale = lc["windows"] / bare["windows"]
    floor = max(bare["seconds"] * scale,
                (bare["cpu_seconds"] * scale + host["cpu_seconds"]) / cores)
    return {"cores": cores, "host_s": host["seconds"], "host_cpu_s": host["cpu_seconds"],
            "floor_s": floor, "bound": bare["seconds"] / floor * lc["pixels"] / bare["pixels"],
            "of_floor": floor / lc["seconds"]}


def differ(a: Path, b: Path) -> float:
    """Share of the pixels classified in both maps where the classes differ."""
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        p, q = x.read(1), y.read(1)
    both = (p != 255) & (q != 255)
    return float((p[both] != q[both]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--memory-sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-classify"))
    ap.add_argument("--previous", type=Path)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-rf", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the end-to-end, bare-model and floor runs (e.g. "
                         "classify.features_on=model); repeatable")
    ap.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, folder, model, out, *sets = args.child
        child(mode, Path(folder), Path(model), Path(out), sets)
        return

    import keras

    load_start = os.getloadavg()
    print(f"# bench_classify: {os.cpu_count()} cores, python {platform.python_version()}, "
          f"keras {keras.__version__} ({keras.backend.backend()})", flush=True)
    work = args.workdir
    runs = [(args.size, args.dates)]
    if not args.skip_memory:
        runs += [(m, args.dates) for m in args.memory_sizes] + \
            [(min(args.memory_sizes), 2 * args.dates)]
    runs = list(dict.fromkeys(runs))
    folders = {}
    for size, dates in runs:
        folders[size, dates] = work / f"s{size}_t{dates}"
        t0 = time.perf_counter()
        make_scenes(folders[size, dates], size, dates)
        print(f"scenes {size}^2 x {dates} dates ready ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    # one bundle per series length (a bundle records its dates)
    models = {d: make_bundle(work / f"model_t{d}", scenes_of(folders[s, d])) for s, d in runs}

    size, dates = args.size, args.dates
    f, model = folders[size, dates], models[dates]
    # end to end, bare model, import and forest alternately, --repeats times each; the fastest
    # run of each counts (the machine's speed drifts by a few per cent between runs)
    lcs, bares, imports, rfs = [], [], [], []
    for _ in range(max(1, args.repeats)):
        lcs.append(run_child("landcover", f, model, out / f"lc{size}.tif", *args.set))
        bares.append(run_child("bare", f, model, out / f"bare{size}.tif", *args.set))
        imports.append(run_child("import", f, model, out))
        if not args.skip_rf:  # labelled by landcover's map
            rfs.append(run_child("rf", f, model, out / f"rf{size}.tif", str(out / f"lc{size}.tif")))
    lc = min(lcs, key=lambda r: r["seconds"])
    bare = min(bares, key=lambda r: r["seconds"])
    t_import = min(r["seconds"] for r in imports)
    beyond = bare["seconds"] / (lc["seconds"] - t_import) * lc["pixels"] / bare["pixels"]
    px_lc, px_bare = lc["pixels"] / lc["seconds"], bare["pixels"] / bare["seconds"]
    trained = run_child("bare_trained", f, model, out / f"bare{size}.tif")
    cpu = cpu_floor(lc, bare, run_child("host", f, model, out / f"host{size}.tif", *args.set))
    rows = [("landcover classify, end to end", lc, (f"{lc['windows']:,d} x {lc['window']}^2 "
             f"(overlap {lc['overlap']}, {lc['per_pixel']:.2f} predictions per pixel), "
             f"{lc['precision']}, features on the {lc['features_on']}")),
            ("bare model, non-overlapping tiling", bare,
             (f"{bare['windows']:,d} x {bare['window']}^2 "
             f"({bare['windows'] * bare['window'] ** 2 / bare['pixels']:.2f} per pixel), the "
             f"network classify predicts with, {bare['precision']}, features on the "
             f"{bare['features_on']}")),
            ("bare model, the Keras network as trained", trained,
             f"the same windows, {trained['precision']} (one run; for comparison)")]
    if not args.skip_rf:
        rf = min(rfs, key=lambda r: r["seconds"])
        rows.append(("random forest per pixel, end to end", rf, "100 trees, 72 values"))
    if args.previous:
        prev = run_child("previous", f, model, out / f"prev{size}.tif", tree=args.previous)
        rows.append(("previous default classify, end to end", prev,
                     f"{prev['windows']:,d} x {prev['window']}^2 (overlap {prev['overlap']})"))
    pair_ratios = [b["seconds"] / a["seconds"] for a, b in zip(lcs, bares)]
    print(f"\n## 1. {size}^2 px, {dates} dates; batches of {bare['batch']} windows, blocks of "
          f"{lc['block']} px")
    print("| job | seconds | scene pixels/s | peak MiB | windows |\n|---|---:|---:|---:|---|")
    for name, r, what in rows:
        print(f"| {name} | {r['seconds']:.1f} | {r['pixels'] / r['seconds']:,.0f} | "
              f"{r['peak_mib']:,.0f} | {what} |")
    if len(lcs) > 1:
        t_lc = ", ".join(f"{r['seconds']:.1f}" for r in lcs)
        t_bare = ", ".join(f"{r['seconds']:.1f}" for r in bares)
        pairs = ", ".join(f"{r:.3f}" for r in pair_ratios)
        t_rf = "" if not rfs else "; forest " + ", ".join(f"{r['seconds']:.1f}" for r in rfs)
        print(f"\n{len(lcs)} runs each, alternately; the table has the fastest of each. Seconds: "
              f"landcover {t_lc}; bare model {t_bare}{t_rf}; end to end / bare model of each "
              f"pair, run side by side {pairs} (median {statistics.median(pair_ratios):.3f}): "
              "where the machine's speed drifts, the fastest of each may come from different "
              "minutes")
    print(f"\nmodel throughput: bare {bare['windows'] * bare['window'] ** 2 / bare['seconds']:,.0f}"
          f" window px/s; landcover {lc['windows'] * lc['window'] ** 2 / lc['seconds']:,.0f} window"
          " px/s")
    print(f"end to end / the Keras network as trained, float32: "
          f"{px_lc * trained['seconds'] / trained['pixels']:.2f}; bare model / it: "
          f"{px_bare * trained['seconds'] / trained['pixels']:.2f}")
    if not args.skip_rf:
        print(f"landcover / random forest pixels/s: {px_lc * rf['seconds'] / rf['pixels']:.2f}")
    if args.previous:
        print(f"landcover / previous default pixels/s: "
              f"{px_lc * prev['seconds'] / prev['pixels']:.2f}; peak memory landcover / previous: "
              f"{lc['peak_mib'] / prev['peak_mib']:.2f}; the maps differ on "
              f"{differ(out / f'lc{size}.tif', out / f'prev{size}.tif'):.3%} of pixels")

    if not args.skip_memory:
        mem = {}
        for s_, d_ in runs[1:]:
            mem[s_, d_] = run_child("landcover", folders[s_, d_], models[d_],
                                    out / f"mem{s_}_{d_}.tif")
        mem[size, dates] = lc
        print("\n## 2. peak memory as scenes and series grow (default config)")
        print("| scene | dates | seconds | scene pixels/s | peak MiB | block px |\n"
              "|---|---:|---:|---:|---:|---:|")
        for (s_, d_), r in sorted(mem.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"| {s_}^2 | {d_} | {r['seconds']:.1f} | {r['pixels'] / r['seconds']:,.0f} | "
                  f"{r['peak_mib']:,.0f} | {r['block']} |")
        small, large = min(args.memory_sizes), max(args.memory_sizes)
        print(f"\npeak memory {large}^2 / {small}^2 at {dates} dates: "
              f"{mem[large, dates]['peak_mib'] / mem[small, dates]['peak_mib']:.2f}x; "
              f"{2 * dates} / {dates} dates at {small}^2: "
              f"{mem[small, 2 * dates]['peak_mib'] / mem[small, dates]['peak_mib']:.2f}x")
    print(f"importing the backend (fresh process, fastest of {len(imports)}): {t_import:.1f} s; "
          f"end to end beyond it {lc['seconds'] - t_import:.1f} s, / bare model: {beyond:.2f}")
    print(f"\nCPU seconds (all threads): end to end {lc['cpu_seconds']:.1f}; bare model "
          f"{bare['cpu_seconds']:.1f} ({bare['cpu_seconds'] / bare['seconds']:.2f} cores busy); "
          f"everything but the model calls (one run, uniform probabilities instead) "
          f"{cpu['host_cpu_s']:.1f} in {cpu['host_s']:.1f} s. On {cpu['cores']} cores, with "
          f"classify's {lc['windows']} windows, end to end cannot take less than "
          f"{cpu['floor_s']:.1f} s: at most {cpu['bound']:.2f} of the bare model's px/s on this "
          f"machine; this run took {cpu['of_floor']:.2f} of that floor's px/s")
    print(f"\nratio end-to-end / bare-model: {px_lc / px_bare:.2f}")
    if args.json:
        px_rf = None if args.skip_rf else rf["pixels"] / rf["seconds"]
        print(json.dumps({
            "size": size, "dates": dates, "cores": os.cpu_count(), "cpu": platform.processor()
            or platform.machine(), "backend": keras.backend.backend(),
            "precision": lc["precision"], "windows": lc["windows"], "window": lc["window"],
            "end_to_end_px_s": round(px_lc), "bare_px_s": round(px_bare),
            "forest_px_s": None if px_rf is None else round(px_rf),
            "end_to_end_over_bare": round(px_lc / px_bare, 3),
            "end_to_end_over_bare_pairs": [round(r, 3) for r in pair_ratios],
            "end_to_end_over_bare_median_pair": round(statistics.median(pair_ratios), 3),
            "import_s": round(t_import, 2), "end_to_end_beyond_import_over_bare": round(beyond, 3),
            "end_to_end_over_forest": None if px_rf is None else round(px_lc / px_rf, 3),
            "seconds": {"end_to_end": [r["seconds"] for r in lcs],
                        "bare": [r["seconds"] for r in bares],
                        "import": [r["seconds"] for r in imports],
                        "forest": [r["seconds"] for r in rfs] or None},
            "peak_mib": {"end_to_end": lc["peak_mib"], "bare": bare["peak_mib"]},
            "cpu_seconds": {"end_to_end": round(lc["cpu_seconds"], 1),
                            "bare": round(bare["cpu_seconds"], 1),
                            "beyond_the_model": round(cpu["host_cpu_s"], 1)},
            "floor_cores": cpu["cores"], "floor_s": round(cpu["floor_s"], 1),
            "end_to_end_over_bare_bound": round(cpu["bound"], 3),
            "end_to_end_over_floor": round(cpu["of_floor"], 3),
            "load_average": {"start": [round(v, 2) for v in load_start],
                             "end": [round(v, 2) for v in os.getloadavg()]}}))


if __name__ == "__main__":
    main()
