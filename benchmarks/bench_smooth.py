"""Benchmark: Bayesian smoothing's pixels per second next to classify's, in one run.

Printed:

1. **The step alone**: :class:`landcover.postprocess.BayesSmooth` (``classify.smooth`` defaults:
   9 x 9 window, neigh_fraction 0.5) on seeded random probabilities of ``--size`` x ``--size``
   pixels and ``--classes`` classes, one block -> pixels/s.
2. **In classify** (with ``--model``, and ``--scenes``, default ``data_samples/``): wall time of
   ``landcover.classify.classify`` on the scenes without and with ``classify.smooth.enabled``
   (probabilities written in both; after an untimed warm-up run that loads TensorFlow and the
   model) -> pixels/s of each, and the smoothing's share of the run.
3. **landcover smooth** on the probability file of run 2 -> pixels/s, file to file.

Run:  python benchmarks/bench_smooth.py [--size 1024] [--classes 7] [--model demo/model]
          [--scenes data_samples/] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_step(size: int, classes: int) -> dict:
    from landcover.postprocess import BayesSmooth

    rng = np.random.default_rng(0)
    prob = rng.dirichlet(np.ones(classes), size=(size, size)).astype(np.float32)
    observed = np.ones((size, size), bool)
    step = BayesSmooth()
    t0 = time.perf_counter()
    step.apply(prob, observed)
    seconds = time.perf_counter() - t0
    return {"pixels": size * size, "classes": classes, "seconds": round(seconds, 3),
            "pixels_per_second": round(size * size / seconds)}


def bench_classify(model: str, scenes: str, folder: Path) -> dict:
    from landcover import classify as lc
    from landcover.smooth import smooth

    out = {}
    runs = (("warm-up", []), ("classify", []),
            ("classify_smooth", ["classify.smooth.enabled=true"]))
    for name, sets in runs:  # the untimed first run loads TensorFlow and the model
        meta, cfg = lc.resolve_config(model, None, sets)
        t0 = time.perf_counter()
        s = lc.classify(lc.model_scenes([scenes], meta, cfg), model, folder / f"{name}.tif", cfg,
                        meta=meta, probabilities=True, overwrite=True, progress=False)
        seconds = time.perf_counter() - t0
        px = s["grid"]["width"] * s["grid"]["height"]
        out[name] = {"pixels": px, "seconds": round(seconds, 2),
                     "pixels_per_second": round(px / seconds)}
    t0 = time.perf_counter()
    s = smooth(folder / "classify_probabilities.tif", folder / "smoothed.tif", overwrite=True)
    seconds = time.perf_counter() - t0
    px = s["grid"]["width"] * s["grid"]["height"]
    out["landcover_smooth"] = {"pixels": px, "seconds": round(seconds, 2),
                               "pixels_per_second": round(px / seconds)}
    extra = out["classify_smooth"]["seconds"] - out["classify"]["seconds"]
    out["smoothing_share_of_classify"] = round(extra / out["classify_smooth"]["seconds"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--model", default=None, help="model bundle for the classify runs")
    parser.add_argument("--scenes", default="data_samples")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    result = {"step": bench_step(args.size, args.classes)}
    print(f"BayesSmooth alone: {result['step']['pixels_per_second']:,d} px/s "
          f"({args.size}^2 px, {args.classes} classes, {result['step']['seconds']} s)")
    if args.model:
        with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
            result.update(bench_classify(args.model, args.scenes, Path(folder)))
        for key in ("classify", "classify_smooth", "landcover_smooth"):
            r = result[key]
            print(f"{key:>17}: {r['pixels_per_second']:>10,d} px/s ({r['pixels']:,d} px, "
                  f"{r['seconds']} s)")
        print(f"smoothing's share of classify --smooth: "
              f"{100 * result['smoothing_share_of_classify']:.0f}%")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
