"""Benchmark: landcover stacks vs plain rasterio on synthetic full-resolution Landsat 8 C2 L2 scenes.

What is measured (all in one run, side by side):

1. Throughput.  ``stack_scenes(find_scenes(folders), cfg)`` is built and all six bands plus the mask
   are computed in a streaming way (``dask.compute(reflectance.sum(), valid.sum())``, default threaded
   scheduler, nothing kept).  The baseline is what a user would write by hand: for each scene,
   ``rasterio.open(f).read(1)`` of the six SR bands, QA_PIXEL and QA_RADSAT, the same scale/offset,
   nodata -> NaN, a fill/dilated-cloud/cirrus/cloud/shadow + saturation + valid-range mask, and a sum;
   once as a plain single-threaded loop (the reference of the target) and once with one scene per
   thread.  MB/s = decoded input bytes (dates x 8 files x size^2 x 2 bytes, MB = 10^6 B) / seconds.
   Each variant runs once as a warm-up, then best of ``--repeat``; the files are in the page cache,
   so this measures decoding + compute, not the disk.
2. Peak memory.  Peak RSS (``VmHWM``) of a fresh subprocess that stacks and computes the first 4 dates, and of
   one for all dates (target: flat, 16/4 within 1.3x); the plain rasterio loop for comparison.

Scenes (30 m pixels, one EPSG:32633 grid, tiled 256x256 deflate GeoTIFFs written by
``landcover.synthetic.write_c2l2_scene``; seeded spatially structured reflectance, clouds with dilation,
shadows and cirrus in QA_PIXEL, a few saturated pixels, a fill corner) are written once into
``--workdir`` and reused while the parameters match.

Run:  python benchmarks/bench_stack.py [--size 4096] [--dates 16] [--chunk-size 1024] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
MEAN = {"blue": 0.05, "green": 0.08, "red": 0.07, "nir": 0.30, "swir1": 0.20, "swir2": 0.12}
FILES_PER_DATE = len(BANDS) + 2  # + QA_PIXEL + QA_RADSAT
INVALID_BITS = 0b11111  # fill, dilated cloud, cirrus, cloud, cloud shadow
RADSAT_BITS = sum(1 << (b - 1) for b in range(2, 8)) | (1 << 11)  # SR_B2..B7 + terrain occlusion
SEED, EPSG = 20240601, 32633


# ------------------------------------------------------------------------------ synthetic scenes
def smooth(rng, size: int, cell: int) -> np.ndarray:
    """Random field in [0, 1) with structure ~``cell`` pixels: bilinear upsampling of a coarse grid."""
    n = size // cell + 2
    coarse = rng.random((n, n))
    pos = np.arange(size) / cell
    i = np.minimum(pos.astype(int), n - 2)
    frac = pos - i
    w = np.zeros((size, n))
    w[np.arange(size), i], w[np.arange(size), i + 1] = 1 - frac, frac
    return (w @ coarse @ w.T).astype(np.float32)


def make_scenes(workdir: Path, size: int, dates: int) -> list[Path]:
    from affine import Affine

    from landcover.qa import encode_qa_pixel
    from landcover.synthetic import reflectance_to_dn, write_c2l2_scene

    params = {"size": size, "dates": dates, "seed": SEED, "version": 1}
    stamp = workdir / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return sorted(p for p in workdir.iterdir() if p.is_dir())
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    transform = Affine(30.0, 0.0, 300000.0, 0.0, -30.0, 5100000.0)
    rows, cols = np.indices((size, size), dtype=np.int32)
    fill = rows + cols < size // 8  # nodata corner, as at the edge of a real footprint
    land = {b: smooth(rng, size, 128) * 0.6 + smooth(rng, size, 16) * 0.4 for b in BANDS}
    for d in range(dates):
        date = dt.date(2021, 3, 1) + dt.timedelta(days=16 * d)
        season = 0.8 + 0.4 * np.sin(2 * np.pi * d / 23)
        cloudiness = smooth(rng, size, 256) * 0.7 + smooth(rng, size, 32) * 0.3
        level = np.quantile(cloudiness[::16, ::16], 1 - rng.uniform(0.05, 0.4))  # 5..40 % cloud
        cloud = cloudiness > level
        dilated = (cloudiness > level - 0.03) & ~cloud
        shadow = np.roll(cloud, (size // 40, size // 30), axis=(0, 1)) & ~cloud & ~dilated
        cirrus = smooth(rng, size, 64) > 0.85
        sr = {}
        for b in BANDS:
            refl = MEAN[b] * (0.5 + land[b]) * (season if b == "nir" else 1.0)
            refl = refl + rng.normal(0, 0.004, (size, size)).astype(np.float32)
            refl = np.where(cloud, 0.45 + 0.3 * cloudiness, np.where(shadow, refl * 0.4, refl))
            dn = reflectance_to_dn(refl)
            dn[fill] = 0
            sr[b] = dn
        qa_pixel = encode_qa_pixel(fill=fill, dilated_cloud=dilated, cirrus=cirrus, cloud=cloud,
                                   cloud_shadow=shadow, water=land["nir"] < 0.1)
        radsat = np.where(cloud & (cloudiness > level + 0.25), np.uint16(1 << 1), np.uint16(0))
        write_c2l2_scene(workdir, sensor="LC08", path=190, row=25, date=date, crs_epsg=EPSG,
                         transform=transform, sr=sr, qa_pixel=qa_pixel, qa_radsat=radsat)
        print(f"  wrote date {d + 1}/{dates} ({time.perf_counter() - t0:.0f} s)", flush=True)
    stamp.write_text(json.dumps(params))
    return sorted(p for p in workdir.iterdir() if p.is_dir())


# ---------------------------------------------------------------------------------- the two readers
def run_landcover(folders, chunk: int):
    import dask

    from landcover.config import load_config
    from landcover.scenes import find_scenes
    from landcover.stack import stack_scenes

    cfg = load_config(overrides=[f"scenes.chunk_size={chunk}"]).scenes
    stack = stack_scenes(find_scenes(folders), cfg)
    total, n_valid = dask.compute(stack.reflectance.sum(), stack.valid.sum())
    return float(total), int(n_valid)


def read_scene_plain(folder: Path):
    """One scene, the way one writes it by hand: whole bands, one at a time."""
    import rasterio

    from landcover.synthetic import SR_OFFSET, SR_SCALE

    def read(suffix):
        with rasterio.open(next(folder.glob(f"*_{suffix}.TIF"))) as src:
            return src.read(1)

    qa = read("QA_PIXEL")
    valid = ((qa & INVALID_BITS) == 0) & ((read("QA_RADSAT") & RADSAT_BITS) == 0)
    total = 0.0
    for n in range(2, 8):
        dn = read(f"SR_B{n}")
        valid &= (dn >= 7273) & (dn <= 43636)
        refl = dn.astype(np.float32) * np.float32(SR_SCALE) + np.float32(SR_OFFSET)
        refl[dn == 0] = np.nan
        total += float(np.nansum(refl))
    return total, int(valid.sum())


def run_plain(folders, threads: int = 1):
    if threads == 1:
        results = [read_scene_plain(f) for f in folders]
    else:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(read_scene_plain, folders))
    return sum(r[0] for r in results), sum(r[1] for r in results)


# -------------------------------------------------------------------------------------- harness
def best_time(fn, repeat: int):
    fn()  # warm-up: page cache, imports, GDAL drivers
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, result


def vm_hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited across fork+exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def child(args) -> None:
    """Subprocess for the memory figures: stack/compute (or the plain loop) and print its peak RSS."""
    import dask, rasterio, xarray, landcover.stack  # noqa: F401,E401  (imports in the baseline)
    folders = [Path(p) for p in args.child_folders]
    before = vm_hwm_mib()
    t0 = time.perf_counter()
    run_landcover(folders, args.chunk_size) if args.child == "landcover" else run_plain(folders)
    seconds = time.perf_counter() - t0
    peak = vm_hwm_mib()
    print(json.dumps({"peak_mib": peak, "imports_mib": before, "seconds": seconds}))


def peak_rss(mode: str, folders, chunk: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--chunk-size", str(chunk),
           "--child-folders", *map(str, folders)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine() -> str:
    import dask, rasterio, landcover  # noqa: E401

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    return (f"machine: nproc={os.cpu_count()}, CPU {cpu}, Python {sys.version.split()[0]}\n"
            f"versions: landcover {landcover.__version__}, rasterio {rasterio.__version__}, "
            f"GDAL {rasterio.__gdal_version__}, dask {dask.__version__}, numpy {np.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="scene width = height in 30 m pixels")
    ap.add_argument("--dates", type=int, default=16)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs after the warm-up (best of)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-stack"))
    ap.add_argument("--keep", action="store_true", help="keep the synthetic scenes afterwards")
    ap.add_argument("--child", choices=("landcover", "plain"), help=argparse.SUPPRESS)
    ap.add_argument("--child-folders", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    print(machine())
    print(f"scenes: {args.dates} dates of {args.size}x{args.size} px (30 m) in {args.workdir}")
    folders = make_scenes(args.workdir, args.size, args.dates)[: args.dates]
    n_small = min(4, len(folders))
    mb = len(folders) * FILES_PER_DATE * args.size ** 2 * 2 / 1e6
    disk = sum(f.stat().st_size for d in folders for f in d.glob("*.TIF")) / 1e6
    print(f"input: {mb:.0f} MB decoded ({disk:.0f} MB deflate on disk); timings after a warm-up "
          f"run, best of {args.repeat}, files in the page cache")

    variants = [("landcover (dask threads)", lambda: run_landcover(folders, args.chunk_size)),
                ("rasterio plain loop, 1 thread", lambda: run_plain(folders)),
                (f"rasterio, {os.cpu_count()} threads (scene each)",
                 lambda: run_plain(folders, os.cpu_count()))]
    speed, results = {}, {}
    for label, fn in variants:
        best, times, results[label] = best_time(fn, args.repeat)
        speed[label] = mb / best
        print(f"  {label:38s} {speed[label]:7.1f} MB/s  (runs: "
              f"{', '.join(f'{t:.2f}' for t in times)} s)", flush=True)
    (lc_sum, lc_n), (pl_sum, pl_n) = results[variants[0][0]], results[variants[1][0]]
    print(f"  check: sum of reflectance {lc_sum:.6g} vs {pl_sum:.6g}, valid pixels {lc_n} vs {pl_n}")

    mem = {n: peak_rss("landcover", folders[:n], args.chunk_size) for n in (n_small, len(folders))}
    plain = peak_rss("plain", folders[:n_small], args.chunk_size)
    for n, m in mem.items():
        print(f"  landcover {n:2d} dates: peak RSS {m['peak_mib']:.0f} MiB (after imports "
              f"{m['imports_mib']:.0f} MiB), {m['seconds']:.1f} s")
    print(f"  rasterio plain loop {n_small} dates: peak RSS {plain['peak_mib']:.0f} MiB "
          f"(holds one whole band + QA/mask at a time)")

    lc, p1, pt = (speed[v[0]] for v in variants)
    m4, m16 = mem[n_small]["peak_mib"], mem[len(folders)]["peak_mib"]
    rows = [("size (px, 30 m)", f"{args.size} x {args.size}"), ("dates", str(len(folders))),
            ("chunk size", str(args.chunk_size)), ("landcover MB/s", f"{lc:.1f}"),
            ("rasterio MB/s (1 thread)", f"{p1:.1f}"),
            ("ratio landcover / rasterio", f"{lc / p1:.2f}  (target >= 0.7)"),
            (f"rasterio MB/s ({os.cpu_count()} threads)", f"{pt:.1f}"),
            ("ratio landcover / rasterio threads", f"{lc / pt:.2f}"),
            (f"peak RSS {n_small} dates (MiB)", f"{m4:.0f}"),
            (f"peak RSS {len(folders)} dates (MiB)", f"{m16:.0f}"),
            (f"ratio {len(folders)}/{n_small} dates", f"{m16 / m4:.2f}  (target <= 1.3)"),
            (f"rasterio loop peak RSS {n_small} dates", f"{plain['peak_mib']:.0f}")]
    print("\n" + "\n".join(f"| {k:38s} | {v:24s} |" for k, v in rows))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
