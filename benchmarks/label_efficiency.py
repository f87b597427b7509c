"""Label efficiency: a random forest, the default network from scratch and the same network
started from an encoder pretrained on the scenes without labels, as the labels shrink.

    python benchmarks/label_efficiency.py [--set-name maipo --set-name nc] [--share 1 --share 0.3
        --share 0.1 --share 0.03] [--seed 0 --seed 1 --seed 2] [--model random_forest
        --model scratch --model pretrained] [--workdir DIR] [--json OUT.json] [--plot OUT.png]
        [--set KEY=VALUE ...]

For each set (``../shared/data/real``): the encoder is pretrained once on the set's scenes
(``landcover pretrain`` with the defaults; every valid pixel series of the stack, no label), then
for each share and seed a label-poor version is prepared (maipo: a seeded draw of that share of its
training fields, the 80 test fields kept; nc: that share of the west half's labelled pixels by
16 px blocks, the east half tests; ``benchmarks/real_data.py``'s cases) and each model is trained
on it with the defaults but its architecture:

``random_forest``  ``train.model.architecture=random_forest`` (LightGBM's random forest)
``scratch``        ``train.model.architecture=convlstm`` (the network ``auto`` trains)
``pretrained``     the same with ``train.pretrain=ENCODER`` (the defaults: ``train.pretrain_mode``
                   frozen, the encoder kept, and ``train.model.head_units`` 64: a small head)
``finetune``       the same with ``train.pretrain_mode=finetune`` (every weight trained)
``staged``         the same with ``train.pretrain_mode=staged`` (the head on the frozen encoder,
                   then every weight at a tenth of the rate)
``pretrained_linear``  ``pretrained`` with the logits straight from the frozen encoder
``scratch_head64``     ``scratch`` with a hidden layer of 64 units before the logits
``auto_pretrained``    ``train.model.architecture: auto`` (the default) with ``train.pretrain``: the
                       pretrained network one more candidate

Prints the test OA and macro F1 of every run with their 95 % intervals over the test groups and
the number of test pixels, then per set, share and model the mean over the seeds; writes every
result to ``--json`` as it goes (a rerun with the same file skips what it holds) and the plot of
macro F1 against labelled training pixels to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data

MODELS = {"random_forest": ["train.model.architecture=random_forest"],
          "scratch": ["train.model.architecture=convlstm"],
          "pretrained": ["train.model.architecture=convlstm", "train.pretrain={encoder}"],
          "finetune": ["train.model.architecture=convlstm", "train.pretrain={encoder}",
                       "train.pretrain_mode=finetune"],
          "staged": ["train.model.architecture=convlstm", "train.pretrain={encoder}",
                     "train.pretrain_mode=staged"],
          "pretrained_linear": ["train.model.architecture=convlstm", "train.pretrain={encoder}",
                                "train.model.head_units=0"],
          "scratch_head64": ["train.model.architecture=convlstm", "train.model.head_units=64"],
          "auto_pretrained": ["train.pretrain={encoder}"]}


def make_set(name: str, share: float, seed: int, work: Path):
    if name == "maipo":
        if share >= 1:
            return real_data.maipo_case(work)
        return real_data.maipo_subset(work, share, seed)
    if name == "nc":
        if share >= 1:
            return real_data.nc_case(work)
        return real_data.nc_subset(work, share, seed=seed)
    raise SystemExit(f"--set-name: unknown set {name!r}; maipo or nc")


def encoder_for(name: str, work: Path, extra: list[str]) -> tuple[Path, dict]:
    from landcover.config import load_config
    from landcover.encoder.folder import read_encoder
    from landcover.pretrain.run import pretrain
    from landcover.scenes import LocalScenes

    out = work / f"{name}_encoder"
    if (out / "encoder.json").is_file():
        return out, read_encoder(out)
    scenes, _, config, settings = make_set(name, 1.0, 0, work)
    cfg = load_config(config, settings + extra)
    record = pretrain(LocalScenes(tuple(scenes), cfg.scenes.profile), out, cfg, overwrite=True,
                      progress=True)
    return out, record


def run_one(name: str, share: float, seed: int, model: str, encoder: Path, work: Path,
            extra: list[str]) -> dict:
    from landcover.bundle import read_metadata
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes
    from landcover.train import train

    scenes, labels, config, settings = make_set(name, share, seed, work)
    dataset = work / f"{name}_{share:g}_{seed}.zarr"
    data_cfg = load_config(config, settings + extra)
    if not (dataset / ".zattrs").exists() and not (dataset / "zarr.json").exists():
        prepare(LocalScenes(tuple(scenes), data_cfg.scenes.profile), labels, dataset, data_cfg,
                progress=False, overwrite=True)
    sets = [s.format(encoder=encoder) for s in MODELS[model]]
    cfg = load_config(config, settings + [f"train.seed={seed}", *sets] + extra)
    out = work / f"{name}_{share:g}_{seed}_{model}"
    t0 = time.monotonic()
    train(dataset, out, cfg, progress=False, overwrite=True)
    meta = read_metadata(out)
    test = meta["metrics"]["test"]
    from landcover.dataset import open_dataset

    ds = open_dataset(dataset)
    train_px = sum(c.get("pixels", {}).get("train", 0) for c in ds.classes)
    return {"set": name, "share": share, "seed": seed, "model": model,
            "train_pixels": int(train_px), "seconds": round(time.monotonic() - t0, 1),
            "overall_accuracy": test.get("overall_accuracy"), "macro_f1": test.get("macro_f1"),
            "intervals": test.get("intervals", {}), "test_pixels": test.get("pixels"),
            "test_groups": (test.get("groups") or test.get("intervals", {}).get("groups")),
            "epochs": meta.get("training", {}).get("epochs_run"),
            "kept": str((meta.get("model") or {}).get("architecture"))
            + ("+pretrained" if (meta.get("model") or {}).get("pretrained") else ""),
            "why": (meta.get("model") or {}).get("why")}


def _ci(r, key):
    ci = (r.get("intervals") or {}).get(key)
    v = r.get(key)
    if v is None:
        return "-"
    return f"{v:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def summary(results: list[dict]) -> str:
    lines = [("| set | share | seed | model | training px | test OA (95 % CI) | test macro F1 "
              "(95 % CI) | test px | seconds |"), "|---|---:|---:|---|---:|---|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r['set']} | {r['share']:g} | {r['seed']} | {r['model']} | "
                     f"{r['train_pixels']:,d} | {_ci(r, 'overall_accuracy')} | "
                     f"{_ci(r, 'macro_f1')} | {r.get('test_pixels') or '-'} | {r['seconds']} |")
    lines += ["", "Mean over seeds (macro F1, OA; min-max over seeds):", "",
              "| set | share | model | seeds | training px | macro F1 | OA |",
              "|---|---:|---|---:|---:|---|---|"]
    keys = sorted({(r["set"], r["share"], r["model"]) for r in results},
                  key=lambda k: (k[0], -k[1], list(MODELS).index(k[2])))
    for s, sh, m in keys:
        rs = [r for r in results if (r["set"], r["share"], r["model"]) == (s, sh, m)]
        f1 = np.array([r["macro_f1"] for r in rs], float)
        oa = np.array([r["overall_accuracy"] for r in rs], float)
        px = int(np.mean([r["train_pixels"] for r in rs]))
        lines.append(f"| {s} | {sh:g} | {m} | {len(rs)} | {px:,d} | {f1.mean():.3f} "
                     f"({f1.min():.3f}-{f1.max():.3f}) | {oa.mean():.3f} "
                     f"({oa.min():.3f}-{oa.max():.3f}) |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from landcover.encoder.folder import FINETUNE_FROM_PIXELS

    sets = sorted({r["set"] for r in results})
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4.2), squeeze=False)
    for ax, s in zip(axes[0], sets):
        for m in MODELS:
            rs = [r for r in results if r["set"] == s and r["model"] == m]
            if not rs:
                continue
            shares = sorted({r["share"] for r in rs})
            px = [np.mean([r["train_pixels"] for r in rs if r["share"] == sh]) for sh in shares]
            f1 = [np.mean([r["macro_f1"] for r in rs if r["share"] == sh]) for sh in shares]
            lo = [min(r["macro_f1"] for r in rs if r["share"] == sh) for sh in shares]
            hi = [max(r["macro_f1"] for r in rs if r["share"] == sh) for sh in shares]
            ax.plot(px, f1, marker="o", label=m)
            ax.fill_between(px, lo, hi, alpha=0.15)
        ax.axvline(FINETUNE_FROM_PIXELS, color="grey", linestyle=":", linewidth=1)
        ax.annotate("pretrain_mode auto:\nfrozen | finetune", (FINETUNE_FROM_PIXELS, 0.02),
                    xycoords=("data", "axes fraction"), ha="center", fontsize=8, color="grey")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("labelled training pixels")
        ax.set_ylabel("test macro F1 (mean over seeds; band: min-max)")
        ax.set_title(s)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set-name", action="append", dest="sets")
    ap.add_argument("--share", action="append", type=float)
    ap.add_argument("--seed", action="append", type=int)
    ap.add_argument("--model", action="append", choices=list(MODELS))
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--set", action="append", default=[], dest="extra")
    args = ap.parse_args(argv)
    sets = args.sets or ["maipo", "nc"]
    shares = args.share or [1.0, 0.3, 0.1, 0.03]
    seeds = args.seed or [0, 1, 2]
    models = args.model or ["random_forest", "scratch", "pretrained"]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="label_efficiency_"))
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.json.read_text())["results"] if args.json and args.json.is_file() \
        else []
    done = {(r["set"], r["share"], r["seed"], r["model"]) for r in results}
    encoders = {}
    for s in sets:
        if any("{encoder}" in a for m in models for a in MODELS[m]):
            t0 = time.monotonic()
            path, record = encoder_for(s, work, args.extra)
            t = record["training"]
            encoders[s] = {"path": str(path), "seconds": t["seconds"], "epochs": t["epochs_done"],
                           "steps": t["steps"], "windows": record["sample"]["windows"],
                           "final_loss": t["final_loss"],
                           "mean_predictor_loss": t["mean_predictor_loss"],
                           "wall_seconds_this_run": round(time.monotonic() - t0, 1)}
            print(f"{s}: encoder {encoders[s]}", flush=True)
        for share in shares:
            for seed in seeds:
                for m in models:
                    if (s, share, seed, m) in done:
                        continue
                    r = run_one(s, share, seed, m, Path(encoders.get(s, {}).get("path", "")),
                                work, args.extra)
                    results.append(r)
                    print(f"{s} {share:g} seed {seed} {m}: OA {_ci(r, 'overall_accuracy')}, "
                          f"macro F1 {_ci(r, 'macro_f1')}, {r['train_pixels']} training px, "
                          f"{r['seconds']} s", flush=True)
                    if args.json:
                        args.json.write_text(json.dumps({"results": results,
                                                         "encoders": encoders}, indent=1))
    print(summary(results))
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
