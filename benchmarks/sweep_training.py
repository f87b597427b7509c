"""Training settings side by side on one prepared dataset: the measurements behind the defaults.

    python benchmarks/sweep_training.py DATASET.zarr [--set K=V ...] --variant "name: k=v, k=v" ...

Each variant trains a bundle (``--set`` applies to all, the variant's settings on top) and prints
one row: test OA, macro F1, lowest class F1, the median top-class probability on labelled test pixels,
the training-split OA gap between training and inference mode, epochs and seconds. The random-forest
baseline is fitted once (first variant) and printed last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--set", dest="common", action="append", default=[])
    ap.add_argument("--variant", action="append", required=True,
                    help='"name: key=value, key=value" (keys under train., e.g. model.norm=layer)')
    ap.add_argument("--split", default="test")
    args = ap.parse_args(argv)

    from landcover.config import load_config
    from landcover.train import train

    rows, baseline = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.variant):
            name, _, body = spec.partition(":")
            sets = [f"train.{kv.strip()}" for kv in body.split(",") if kv.strip()]
            if i > 0:
                sets.append("train.baseline=none")
            cfg = load_config(None, args.common + sets)
            out = Path(tmp) / f"m{i}"
            t0 = time.monotonic()
            s = train(args.dataset, out, cfg, progress=False)
            sec = time.monotonic() - t0
            if s.get("baseline"):
                baseline = s["baseline"]
            r = s["metrics"].get(args.split) or s["metrics"]["validation"]
            f1 = [c["f1"] for c in r["per_class"].values() if c["f1"] is not None and c["support"]]
            rows.append((name.strip(), r["overall_accuracy"], r["macro_f1"], min(f1),
                         r.get("median_top_probability", float("nan")),
                         s["mode_check"]["gap"], s["epochs_run"], sec))
            print(f"{rows[-1][0]:<28} OA {rows[-1][1]:.3f}  macroF1 {rows[-1][2]:.3f}  "
                  f"minF1 {rows[-1][3]:.3f}  p50(pmax) {rows[-1][4]:.3f}  gap {rows[-1][5]:+.3f}  "
                  f"epochs {rows[-1][6]}  {rows[-1][7]:.0f} s", file=sys.stderr, flush=True)
    print(f"\n{args.split} split of {args.dataset}; common settings: {' '.join(args.common) or '-'}")
    print("| variant | OA | macro F1 | lowest class F1 | median top p | mode gap | epochs | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:+.3f} | "
              f"{r[6]} | {r[7]:.0f} |")
    if baseline and baseline.get(args.split):
        b = baseline[args.split]
        f1 = [c["f1"] for c in b["per_class"].values() if c["f1"] is not None and c["support"]]
        print(f"| random forest (100 trees) | {b['overall_accuracy']:.3f} | {b['macro_f1']:.3f} | "
              f"{min(f1):.3f} | - | - | - | {baseline['seconds']:.0f} |")
    print(json.dumps({"rows": rows}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
