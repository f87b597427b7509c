"""What training writes into a bundle: the ``bundle.json`` record of any model kind
(:func:`bundle_record`, read back as :class:`~landcover.bundle.meta.BundleMeta`), and a network's
whole bundle folder (:func:`write_network_bundle`: model, config, history, plots, reports).

A pixel classifier's bundle (:mod:`landcover.pixel`) takes the same record, with its own
``output.kind``, ``training`` figures and ``versions``, plus its ``model_file`` and ``pixel``
record (:meth:`landcover.pixel_model.PixelClassifier.to_files`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from landcover.bundle import MODEL_FILE, BundleMeta, write_metadata
from landcover.outputs import OutputSet, atomic_file, remove
from landcover.report_html import write_bundle_report
from landcover.runtime import versions
from landcover.scoring import estimate_record


def round_metric(v):
    """A figure as the history and the bundle keep it: 6 decimals, None when not finite."""
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def write_history_csv(path: Path, history: Sequence[dict]) -> None:
    """``history.csv``: one row per epoch, the scalar figures (no confusion matrices)."""
    keys = []
    for h in history:
        keys += [k for k in h if k not in keys and not k.endswith("confusion_matrix")]
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def resolved_config(ds, cfg) -> dict:
    """The bundle's ``config``: the dataset's (scenes, prepare) and the train settings."""
    return {**ds.attrs.get("config", {}), "train": cfg.to_dict()["train"]}


def dataset_days(ds):
    """The ``days`` input of a prepared dataset's dates, as training feeds a network that takes
    them (:func:`landcover.features.days_since_reference`; one set of dates for every patch).
    Classification counts them with :meth:`landcover.bundle.meta.BundleMeta.days`."""
    from landcover.features import days_since_reference

    return days_since_reference([dt.date.fromisoformat(d) for d in ds.attrs["dates"]])


def days_record(ds) -> dict:
    """``input``'s fields for a network that takes the dates: ``takes_dates`` and how its ``days``
    are counted (:data:`landcover.features.DAYS_REFERENCE`), with the range of the training
    dates (classify warns outside it)."""
    from landcover.features import DAYS_REFERENCE

    days = dataset_days(ds)
    return {"takes_dates": True,
            "days": {"reference": DAYS_REFERENCE, "trained": [float(days.min()),
                                                              float(days.max())]}}


def bundle_record(ds, cfg, *, variable_time_steps: bool, output_kind: str, absent: list,
                  calibration: dict, training: Mapping, evaluation: dict, model: str,
                  candidates: list, baseline, versions: dict, takes_dates: bool = False) -> dict:
    """The ``bundle.json`` record of a model trained on ``ds`` with ``cfg`` (before its model
    file's fields, the format and the content hash: :func:`landcover.bundle.write_metadata`).

    ``training``: the training figures after the dataset's (``dataset``, ``dataset_created``,
    ``patches``); ``model``, ``candidates``: the kept model's name and ``auto``'s candidates.
    """
    a = ds.attrs
    resolved = resolved_config(ds, cfg)
    t, h = ds.input_shape[:2]
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": resolved["train"]["model"],
        "input": {"layout": ["time", "y", "x", "feature"], "time_steps": t,
                  "variable_time_steps": variable_time_steps,
                  "patch_size": h, "features": ds.features, "bands": ds.bands,
                  "fill": a.get("fill"), "doy": a.get("doy"), "dtype": "float32",
                  **(days_record(ds) if takes_dates else {})},
        "normalisation": a["normalisation"],
        "dates": a["dates"], "dates_dropped": a.get("dates_dropped", []),
        "classes": [{k: c[k] for k in ("index", "code", "name", "color", "weight")}
                    for c in ds.classes],
        "ignore_label": ds.ignore_label,
        "output": {"kind": output_kind, "classes": ds.num_classes,
                   "absent_classes": absent, "temperature": calibration["temperature"]},
        "calibration": calibration,
        "grid": a.get("grid"),
        "profiles": a.get("profiles", []),
        "training": {"dataset": str(ds.path.absolute()), "dataset_created": a.get("created"),
                     "patches": {s: ds.split_size(s) for s in ("train", "validation", "test")},
                     **training},
        "metrics": evaluation,
        "estimate": estimate_record(evaluation),
        "model": {"architecture": model, "candidates": candidates},
        "baseline": baseline,
        "config": resolved,
        "versions": versions,
    }


def network_report(evaluation: dict, extra: dict, names) -> str:
    """``report.md``: the network against the per-pixel random forest, and the mode check."""
    lines = ["# Training report", ""]
    m = extra["mode_check"]
    logged = m.get("train_oa_logged")
    lines.append(f"Training split, kept weights: OA {m['train_oa_inference']:.3f} in inference mode, "
                 f"{m['train_oa_training_mode']:.3f} in training mode (gap {m['gap']:+.3f}"
                 + ("; more than 5 points: normalisation statistics did not settle" if
                    abs(m["gap"]) > 0.05 else "") + ")"
                 + (f"; {logged:.3f} as logged during the kept epoch (augmented batches, "
                    "changing weights)" if logged is not None else "") + ".")
    pre = extra.get("pretrained")
    if pre:
        lines.append(f"Encoder pretrained without labels ({pre['mode']}): {pre['path']}, "
                     f"{pre.get('steps')} steps on {pre.get('windows')} windows of "
                     f"{len(pre.get('dates') or [])} dates ({(pre.get('objective') or {}).get('kind')}).")
    if extra["absent"]:
        lines.append("Classes without training pixels, never predicted: "
                     + ", ".join(names[i] for i in extra["absent"]) + ".")
    lines.append("")
    from landcover.estimate import describe

    for split in ("validation", "test"):
        r = evaluation.get(split)
        if r:
            lines.append(f"Network, {split} split: OA {describe(r, 'overall_accuracy')}; macro F1 "
                         f"{describe(r, 'macro_f1')}.")
        else:
            lines.append(f"Network, {split} split: no held-out pixels, no estimate.")
    lines.append("")
    cal = extra.get("calibration") or {}
    if cal.get("fitted"):
        lines.append(f"Probabilities: temperature {cal['temperature']:.3f} fitted on "
                     f"{cal['fitted_on_pixels']:,d} validation pixels; expected calibration "
                     f"error on {cal['checked_on']}: {cal['before']['ece']:.3f} before, "
                     f"{cal['after']['ece']:.3f} after (reliability.png).")
    else:
        lines.append("Probabilities: not calibrated (fewer than 100 validation pixels); "
                     "temperature 1.")
    lines.append("")
    b = extra["baseline"]
    if b is None:
        lines.append("No baseline (train.baseline: none).")
    else:
        from landcover.baseline import comparison_table

        lines.append(f"Per-pixel random forest ({b['n_estimators']} trees, {b['train_pixels']:,d} "
                     f"training pixels, {b['seconds']:.1f} s) on the same pixels:")
        lines.append("")
        lines.append(comparison_table(evaluation, b, names))
    return "\n".join(lines) + "\n"


def write_held_out_pictures(folder: Path, evaluation: Mapping, calibration: Mapping,
                            label: str) -> None:
    """A bundle's pictures of its held-out scores, for networks and pixel classifiers alike: the
    validation confusion matrix (``confusion_matrix.png``, titled ``Validation, LABEL: ...``)
    and, where a temperature was fitted, the reliability diagram (``reliability.png``)."""
    from landcover.report import plot_confusion

    if "validation" in evaluation:
        v = evaluation["validation"]
        plot_confusion(np.array(v["confusion_matrix"]), v["class_names"],
                       folder / "confusion_matrix.png",
                       title=f"Validation, {label}: OA {v['overall_accuracy']:.3f}, mIoU "
                             f"{v['mean_iou']:.3f}, macro F1 {v['macro_f1']:.3f}")
    if calibration.get("fitted"):
        from landcover.calibration import plot_reliability

        plot_reliability(calibration, folder / "reliability.png",
                         title=f"Reliability, {calibration['checked_on']} pixels")


def write_network_bundle(model, ds, cfg, outputs: OutputSet, state: dict, evaluation: dict,
                         monitor: str, seconds: float, extra: dict) -> dict:
    """Write a trained network's bundle through ``outputs`` (its main output is the folder);
    returns the train summary. ``state``: the training loop's (history, epochs, best epoch);
    ``extra``: mode_check, baseline, absent, repeats, calibration and ``auto``'s candidates."""
    from landcover.models import architecture, takes_dates
    from landcover.report import plot_learning_curves

    resolved = resolved_config(ds, cfg)
    meta = bundle_record(
        ds, cfg, variable_time_steps=architecture(cfg.train.model.architecture).variable_dates,
        takes_dates=takes_dates(cfg.train.model), output_kind="logits", absent=extra["absent"],
        calibration=extra["calibration"],
        training={"epochs_run": state["epochs_done"], "best_epoch": state["best_epoch"],
                  "monitor": monitor, "best": round_metric(state["best"]),
                  "stopped_early": state.get("stopped_early"),
                  "seconds_this_run": round(seconds, 1),
                  "loss": resolved["train"]["loss"],
                  "passes_per_epoch": extra["repeats"],
                  "still_improving": bool(state.get("still_improving")),
                  "mode_check": extra["mode_check"],
                  "pretrained": extra.get("pretrained")},
        evaluation=evaluation, model=resolved["train"]["model"]["architecture"],
        candidates=extra.get("candidates", []), baseline=extra["baseline"],
        versions=versions(model=True))
    out = outputs.main
    tmp = outputs.temporary()
    try:
        tmp.mkdir()
        model.save(tmp / MODEL_FILE)
        (tmp / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        (tmp / "history.json").write_text(json.dumps(state["history"], indent=1))
        write_history_csv(tmp / "history.csv", state["history"])
        plot_learning_curves(state["history"], tmp / "learning_curves.png",
                             best_epoch=state["best_epoch"], monitor=monitor)
        write_held_out_pictures(tmp, evaluation, extra["calibration"],
                                f"epoch {state['best_epoch']}")
        report = network_report(evaluation, extra, ds.class_names)
        (tmp / "report.md").write_text(report)
        written: BundleMeta = write_metadata(tmp, meta)
        write_bundle_report(tmp, written)
        outputs.commit({out: tmp})
    finally:
        remove(tmp)
    return {"output": str(out), "content_hash": written.content_hash,
            "epochs_run": state["epochs_done"], "best_epoch": state["best_epoch"],
            "monitor": monitor, "best": round_metric(state["best"]), "metrics": evaluation,
            "baseline": extra["baseline"], "mode_check": extra["mode_check"], "report": report,
            "seconds": round(seconds, 1)}
