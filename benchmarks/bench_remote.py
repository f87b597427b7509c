"""Benchmark: a scene stack read from disk and through HTTP (STAC items, /vsicurl/), side by side.

Synthetic Landsat 8 C2 L2 scenes (tiled 256x256 DEFLATE GeoTIFFs written by
``landcover.synthetic.write_c2l2_scene``) are written once into ``--workdir``. The same scenes are
described by a STAC ItemCollection whose asset hrefs point to a local Range-capable HTTP server
(``landcover.devserver``; on 127.0.0.1, so this measures the HTTP/GDAL overhead, not a network).

For each source the stack (six bands + validity from QA) is computed in a streaming way
(``dask.compute(reflectance.sum(), valid.sum())``, threaded scheduler), once as a warm-up and
then best of ``--repeat`` (one timed pass for HTTP). Printed: MB/s (decoded input bytes: dates x 8
files x size^2 x 2 B, MB = 10^6 B) of both, their ratio, and the HTTP requests and bytes served
per chunk and file.

Run:  python benchmarks/bench_remote.py [--size 2048] [--dates 4] [--chunk-size 1024]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from pathlib import Path

import numpy as np


def write_scenes(workdir: Path, size: int, dates: int) -> list[Path]:
    from landcover.synthetic import write_c2l2_scene

    folders = sorted(p for p in workdir.glob("LC08_*") if p.is_dir())
    if len(folders) == dates:
        return folders
    from affine import Affine

    rng = np.random.default_rng(0)
    transform = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0)
    out = []
    for t in range(dates):
        sr = {b: rng.integers(7273, 43636, (size, size), dtype=np.uint16)
              for b in ("blue", "green", "red", "nir", "swir1", "swir2")}
        qa = np.full((size, size), 21824, np.uint16)  # clear, low confidences
        out.append(write_c2l2_scene(workdir, sensor="LC08", path=193, row=26,
                                    date=dt.date(2024, 3, 1) + dt.timedelta(days=16 * t),
                                    crs_epsg=32632, transform=transform, sr=sr, qa_pixel=qa,
                                    qa_radsat=np.zeros((size, size), np.uint16)))
    return out


def item_collection(folders: list[Path], base: str, size: int) -> dict:
    """A minimal STAC ItemCollection of the folders, asset hrefs under ``base``."""
    import pystac

    items = []
    for folder in folders:
        date = dt.datetime.strptime(folder.name.split("_")[3], "%Y%m%d")
        item = pystac.Item(folder.name, None, None, date, {
            "proj:code": "EPSG:32632", "proj:shape": [size, size],
            "proj:transform": [30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0]},
            collection="landsat-c2-l2")
        for f in sorted(folder.iterdir()):
            roles = ["data", "reflectance"] if "_SR_B" in f.name else ["metadata"]
            item.add_asset(f.stem.split("_")[-1].lower() if "_SR_B" in f.name else f.name,
                           pystac.Asset(f"{base}/{folder.name}/{f.name}", roles=roles))
        items.append(item)
    return pystac.ItemCollection(items).to_dict()


def run(source, chunk: int, repeat: int) -> float:
    import dask

    from landcover.config import load_config
    from landcover.scenes import as_scenes
    from landcover.stack import stack_scenes

    cfg = load_config(None, [f"scenes.chunk_size={chunk}"])
    best = float("inf")
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        stack = stack_scenes(as_scenes(source), cfg.scenes)
        dask.compute(stack.reflectance.sum(), stack.valid.sum())
        if i:  # the first run warms the page cache and GDAL
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--dates", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-remote"))
    args = ap.parse_args()

    from landcover.devserver import serve
    from landcover.scenes import LocalScenes
    from landcover.stac import StacScenes

    args.workdir.mkdir(parents=True, exist_ok=True)
    folders = write_scenes(args.workdir, args.size, args.dates)
    served, server, base = serve(args.workdir)
    (args.workdir / "items.json").write_text(json.dumps(item_collection(folders, base,
                                                                        args.size)))
    mb = args.dates * 8 * args.size ** 2 * 2 / 1e6
    disk = run(LocalScenes(tuple(map(str, folders))), args.chunk_size, args.repeat)
    served.requests.clear()
    served.bytes = 0
    http = run(StacScenes((f"{base}/items.json",)), args.chunk_size, 1)
    chunks = args.dates * 8 * math.ceil(args.size / args.chunk_size) ** 2
    gets = sum(1 for r in served.requests if r.startswith("GET") and "items.json" not in r)
    on_disk = sum(f.stat().st_size for d in folders for f in d.iterdir() if f.suffix == ".TIF")
    server.shutdown()
    print(f"{args.dates} dates of {args.size}x{args.size} px, chunks of {args.chunk_size} px, "
          f"{mb:.0f} MB decoded, {on_disk / 1e6:.0f} MB of GeoTIFFs")
    print(f"disk:  {disk:6.2f} s  {mb / disk:7.1f} MB/s")
    print(f"http:  {http:6.2f} s  {mb / http:7.1f} MB/s  ({gets} GET requests, "
          f"{served.bytes / 1e6:.0f} MB served over the warm-up and the timed pass)")
    print(f"HTTP requests per chunk and file and pass: {gets / chunks / 2:.2f}; bytes served / "
          f"bytes on disk per pass: {served.bytes / on_disk / 2:.2f}")
    print(f"ratio http / disk (MB/s): {disk / http:.2f}")


if __name__ == "__main__":
    main()
