"""Benchmark: the default network on an accelerator, bare and through landcover, in one run.

Issue 27, item 5. With ``KERAS_BACKEND=jax`` (set here when unset), printed side by side:

1. **bare network on the device**: the default ``convlstm`` network as classify predicts with it
   (:func:`landcover.classify.load_model`: streamed, for ``--window`` (244) px windows of
   ``--dates`` (12) dates), its forward pass ``jax.jit``-compiled (``model.stateless_call``) on
   random windows already on the device, batches of ``--batches`` (16 and 32) windows, in float32
   and bfloat16 (Keras mixed precision) -> window pixels per second (Mpx/s) and, where XLA's cost
   analysis gives the FLOPs, TFLOP/s;
2. **the host path**: the same network through :func:`landcover.classify.predict_windows`
   (``predict_on_batch`` of float32 features built on the host, copied per call), as classify
   calls it with ``classify.features_on: host`` -> Mpx/s; and **the DN path**: the same with
   uint16 digital numbers and uint8 validity sent and the features made inside the network
   (``features_on: model``, auto's choice);
3. **end to end**: ``landcover.classify.classify`` of a synthetic ``--size`` (4096) px square
   scene of ``--dates`` dates (Landsat 8 C2 L2 folders, one date per process of a process pool;
   seeded reflectance, clouds and shadows), in a fresh subprocess -> scene Mpx/s, peak RSS;
   once with the defaults and once with ``classify.features_on=host``;
4. **training**: Keras ``fit`` of the same network on random ``30 x 30`` px patches of
   ``--dates`` dates (compiled as ``landcover train`` compiles it: Adam, ``MaskedLoss``), batch
   ``--train-batch`` (256) -> steps/s and patches/s, after one untimed epoch (compilation).

The bundle holds seeded weights, not trained ones: only time is measured. ``--dry-run`` runs the
same code at tiny sizes (64 px scene, 32 px windows, 4 dates, batch 2) on whatever device there
is, in under a minute on a CPU (tests/test_bench_gpu.py runs it). ``--json`` prints one JSON
object; ``--workdir`` keeps the scenes and the bundle between runs.

Run on a GPU machine (the ``gpu`` extra installs TensorFlow with CUDA; JAX needs
``pip install "jax[cuda12]"``):  KERAS_BACKEND=jax python benchmarks/bench_gpu.py [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

SEED = 20241027
FEATURES = 9  # six bands, valid, day-of-year sin and cos (the default bundle's inputs)
CLASSES = 7


# ------------------------------------------------------------------------------------- scenes
def _write_date(job: tuple) -> str:
    """One date of the synthetic series (run in a worker process): land fields from the series'
    seed (the same in every process), clouds and noise from the date's."""
    from affine import Affine
    from bench_stack import BANDS, MEAN, smooth

    from landcover.qa import encode_qa_pixel
    from landcover.synthetic import reflectance_to_dn, write_c2l2_scene

    folder, size, d = job
    land_rng = np.random.default_rng(SEED)
    land = {b: smooth(land_rng, size, max(8, size // 32)) * 0.6 + smooth(land_rng, size, 16) * 0.4
            for b in BANDS}
    rng = np.random.default_rng([SEED, d])
    season = 0.8 + 0.4 * np.sin(2 * np.pi * d / 23)
    cloudiness = smooth(rng, size, max(8, size // 16))
    cloud = cloudiness > np.quantile(cloudiness[::8, ::8], 1 - rng.uniform(0.05, 0.3))
    shadow = np.roll(cloud, (size // 40 + 1, size // 30 + 1), axis=(0, 1)) & ~cloud
    sr = {}
    for b in BANDS:
        refl = MEAN[b] * (0.5 + land[b]) * (season if b == "nir" else 1.0)
        refl = refl + rng.normal(0, 0.004, (size, size)).astype(np.float32)
        sr[b] = reflectance_to_dn(np.where(cloud, 0.6, np.where(shadow, refl * 0.4, refl)))
    path = write_c2l2_scene(folder, sensor="LC08", path=190, row=25,
                            date=dt.date(2021, 3, 1) + dt.timedelta(days=16 * d),
                            crs_epsg=32633,
                            transform=Affine(30.0, 0.0, 300000.0, 0.0, -30.0, 5100000.0), sr=sr,
                            qa_pixel=encode_qa_pixel(cloud=cloud, dilated_cloud=cloud,
                                                     cloud_shadow=shadow))
    return str(path)


def make_scenes(folder: Path, size: int, dates: int, workers: int) -> tuple[list[Path], float]:
    """The series (reused while the parameters match) and the seconds it took to write."""
    import shutil

    params = {"size": size, "dates": dates, "seed": SEED, "version": 1}
    stamp = folder / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return sorted(p for p in folder.iterdir() if p.is_dir()), 0.0
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, min(workers, dates))) as pool:
        list(pool.map(_write_date, [(folder, size, d) for d in range(dates)]))
    stamp.write_text(json.dumps(params))
    return sorted(p for p in folder.iterdir() if p.is_dir()), time.perf_counter() - t0


# -------------------------------------------------------------------------------------- model
def bare(model, window: int, dates: int, batch: int, calls: int) -> dict:
    """The forward pass alone, jit-compiled, on windows already on the device (JAX); on another
    backend the model's own ``predict_on_batch`` on device tensors."""
    import keras

    x = np.random.default_rng(0).normal(size=(batch, dates, window, window, FEATURES))
    x = x.astype(np.float32)
    flops = None
    if keras.backend.backend() == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def forward(tv, ntv, x):
            return model.stateless_call(tv, ntv, x, training=False)[0]

        xd = jax.device_put(x)
        compiled = forward.lower(tv, ntv, xd).compile()
        try:
            cost = compiled.cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            flops = float(cost.get("flops")) if cost and cost.get("flops") else None
        except Exception:  # noqa: BLE001  (cost analysis is optional, by platform)
            flops = None

        def step():
            return compiled(tv, ntv, xd)

        def sync(y):
            return jax.block_until_ready(y)
    else:
        xd = keras.ops.convert_to_tensor(x)

        def step():
            return model.predict_on_batch(xd)

        def sync(y):
            return np.asarray(y)
    sync(step())  # compile / warm up
    t0 = time.perf_counter()
    for _ in range(calls):
        y = step()
    sync(y)
    seconds = time.perf_counter() - t0
    px = batch * window * window * calls
    out = {"batch": batch, "calls": calls, "seconds": round(seconds, 3),
           "mpx_s": round(px / seconds / 1e6, 6)}
    if flops:
        out["tflop_s"] = round(flops * calls / seconds / 1e12, 3)
    return out


def host_path(model, window: int, dates: int, batch: int, calls: int) -> dict:
    """:func:`landcover.classify.predict_windows` as classify calls it with
    ``classify.features_on: host``: float32 features built on the host, one ``predict_on_batch``
    a batch, the softmax on the host."""
    x = np.random.default_rng(1).normal(size=(batch, dates, window, window, FEATURES))
    return timed_calls(model, x.astype(np.float32), window, batch, calls)


def timed_calls(model, x, window: int, batch: int, calls: int) -> dict:
    """``calls`` calls of :func:`landcover.classify.predict_windows` on ``x`` after one untimed
    call (tracing): seconds and window Mpx/s."""
    import threading

    from landcover.classify import predict_windows

    lock = threading.Lock()
    predict_windows(model, lock, x, batch)  # trace
    t0 = time.perf_counter()
    for _ in range(calls):
        predict_windows(model, lock, x, batch)
    seconds = time.perf_counter() - t0
    return {"batch": batch, "calls": calls, "seconds": round(seconds, 3),
            "mpx_s": round(batch * window * window * calls / seconds / 1e6, 6)}


def dn_path(model, bundle: Path, window: int, dates: int, batch: int, calls: int) -> dict:
    """As :func:`host_path`, with the features made inside the network
    (``classify.features_on: model``, auto's choice): uint16 digital numbers, uint8 validity and
    the dates' scale, offset and normalisation sent instead of float32 features."""
    from landcover.bundle import read_bundle_meta
    from landcover.features import FeatureSpec, doy_sin_cos
    from landcover.models import with_input_features

    meta = read_bundle_meta(bundle, verify=False)
    spec = FeatureSpec.from_record({"bands": meta.input.bands, "fill": meta.input.fill,
                                    "doy": meta.input.doy, "normalisation": meta.normalisation})
    nb = len(spec.bands)
    rng = np.random.default_rng(1)
    dn = rng.integers(7273, 43636, (batch, dates, nb, window, window)).astype(np.uint16)
    valid = (rng.random((batch, dates, window, window)) > 0.2).astype(np.uint8)
    row = np.concatenate([np.full(nb, 2.75e-5), np.full(nb, -0.2), spec.mean, spec.std,
                          doy_sin_cos(100.0)]).astype(np.float32)
    x = (dn, valid, np.broadcast_to(row, (batch, dates, len(row))))
    return timed_calls(with_input_features(model, spec, "uint16"), x, window, batch, calls)


def train_steps(dates: int, batch: int, steps: int) -> dict:
    """Keras ``fit`` of the default network on random 30 px patches, compiled as ``landcover
    train`` compiles it; steps/s over ``steps`` steps after the first (which compiles)."""
    import keras

    from landcover.config import load_config
    from landcover.losses import MaskedLoss
    from landcover.models import build_model

    tc = load_config().train
    spec = load_config().to_dict()["train"]["model"]
    if spec["architecture"] == "auto":  # the default network of auto's candidates
        spec["architecture"] = "convlstm"
    keras.utils.set_random_seed(0)
    model = build_model(spec, (dates, 30, 30, FEATURES), CLASSES)
    model.compile(optimizer=keras.optimizers.Adam(tc.learning_rate),
                  loss=MaskedLoss(tc.loss.kind, CLASSES))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(batch * (steps + 1), dates, 30, 30, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, (batch * (steps + 1), 30, 30)).astype(np.int32)
    ends: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[Clock()])
    seconds = ends[-1] - ends[0]  # the first step (compilation) left out
    return {"batch": batch, "steps": steps, "seconds": round(seconds, 3),
            "steps_s": round(steps / seconds, 2), "patches_s": round(batch * steps / seconds, 1)}


CHILD = """
import json, sys, time
from landcover.classify import classify, model_scenes, resolve_config
folders, model, out, sets = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
meta, cfg = resolve_config(model, None, sets)
t0 = time.perf_counter()
s = classify(model_scenes(folders, meta, cfg), model, out, cfg, meta=meta, overwrite=True,
             progress=False)
seconds = time.perf_counter() - t0
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "precision": s["precision"], "window": s["window"],
                  "features_on": s["features_on"],
                  "batch_size": s["batch_size"], "blocks": s["blocks"], "peak_mib": hwm}))
"""


def end_to_end(scenes: list[Path], bundle: Path, out: Path, size: int, *sets: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([str(s) for s in scenes]),
                           str(bundle), str(out), *sets], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"classify failed:\n{done.stderr[-3000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r["mpx_s"] = round(size * size / r["seconds"] / 1e6, 6)
    r["seconds"] = round(r["seconds"], 2)
    r["peak_mib"] = round(r["peak_mib"])
    return r


def device() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    return keras.backend.backend()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="end-to-end scene side, px")
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--window", type=int, default=244, help="bare/host window side, px")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--calls", type=int, default=10, help="timed calls per figure")
    ap.add_argument("--train-batch", type=int, default=256)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes writing the synthetic scenes")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-gpu"))
    ap.add_argument("--dry-run", action="store_true",
                    help="the same code at tiny sizes (a CPU, under a minute)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.dry_run:
        args.size, args.dates, args.window, args.batches = 64, 4, 32, [2]
        args.calls, args.train_batch, args.train_steps = 1, 4, 2
        args.workdir = args.workdir.with_name(args.workdir.name + "-dry-run")

    import keras
    from bench_classify import make_bundle

    from landcover.classify import load_model

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    scenes, scene_seconds = make_scenes(work / f"scenes-{args.size}-{args.dates}", args.size,
                                        args.dates, args.workers)
    bundle = make_bundle(work / f"convlstm-{args.dates}", scenes)
    result = {"backend": keras.backend.backend(), "device": device(),
              "dry_run": args.dry_run, "window": args.window, "dates": args.dates,
              "bare": {}, "host_path": {}, "dn_path": {}}
    stages = {"setup": time.perf_counter() - t_start}
    t0 = time.perf_counter()
    for precision in ("float32", "bfloat16"):
        model = load_model(bundle, args.window, precision)
        result["bare"][precision] = [bare(model, args.window, args.dates, b, args.calls)
                                     for b in args.batches]
        result["host_path"][precision] = [host_path(model, args.window, args.dates, b,
                                                    args.calls) for b in args.batches]
        result["dn_path"][precision] = [dn_path(model, bundle, args.window, args.dates, b,
                                                args.calls) for b in args.batches]
        keras.backend.clear_session()
    stages["network"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result["end_to_end"] = {"size": args.size, "scene_seconds": round(scene_seconds, 1),
                            **end_to_end(scenes, bundle, work / "map.tif", args.size)}
    # the same with the features made on the host, for comparison
    result["end_to_end_host_features"] = end_to_end(scenes, bundle, work / "map_host.tif",
                                                    args.size, "classify.features_on=host")
    stages["end_to_end"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result["train"] = train_steps(args.dates, args.train_batch, args.train_steps)
    stages["train"] = time.perf_counter() - t0
    result["stage_seconds"] = {k: round(v, 1) for k, v in stages.items()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return result


def report(r: dict) -> None:
    print(f"backend {r['backend']} on {r['device']}{' (dry run)' if r['dry_run'] else ''}; "
          f"windows {r['window']}^2 x {r['dates']} dates")
    for what in ("bare", "host_path", "dn_path"):
        for precision, rows in r[what].items():
            for row in rows:
                tf = f", {row['tflop_s']} TFLOP/s" if "tflop_s" in row else ""
                print(f"  {what:<9} {precision:<8} batch {row['batch']:>3}: "
                      f"{row['mpx_s']:8.3f} Mpx/s{tf}")
    e = r["end_to_end"]
    print(f"  classify end to end, {e['size']}^2 x {r['dates']} ({e['precision']}, features on "
          f"the {e['features_on']}, window {e['window']}, batch {e['batch_size']}, "
          f"{e['blocks']} blocks): {e['seconds']} s, {e['mpx_s']} Mpx/s, peak RSS "
          f"{e['peak_mib']} MiB (scenes written in {e['scene_seconds']} s)")
    h = r["end_to_end_host_features"]
    print(f"  the same, features on the {h['features_on']}: {h['seconds']} s, {h['mpx_s']} "
          f"Mpx/s, peak RSS {h['peak_mib']} MiB")
    t = r["train"]
    print(f"  train (Keras fit, batch {t['batch']}): {t['steps_s']} steps/s, "
          f"{t['patches_s']} patches/s")
    print("  seconds by stage: " + ", ".join(f"{k} {v}" for k, v in r["stage_seconds"].items()))


if __name__ == "__main__":
    main()
