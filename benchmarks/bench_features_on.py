"""Benchmark: ``classify.features_on`` host against model, end to end, side by side in one run.

``classify`` of bench_classify's synthetic Landsat 8 scene (``--size`` px square, ``--dates``
dates, the default network with seeded weights) in fresh processes, once with the features made
on the host (``classify.features_on=host``: float32 features built in NumPy and sent to the
network) and once with them made inside the network (``model``, auto's choice: the digital
numbers and validity sent), alternately in ABBA order (host, model, model, host) ``--cycles``
times, so that the machine's drift between runs falls on both alike. Printed: every run's
seconds, CPU seconds (all threads) and peak RSS, the medians, and the ratio model / host of the
seconds of each pair run side by side (and its median); whether the two maps are the same. With
``--json``, one JSON object follows.

Run:  python benchmarks/bench_features_on.py [--size 2048] [--dates 12] [--cycles 4] [--json]
          [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_classify import make_bundle, run_child, scenes_of
from bench_stack import make_scenes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--cycles", type=int, default=4, help="ABBA cycles (2 runs of each a cycle)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/landcover-bench-classify"))
    ap.add_argument("--json", action="store_true", help="end with one JSON object of the figures")
    args = ap.parse_args()
    folder = args.workdir / f"s{args.size}_t{args.dates}"
    make_scenes(folder, args.size, args.dates)
    model = make_bundle(args.workdir / f"model_t{args.dates}", scenes_of(folder))
    out = args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"host": [], "model": []}
    for _ in range(max(1, args.cycles)):
        for where in ("host", "model", "model", "host"):
            r = run_child("landcover", folder, model, out / f"features_on_{where}.tif",
                          f"classify.features_on={where}")
            assert r["features_on"] == where, r
            runs[where].append(r)
            print(f"features on the {where:<5}: {r['seconds']:.1f} s, CPU {r['cpu_seconds']:.1f} "
                  f"s, peak {r['peak_mib']:,.0f} MiB", flush=True)
    pairs = [m["seconds"] / h["seconds"] for h, m in zip(runs["host"], runs["model"])]
    summary = {where: {"median_s": statistics.median(r["seconds"] for r in rs),
                       "fastest_s": min(r["seconds"] for r in rs),
                       "median_cpu_s": statistics.median(r["cpu_seconds"] for r in rs),
                       "median_peak_mib": statistics.median(r["peak_mib"] for r in rs)}
               for where, rs in runs.items()}
    import rasterio

    with rasterio.open(out / "features_on_host.tif") as a, \
            rasterio.open(out / "features_on_model.tif") as b:
        same = bool((a.read(1) == b.read(1)).all())
    print(f"\n{args.size}^2 px x {args.dates} dates, {len(runs['host'])} runs each (ABBA), "
          f"{runs['host'][0]['precision']}")
    print("| features on | median s | fastest s | median CPU s | median peak MiB |\n"
          "|---|---:|---:|---:|---:|")
    for where, f in summary.items():
        print(f"| {where} | {f['median_s']:.1f} | {f['fastest_s']:.1f} | {f['median_cpu_s']:.1f} | "
              f"{f['median_peak_mib']:,.0f} |")
    print(f"\nmodel / host seconds, pairs run side by side: "
          f"{', '.join(f'{p:.3f}' for p in pairs)} (median {statistics.median(pairs):.3f}); "
          f"the maps are {'the same' if same else 'DIFFERENT'}")
    if args.json:
        print(json.dumps({"size": args.size, "dates": args.dates, **summary,
                          "model_over_host_pairs": [round(p, 3) for p in pairs],
                          "model_over_host_median_pair": round(statistics.median(pairs), 3),
                          "maps_equal": same,
                          "seconds": {k: [round(r["seconds"], 2) for r in v]
                                      for k, v in runs.items()}}))


if __name__ == "__main__":
    main()
