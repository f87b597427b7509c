"""What a trained model scored, and how its bundle records it, the same for networks and pixel
classifiers: the held-out splits scored once per pixel with 95 % intervals over spatial groups
(:func:`held_out_scores`; :func:`score_held_out` adds the calibration and the baseline), a network
over a stream of patches (:func:`evaluate_stream`), ``bundle.json``'s ``estimate``
(:func:`estimate_record`), and the candidates of ``train.model.architecture: auto``
(:func:`candidates_table`, :func:`rewrite_model_meta`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from landcover.bundle import write_metadata
from landcover.config import TrainConfig
from landcover.dataset import PreparedDataset
from landcover.outputs import OutputSet, remove
from landcover.report_html import write_bundle_report
from landcover.scores import confusion, scores

log = logging.getLogger("landcover.train")  # the train stage's messages, named as before


def score_held_out(predict, ds: PreparedDataset, tc: TrainConfig, *,
                   fitted_on: Sequence[str] = ("train",)) -> tuple[dict, dict, dict | None]:
    """What every bundle reports of its model, the same for networks and pixel classifiers:
    ``(evaluation {split: held_out_scores}, calibration, baseline)``. The validation and test
    splits not in ``fitted_on`` are scored (each pixel once, intervals over groups); a
    temperature is fitted on the validation pixels and checked on the test pixels
    (:func:`landcover.calibration.calibrate`); scikit-learn's forest is fitted unless
    ``train.baseline`` is ``none``."""
    from landcover.calibration import calibrate

    evaluation, held_logits = {}, {}
    for split in ("validation", "test"):
        if split not in ds.attrs.get("splits", {}) or split in fitted_on:
            continue
        result = held_out_scores(predict, ds, split, seed=tc.seed, keep_logits=held_logits)
        if result is not None:
            evaluation[split] = result
    calibration = calibrate(held_logits.get("validation"), held_logits.get("test"))
    baseline = None
    if tc.baseline != "none":
        from landcover.baseline import fit_baseline

        log.info("fitting the per-pixel random-forest baseline (scikit-learn)")
        baseline = fit_baseline(ds, seed=tc.seed, n_jobs=-1)
    return evaluation, calibration, baseline


CALIBRATION_PIXELS = 200_000  # held-out pixels kept for temperature scaling (a seeded draw)


def held_out_scores(predict, ds: PreparedDataset, split: str, *, seed: int = 0,
                    keep_logits: dict | None = None) -> dict | None:
    """Scores of a model over each usable pixel of ``split`` once (overlapping windows
    de-duplicated), with 95 % intervals over the pixels' spatial groups
    (:func:`landcover.estimate.interval_scores`) and the median top-class probability; None for
    a split without usable pixels.

    Args:
        predict: ``x (n, T, H, W, F) -> logits (n, H, W, K)`` (:func:`landcover.network_training.network_predictor`).
        keep_logits: a dict that receives ``split: (logits (n, K), labels (n,))`` of at most
            :data:`CALIBRATION_PIXELS` pixels (for :mod:`landcover.calibration`).
    """
    from landcover.baseline import split_pixels
    from landcover.estimate import group_confusions, interval_scores

    ys, preds, groups, tops, kept = [], [], [], [], []
    inputs = ds.group["inputs"]
    for start, stop, n, i, j, lab, grp in split_pixels(ds, split):
        if not len(lab):
            continue
        logits = np.asarray(predict(np.asarray(inputs[start:stop], dtype=np.float32)),
                            dtype=np.float64)[n, i, j]
        z = logits - logits.max(axis=-1, keepdims=True)
        tops.append(1.0 / np.exp(z).sum(axis=-1))
        preds.append(logits.argmax(axis=-1))
        if keep_logits is not None:
            kept.append(logits.astype(np.float32))
        ys.append(lab)
        groups.append(grp)
    if not ys:
        return None
    gids, cms = group_confusions(np.concatenate(ys), np.concatenate(preds), np.concatenate(groups),
                              ds.num_classes)
    out = interval_scores(cms, ds.class_names, seed=seed, ids=gids)
    out["median_top_probability"] = round(float(np.median(np.concatenate(tops))), 4)
    if keep_logits is not None:
        logits, y = np.concatenate(kept), np.concatenate(ys)
        if len(y) > CALIBRATION_PIXELS:
            pick = np.sort(np.random.default_rng(seed).choice(len(y), CALIBRATION_PIXELS,
                                                              replace=False))
            logits, y = logits[pick], y[pick]
        keep_logits[split] = (logits, y)
    return out


def evaluate_stream(model, stream, names: Sequence[str], ignore_label: int = 255, *,
                    training: bool = False) -> dict:
    """Scores of ``model`` over one split (valid pixels only, counts not weights), with the median
    top-class probability of those pixels (from a 1000-bin histogram: bounded memory).

    ``training=True`` runs the model in training mode (batch statistics; it updates BatchNorm's
    moving averages, so reload the weights afterwards)."""
    cm = np.zeros((len(names), len(names)), np.int64)
    hist = np.zeros(1000, np.int64)
    for x, y, w in stream.batches(epoch=0):
        x = list(x) if isinstance(x, tuple) else x  # (series, days) of a date-taking network
        out = model(x, training=True) if training else model.predict_on_batch(x)
        logits = np.asarray(out, dtype=np.float64)
        pred = np.argmax(logits, axis=-1)
        mask = (w > 0) & (y != ignore_label)
        cm += confusion(y, pred, len(names), mask=mask, ignore_label=ignore_label)
        z = logits[mask]
        top = 1.0 / np.exp(z - z.max(axis=-1, keepdims=True)).sum(axis=-1)
        hist += np.bincount(np.minimum((top * 1000).astype(np.int64), 999), minlength=1000)
    out = scores(cm, names)
    if hist.sum():
        out["median_top_probability"] = round(
            (int(np.searchsorted(np.cumsum(hist), hist.sum() / 2)) + 0.5) / 1000, 4)
    return out


def _figures_record(result: dict) -> dict:
    iv = result.get("intervals", {})
    return {"pixels": result.get("pixels"), "groups": result.get("groups"),
            "enough": result.get("enough"),
            "overall_accuracy": {"value": result.get("overall_accuracy"),
                                 "ci95": iv.get("overall_accuracy")},
            "macro_f1": {"value": result.get("macro_f1"), "ci95": iv.get("macro_f1")}}


def estimate_record(evaluation: dict, method: str = "holdout", folds: int | None = None) -> dict:
    """``bundle.json``'s ``estimate``: the figures a user should believe, with 95 % intervals over
    spatial groups. The test split's, where it holds enough groups and pixels
    (:func:`landcover.estimate.large_enough`: an independent reference of the final model);
    otherwise, after a cross-validation (``method`` ``kfold``), the pooled cross-validated
    figures (``evaluation["cross_validation"]``); otherwise the test split's or, without one, the
    validation split's. ``method`` says how the model was chosen; ``split`` where the figures
    come from; after a cross-validation its figures are kept under ``cross_validation`` too."""
    from landcover.estimate import large_enough

    test, cv = evaluation.get("test"), evaluation.get("cross_validation")
    if method == "kfold" and cv and not large_enough(test):
        split, result = "cross_validation", cv
    else:
        split = "test" if test else "validation"
        result = evaluation.get(split)
    if not result:
        return {"method": "none", "why": "no held-out pixels"}
    iv = result.get("intervals", {})
    rec = {"method": method, "folds": folds, "split": split, **_figures_record(result),
           "per_class": {name: {"f1": c.get("f1"),
                                "ci95": iv.get("per_class", {}).get(name, {}).get("f1"),
                                "support": c.get("support"),
                                "enough": iv.get("per_class", {}).get(name, {}).get("enough")}
                         for name, c in result.get("per_class", {}).items()}}
    if method == "kfold" and cv and split != "cross_validation":
        rec["cross_validation"] = _figures_record(cv)
    return rec


def candidates_table(model: dict) -> str:
    """Markdown: every candidate of ``auto`` side by side with its figures and intervals, and
    which was kept and why."""
    lines = ["## Model choice (train.model.architecture: auto)", "",
             (f"Estimate: {model.get('estimate_method', '?')}. Kept: "
              f"**{model['architecture']}** ({model.get('why', '')})."), "",
             "| candidate | kind | OA (95 % CI) | macro F1 (95 % CI) | pixels | groups | s | "
             "best's macro F1 higher in |",
             "|---|---|---|---|---:|---:|---:|---:|"]

    def cell(f):
        if not f or f.get("value") is None:
            return "-"
        ci = f.get("ci95")
        return f"{f['value']:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")

    for c in model.get("candidates", []):
        note = f" ({c['note']})" if c.get("note") else ""
        enough = "" if c.get("enough", True) else " not enough to tell"
        lines.append(f"| {c['architecture']}{' (kept)' if c.get('kept') else ''}{note} | "
                     f"{c['kind']} | {cell(c.get('overall_accuracy'))}{enough} | "
                     f"{cell(c.get('macro_f1'))} | {c.get('pixels') or '-'} | "
                     f"{c.get('groups') or '-'} | {c.get('seconds', 0):.1f} | "
                     f"{_share(c.get('beaten_by_best'))} |")
    lines += ["", "The last column: the share of paired bootstrap draws of the held-out groups in "
              "which the candidate with the highest macro F1 beats this one; a cheaper candidate "
              "is kept unless that share is at least 90 %."]
    return "\n".join(lines) + "\n"


def _share(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def rewrite_model_meta(outputs: OutputSet, model: dict, *, cross_validation: dict | None = None,
                       folds: int | None = None) -> dict:
    """Put ``model`` (the candidates of ``auto`` and which was kept) into the committed bundle's
    ``bundle.json`` and its report, as a new set (a copy, replaced as one); with the
    ``cross_validation`` scores that chose it, the estimate becomes :func:`estimate_record`'s
    for ``kfold``. Returns the summary."""
    import shutil

    from landcover.bundle import read_metadata

    out = outputs.main
    tmp = outputs.temporary()
    try:
        shutil.copytree(out, tmp)
        meta = read_metadata(tmp)
        meta["model"] = model
        if cross_validation is not None:
            meta["metrics"]["cross_validation"] = cross_validation
            meta["estimate"] = estimate_record(meta["metrics"], "kfold", folds)
        meta.pop("content_hash", None)
        meta.pop("landcover_model", None)
        report = (tmp / "report.md").read_text() + "\n" + candidates_table(model)
        (tmp / "report.md").write_text(report)
        meta = write_metadata(tmp, meta)
        write_bundle_report(tmp, meta)
        outputs.commit({out: tmp})
    finally:
        remove(tmp)
    return {"output": str(out), "content_hash": meta.content_hash, "metrics": meta.metrics,
            "estimate": meta.estimate, "baseline": meta.baseline, "report": report}
