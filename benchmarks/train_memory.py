"""Training memory per architecture: the measured peak against train's estimate.

    python benchmarks/train_memory.py [--dates 12 --size 30 --batch 8] [--json out.json]

Each architecture of the registry (the networks; the pixel classifiers need no batch) is built as
``landcover train`` builds it (default ``train.model`` settings), compiled with the masked loss,
and trained for 3 steps on random batches of ``--batch`` patches of ``--size`` px x ``--dates``
dates x 9 features, in a fresh process. The process's peak RSS growth over the steps (after the
model is built and one step traced) is the measured figure; ``landcover.network_memory.batch_memory`` is
the estimate. Prints both and their ratio per architecture.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
arch, t, s, b, f = sys.argv[1], *map(int, sys.argv[2:6])
from landcover.config import load_config
from landcover.runtime import import_keras
keras = import_keras()
from landcover.losses import MaskedLoss
from landcover.models import build_model, model_input_shape, takes_dates
from landcover.network_memory import batch_memory
import dataclasses
base0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
cfg = load_config(None, [f"train.model.architecture={arch}", f"train.batch_size={b}"])
spec = dataclasses.asdict(cfg.train.model)
model = build_model(spec, model_input_shape(spec, t, s, s, f), 5, [], 6)
model.compile(optimizer="adam", loss=MaskedLoss("ce", 5))
rng = np.random.default_rng(0)
x = rng.normal(size=(b, t, s, s, f)).astype(np.float32)
y = rng.integers(0, 5, (b, s, s)).astype(np.uint8)
w = np.ones((b, s, s), np.float32)
inputs = [x, np.tile(np.arange(t, dtype=np.float32) * 16, (b, 1))] if takes_dates(spec) else x
model.train_on_batch(inputs, y, sample_weight=w)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for _ in range(3):
    model.train_on_batch(inputs, y, sample_weight=w)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
est = batch_memory(cfg.train, (t, s, s, f), chunk=32, activations_only=True)
print(json.dumps({"architecture": arch, "measured_total": peak - base0,
                  "measured_growth": peak - base,
                  "estimate": est}))
"""


def main(argv=None) -> int:
    from landcover.models import architectures

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--size", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rows = []
    for arch in architectures():
        if getattr(arch, "pixel", False):
            continue
        out = subprocess.run([sys.executable, "-c", CHILD, arch.name, str(args.dates),
                              str(args.size), str(args.batch), "9"], capture_output=True,
                             text=True)
        if out.returncode:
            print(f"{arch.name}: failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        # the estimate counts a step's activations and gradients; the measured figure is the
        # process's peak growth from before the model was built (weights, optimizer, graph too)
        print(f"{r['architecture']:>14}: estimate {r['estimate'] / 2**20:8.0f} MiB, measured "
              f"{r['measured_total'] / 2**20:6.0f} MiB; ratio estimate / measured "
              f"{r['estimate'] / r['measured_total']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
