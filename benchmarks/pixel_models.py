"""Pixel classifiers on prepared datasets: LightGBM's random forest and gradient boosting against
scikit-learn's RandomForestClassifier (the ``train.baseline``), for each feature set.

    python benchmarks/pixel_models.py DATASET.zarr [DATASET.zarr ...] [--groups raw,bands,...]
                                      [--models sk_rf,lgb_rf,lgb_gb] [--weighted] [--json out]

Prepare the datasets once, e.g. with ``benchmarks/real_data.py``'s maipo and nc cases (the
``WORKDIR/maipo.zarr`` it writes). Every model is fitted on the same training pixels (all usable,
de-duplicated ones, as ``landcover train`` does for a pixel architecture; sklearn at most 50,000
stratified ones like the baseline unless ``--sk-all``) and scored on all usable pixels of the
test split (or ``--split``).
Feature sets (``--groups``): ``raw`` = the inputs flattened over (time, feature), what the
baseline uses; otherwise ``+``-joined groups of :func:`landcover.pixel_model.pixel_features` (``bands``,
``indices``, ``valid``, ``percentiles``). Prints one line per (dataset, features, model): test OA,
macro F1, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_GROUPS = ["raw", "bands", "bands+indices", "bands+indices+percentiles",
                  "bands+indices+percentiles+valid"]


def table(ds, split, groups, max_pixels=None, seed=0, keep_rare=True):
    from landcover.pixel import split_rows
    from landcover.pixel_model import pixel_features

    xs, ys, ws = [], [], []
    for x, y, w in split_rows(ds, split, max_pixels=max_pixels, seed=seed, keep_rare=keep_rare):
        xs.append(x.reshape(len(x), -1) if groups == "raw" else
                  pixel_features(x, ds.attrs, groups.split("+")))
        ys.append(y)
        ws.append(w)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def score(y, pred, ds):
    from landcover.scores import confusion, scores

    s = scores(confusion(y, pred, ds.num_classes, ignore_label=ds.ignore_label), ds.class_names)
    return round(s["overall_accuracy"], 4), round(s["macro_f1"], 4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--groups", default=",".join(DEFAULT_GROUPS))
    ap.add_argument("--models", default="sk_rf,lgb_rf,lgb_gb")
    ap.add_argument("--weighted", action="store_true", help="stored per-pixel sample weights")
    ap.add_argument("--sk-all", action="store_true", help="sklearn on all training pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--params", default="{}", help="JSON LightGBM parameters over the defaults")
    ap.add_argument("--split", default="test", help="the split scored (validation: gradient "
                    "boosting stops early on it, so its figures there are optimistic)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from sklearn.ensemble import RandomForestClassifier

    from landcover.dataset import open_dataset
    from landcover.pixel_model import fit_pixel_classifier

    extra = json.loads(args.params)
    rows = []
    for path in args.datasets:
        ds = open_dataset(path)
        name = Path(path).stem
        for groups in args.groups.split(","):
            X, y, w = table(ds, "train", groups, seed=args.seed)
            Xt, yt, _ = table(ds, args.split, groups, seed=args.seed, keep_rare=False)
            val = table(ds, "validation", groups, seed=args.seed, keep_rare=False) \
                if ds.split_size("validation") else None
            weights = w if args.weighted else None
            for model in args.models.split(","):
                t0 = time.perf_counter()
                if model == "sk_rf":
                    Xs, ys = X, y
                    if not args.sk_all:
                        Xs, ys, _ = table(ds, "train", groups, max_pixels=50_000, seed=args.seed)
                    rf = RandomForestClassifier(n_estimators=100, random_state=args.seed,
                                                n_jobs=-1)
                    rf.fit(Xs, ys, sample_weight=None if weights is None else
                           (w if args.sk_all else None))
                    pred = rf.predict(Xt)
                else:
                    kind = "random_forest" if model == "lgb_rf" else "gradient_boosting"
                    vset = None if val is None else (val[0], val[1],
                                                     val[2] if args.weighted else None)
                    m = fit_pixel_classifier(kind, X, y, weights, seed=args.seed,
                                             num_classes=ds.num_classes, validation=vset,
                                             params=extra)
                    pred = m.predict(Xt)
                seconds = round(time.perf_counter() - t0, 1)
                oa, f1 = score(yt, pred, ds)
                row = {"dataset": name, "split": args.split, "features": groups,
                       "P": X.shape[1], "model": model,
                       "train_pixels": len(y), "test_pixels": len(yt), "oa": oa,
                       "macro_f1": f1, "seconds": seconds}
                rows.append(row)
                print(f"{name:8s} {args.split:10s} {groups:34s} P={X.shape[1]:4d} {model:7s} "
                      f"OA {oa:.4f} "
                      f"macro F1 {f1:.4f} {seconds:6.1f} s (train {len(y)}, test {len(yt)})",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
