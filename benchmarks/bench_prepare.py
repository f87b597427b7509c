"""Benchmark: ``landcover prepare`` on synthetic 12-date stacks of growing size.

For each size (default 512^2, 1024^2, 2048^2 px, 12 dates) a fresh subprocess runs
``landcover.prepare.prepare`` (default threaded scheduler, default config but 60 px split blocks)
on full-resolution Landsat 8 C2 L2 scenes written by ``bench_stack.make_scenes`` (seeded reflectance,
clouds, shadows, cirrus, saturation, a fill corner) with a dense label raster (5 classes, 10 %
unlabelled), so nearly every 30x30 window is cut. Printed per size:

* throughput: input MB/s = decoded input bytes (dates x 8 files x size^2 x 2 bytes, MB = 10^6 B)
  / wall seconds of the whole prepare (labels, extraction, statistics, writing), and patches/s;
* peak memory: peak RSS (``VmHWM``) of the subprocess, and its ratio to the smallest size
  (target: flat within 1.5x);
* the same for a naive baseline in the same run: the whole stack loaded into memory with
  ``stack.compute()`` and windows cut from it with numpy (what a user writes by hand), to show the
  memory growth that tiling avoids.

Run:  python benchmarks/bench_prepare.py [--sizes 512 1024 2048] [--dates 12] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_stack import FILES_PER_DATE, make_scenes, smooth  # noqa: E402


def write_labels(folder: Path, size: int) -> Path:
    import rasterio
    from affine import Affine

    path = folder / "labels.tif"
    if path.exists():
        return path
    rng = np.random.default_rng(7)
    field = smooth(rng, size, 64)
    codes = (np.digitize(field, np.quantile(field, [0.2, 0.4, 0.6, 0.8])) + 1).astype(np.uint8)
    codes[rng.random((size, size)) < 0.1] = 0
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="uint8", crs="EPSG:32633", nodata=0, tiled=True, compress="deflate",
                       transform=Affine(30.0, 0.0, 300000.0, 0.0, -30.0, 5100000.0)) as dst:
        dst.write(codes, 1)
    return path


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, folder: Path, out: Path) -> None:
    """Run one job in this (fresh) process and print a JSON line of figures."""
    from landcover.config import load_config

    cfg = load_config(None, ["prepare.split.block_size=60"])
    scenes = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("LC08"))
    labels = folder / "labels.tif"
    t0 = time.perf_counter()
    if mode == "landcover":
        from landcover.prepare import prepare
        from landcover.scenes import LocalScenes

        source = LocalScenes(tuple(str(s) for s in scenes), cfg.scenes.profile)
        summary = prepare(source, str(labels), out, cfg, overwrite=True, progress=False)
        patches = summary["patches"]
    else:  # naive: whole stack in memory, numpy windows
        import rasterio

        from landcover.scenes import find_scenes
        from landcover.stack import stack_scenes

        stack = stack_scenes(find_scenes(scenes), cfg.scenes)
        refl = stack.reflectance.values  # (T, B, H, W), the whole stack
        valid = stack.valid.values
        with rasterio.open(labels) as src:
            lab = src.read(1)
        s = 30
        kept = []
        for r in range(0, lab.shape[0] - s + 1, s):
            for c in range(0, lab.shape[1] - s + 1, s):
                if (lab[r:r + s, c:c + s] > 0).mean() >= 0.1:
                    x = np.where(valid[:, None, r:r + s, c:c + s], refl[:, :, r:r + s, c:c + s], 0)
                    kept.append(x)
        patches = len(kept)
        np.save(out.with_suffix(".npy"), np.stack(kept))
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "patches": patches, "peak_mib": peak_rss_mib()}))


def run_child(mode: str, folder: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(out)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-prepare"))
    ap.add_argument("--child", nargs=3, metavar=("MODE", "FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return

    import platform

    print(f"# bench_prepare: {args.dates} dates, sizes {args.sizes}; {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    rows = []
    for size in args.sizes:
        folder = args.workdir / f"s{size}"
        print(f"preparing synthetic scenes {size}x{size} x {args.dates} dates in {folder}",
              flush=True)
        make_scenes(folder, size, args.dates)
        write_labels(folder, size)
        mb = args.dates * FILES_PER_DATE * size * size * 2 / 1e6
        lc = run_child("landcover", folder, args.workdir / f"out{size}.zarr")
        naive = run_child("naive", folder, args.workdir / f"naive{size}")
        rows.append((size, mb, lc, naive))
        print(f"  {size}: landcover {lc['seconds']:.1f} s, {lc['peak_mib']:.0f} MiB; naive "
              f"{naive['seconds']:.1f} s, {naive['peak_mib']:.0f} MiB", flush=True)

    base_lc, base_naive = rows[0][2]["peak_mib"], rows[0][3]["peak_mib"]
    print()
    print("| size | input MB | patches | landcover MB/s | patches/s | peak MiB | peak / smallest "
          "| naive MB/s | naive peak MiB | naive peak / smallest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, mb, lc, naive in rows:
        print(f"| {size}^2 | {mb:.0f} | {lc['patches']} | {mb / lc['seconds']:.1f} | "
              f"{lc['patches'] / lc['seconds']:.0f} | {lc['peak_mib']:.0f} | "
              f"{lc['peak_mib'] / base_lc:.2f} | {mb / naive['seconds']:.1f} | "
              f"{naive['peak_mib']:.0f} | {naive['peak_mib'] / base_naive:.2f} |")
    worst = max(r[2]["peak_mib"] for r in rows) / base_lc
    print(f"\nlandcover peak memory, largest / smallest size: {worst:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
