"""Benchmark: ``landcover classify`` against the bare model and against a naive script.

Synthetic 12-date Landsat 8 C2 L2 scenes (``bench_stack.make_scenes``: seeded reflectance, clouds,
shadows, cirrus, saturation, a fill corner) and a model bundle holding the default network
(``train.model`` defaults: ConvLSTM 3 x 16 filters, 30 px patches, 7 classes; weights from the seed,
not trained: only time and memory are measured). Every job runs in a fresh subprocess so its peak
RSS (``VmHWM``) is its own. Printed:

1. **Hiding I/O behind compute** (``--size``, default 2048^2, default classify config: 30 px windows,
   overlap 15, 512 px blocks, batch 32, threaded scheduler):

   * *landcover*: wall time of ``landcover.classify.classify`` (planning, reading every date by
     blocks, features, the model, blending, the Zarr block store, the COG with overviews, style,
     quicklook) -> pixels/s of the scene;
   * *bare model*: the same windows (same lattice, the same windows skipped), cut from features
     already in memory (computed before timing), passed to the same model with the same call
     (``predict_on_batch`` on batches of exactly 32) -> the time of the model calls alone -> pixels/s;
   * ratio landcover / bare (target >= 0.9).

2. **Memory as scenes grow** (``--memory-sizes``, default 1024^2 and 4096^2): peak RSS of
   ``classify`` on each (overlap 0 here to keep the 4096^2 run short; the halo and blocks are the
   same) and the ratio largest / smallest (target <= 1.3).

3. **The naive way** (``--size``): what a user writes by hand: the whole stack loaded with
   ``stack.compute()``, features for the whole scene, reflect padding with ``np.pad``, windows cut
   with numpy and classified with ``model.predict(batch, batch_size=32)``, probabilities stitched with
   the same weights in full-scene arrays, the map written with rasterio. Its wall time and peak
   memory against landcover's, and whether the maps agree.

Run:  python benchmarks/bench_classify.py [--size 2048] [--memory-sizes 1024 4096] [--dates 12]
          [--workdir DIR] [--skip-naive] [--skip-memory]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_prepare import peak_rss_mib  # noqa: E402
from bench_stack import make_scenes  # noqa: E402

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
    t0 = time.perf_counter()
    summary = classify(model_scenes(scenes_of(folder), meta, cfg), model, out, cfg, meta=meta, overwrite=True,
                       progress=False)
    return {"seconds": time.perf_counter() - t0, "windows": summary["windows"],
            "pixels": summary["grid"]["width"] * summary["grid"]["height"]}


def _plan(folder: Path, model: Path, out: Path):
    from landcover.classify import build_plan, model_scenes, resolve_config

    meta, cfg = resolve_config(model)
    plan, _, table = build_plan(model_scenes(scenes_of(folder), meta, cfg), model, cfg, meta, out.with_suffix(".store"))
    return plan, table


def job_bare(folder: Path, model_dir: Path, out: Path) -> dict:
    from landcover.classify import load_model, read_features

    plan, _ = _plan(folder, model_dir, out)
    s = plan.window
    oy, ox = plan.origins()  # the lattice landcover uses
    feats, valid = read_features(plan, np.arange(oy[0], oy[-1] + s), np.arange(ox[0], ox[-1] + s))
    anyv = valid.any(axis=0)
    windows = [(y - oy[0], x - ox[0]) for y in oy for x in ox
               if anyv[y - oy[0]:y - oy[0] + s, x - ox[0]:x - ox[0] + s].any()]
    model = load_model(plan.bundle, s)
    B = plan.batch_size
    model.predict_on_batch(np.zeros((B,) + feats[:, :s, :s].shape, np.float32))  # trace once
    seconds = 0.0
    for a in range(0, len(windows), B):
        batch = windows[a:a + B]
        x = np.stack([feats[:, y:y + s, x:x + s] for y, x in batch])
        if len(batch) < B:
            x = np.concatenate([x, np.zeros((B - len(batch),) + x.shape[1:], x.dtype)])
        t0 = time.perf_counter()
        model.predict_on_batch(x)
        seconds += time.perf_counter() - t0
    return {"seconds": seconds, "windows": len(windows),
            "pixels": plan.grid.width * plan.grid.height}


def job_naive(folder: Path, model_dir: Path, out: Path) -> dict:
    """The script a user would write, with the same lattice and weights as landcover."""
    import rasterio

    from landcover.bundle import load_bundle
    from landcover.classify import taper
    from landcover.features import make_features
    from landcover.runtime import import_keras
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    import_keras()
    t0 = time.perf_counter()
    model, meta = load_bundle(model_dir)
    stack = stack_scenes(find_scenes(scenes_of(folder)))
    refl = stack.reflectance.values  # (T, B, H, W): the whole stack in memory
    valid = stack.valid.values
    T, _, H, W = refl.shape
    dates = [np.datetime64(t, "D").astype(object) for t in stack.time.values]
    days = np.array([(d - dates[0]).days for d in dates], float)
    doy = np.array([d.timetuple().tm_yday for d in dates], float)
    norm = meta["normalisation"]
    feats = make_features(np.moveaxis(refl, 1, -1)[None], valid[None], np.array(norm["mean"]),
                          np.array(norm["std"]), days, doy, "zero")[0]
    del refl
    s, ov = 30, 15
    st, h = s - ov, s // 2
    ny, nx = int(np.ceil((H - 1) / st)) + 1, int(np.ceil((W - 1) / st)) + 1
    pad_y, pad_x = (h, (ny - 1) * st + s - h - H), (h, (nx - 1) * st + s - h - W)
    feats = np.pad(feats, ((0, 0), pad_y, pad_x, (0, 0)), mode="reflect")
    anyv = np.pad(valid.any(axis=0), (pad_y, pad_x), mode="reflect")
    K = len(meta["classes"])
    acc = np.zeros((H + sum(pad_y), W + sum(pad_x), K), np.float32)
    wsum = np.zeros(acc.shape[:2], np.float32)
    wt = taper(s, ov)
    origins = [(i * st, j * st) for i in range(ny) for j in range(nx)
               if anyv[i * st:i * st + s, j * st:j * st + s].any()]
    for a in range(0, len(origins), 256):
        part = origins[a:a + 256]
        x = np.stack([feats[:, y:y + s, c:c + s] for y, c in part])
        logits = model.predict(x, batch_size=32, verbose=0)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        for (y, c), pk in zip(part, p):
            acc[y:y + s, c:c + s] += wt[..., None] * pk
            wsum[y:y + s, c:c + s] += wt
    acc = acc[h:h + H, h:h + W]
    codes = (acc.argmax(-1) + 1).astype(np.uint8)
    codes[~valid.any(axis=0)] = 255
    g = stack.attrs
    with rasterio.open(out, "w", driver="GTiff", width=W, height=H, count=1, dtype="uint8",
                       crs=g["crs"], transform=rasterio.Affine(*g["transform"][:6]), nodata=255,
                       tiled=True, compress="deflate") as dst:
        dst.write(codes, 1)
    return {"seconds": time.perf_counter() - t0, "windows": len(origins), "pixels": H * W}


def child(mode: str, folder: Path, model: Path, out: Path, sets: list[str]) -> None:
    jobs = {"landcover": lambda: job_landcover(folder, model, out, sets),
            "bare": lambda: job_bare(folder, model, out),
            "naive": lambda: job_naive(folder, model, out)}
    result = jobs[mode]()
    result["peak_mib"] = peak_rss_mib()
    print(json.dumps(result))


def run_child(mode: str, folder: Path, model: Path, out: Path, *sets: str) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(model),
                           str(out), *sets], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(a: Path, b: Path) -> float:
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        return float((x.read(1) == y.read(1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--memory-sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-classify"))
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, folder, model, out, *sets = args.child
        child(mode, Path(folder), Path(model), Path(out), sets)
        return

    import keras

    print(f"# bench_classify: {args.dates} dates; {os.cpu_count()} cores, python "
          f"{platform.python_version()}, keras {keras.__version__} ({keras.backend.backend()})",
          flush=True)
    work = args.workdir
    sizes = sorted({args.size, *([] if args.skip_memory else args.memory_sizes)})
    folders = {}
    for size in sizes:
        folders[size] = work / f"s{size}"
        t0 = time.perf_counter()
        make_scenes(folders[size], size, args.dates)
        print(f"scenes {size}^2 x {args.dates} dates ready ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    model = make_bundle(work / "model", scenes_of(folders[sizes[0]]))
    out = work / "out"
    out.mkdir(exist_ok=True)

    size = args.size
    f = folders[size]
    lc = run_child("landcover", f, model, out / f"lc{size}.tif")
    bare = run_child("bare", f, model, out / f"bare{size}.tif")
    px_lc, px_bare = lc["pixels"] / lc["seconds"], bare["pixels"] / bare["seconds"]
    print(f"\n## 1. {size}^2 px, {args.dates} dates, {bare['windows']:,d} windows of 30 px "
          f"(overlap 15); landcover predicts {lc['windows']:,d}: windows that straddle a block "
          "edge are predicted by both blocks")
    print("| job | seconds | pixels/s | windows/s | peak MiB |\n|---|---|---|---|---|")
    print(f"| landcover classify (end to end) | {lc['seconds']:.1f} | {px_lc:,.0f} | "
          f"{lc['windows'] / lc['seconds']:.1f} | {lc['peak_mib']:.0f} |")
    print(f"| bare model, windows in memory | {bare['seconds']:.1f} | {px_bare:,.0f} | "
          f"{bare['windows'] / bare['seconds']:.1f} | {bare['peak_mib']:.0f} |")
    print(f"\nlandcover / bare model pixels/s: {px_lc / px_bare:.3f} (target >= 0.9)", flush=True)

    if not args.skip_memory:
        rows = []
        for m in args.memory_sizes:
            r = run_child("landcover", folders[m], model, out / f"mem{m}.tif",
                          "classify.overlap=0")
            rows.append((m, r))
            print(f"  memory run {m}^2: {r['seconds']:.1f} s, {r['peak_mib']:.0f} MiB", flush=True)
        print("\n## 2. peak memory as the scene grows (overlap 0)")
        print("| size | input MB | seconds | peak MiB |\n|---|---|---|---|")
        for m, r in rows:
            mb = args.dates * 8 * m * m * 2 / 1e6
            print(f"| {m}^2 | {mb:,.0f} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |")
        print(f"\npeak memory {rows[-1][0]}^2 / {rows[0][0]}^2: "
              f"{rows[-1][1]['peak_mib'] / rows[0][1]['peak_mib']:.2f}x (target <= 1.3x)",
              flush=True)

    if not args.skip_naive:
        naive = run_child("naive", f, model, out / f"naive{size}.tif")
        print(f"\n## 3. naive script at {size}^2 (whole stack in memory, model.predict, "
              "stitching in memory)")
        print("| job | seconds | pixels/s | peak MiB |\n|---|---|---|---|")
        for name, r in (("landcover classify", lc), ("naive script", naive)):
            print(f"| {name} | {r['seconds']:.1f} | {r['pixels'] / r['seconds']:,.0f} | "
                  f"{r['peak_mib']:.0f} |")
        print(f"\nspeed landcover / naive: {naive['seconds'] / lc['seconds']:.2f}x; peak memory "
              f"naive / landcover: {naive['peak_mib'] / lc['peak_mib']:.1f}x; maps agree on "
              f"{agreement(out / f'lc{size}.tif', out / f'naive{size}.tif'):.4%} of pixels")


if __name__ == "__main__":
    main()
