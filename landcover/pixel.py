"""Pixel classifiers that make maps: a LightGBM random forest and gradient-boosted trees.

``train.model.architecture: random_forest`` or ``gradient_boosting`` (declared in
:mod:`landcover.models.pixel`) makes ``landcover train`` fit a tree ensemble on the pixels of the
same prepared dataset as the networks: the usable, de-duplicated pixels of the training split
(:mod:`landcover.baseline`), with the stored per-pixel weights as sample weights when
``train.loss.class_weights`` (else 1). Validation and test are scored the same way as the
baseline's, and the bundle (``bundle.json`` shaped like a network's) goes through the same
``classify`` (probabilities, uncertainty, smoothing, COG, QML, STAC item) and ``evaluate``.

The classifier itself (features, the LightGBM model, prediction, its model file) is
:mod:`landcover.pixel_model`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from landcover.errors import DatasetError
from landcover.pixel_model import (
    FEATURE_GROUPS,
    PixelClassifier,
    feature_names,
    fit_pixel_classifier,
    is_rf,
    pixel_features,
)

log = logging.getLogger(__name__)

TRAIN_MAX_PIXELS = 1_000_000  # training pixels kept at most (stratified, rare classes kept)
EVAL_MAX_PIXELS = 500_000


# ------------------------------------------------------------------------------------ the data
def split_rows(ds, split: str, *, max_pixels: int | None, seed: int, keep_rare: bool,
                 chosen=False) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(x (m, T, F) float32, y (m,) int64, stored weights (m,) float32)`` per stored piece of
    a split: its usable, de-duplicated pixels (:mod:`landcover.baseline`), at most
    ``max_pixels`` (stratified, see :func:`landcover.baseline.quotas`; ``chosen``: the
    selection already drawn by :func:`landcover.baseline.selection`)."""
    from landcover.baseline import selected_pixels, selection

    if chosen is False:
        chosen, _, _ = selection(ds, split, max_pixels, seed, keep_rare)
    g = ds.group
    t, _, _, f = ds.input_shape
    for start, stop, n, i, j, lab, _, _ in selected_pixels(ds, split, chosen):
        x = np.asarray(g["inputs"][start:stop], dtype=np.float32)[n, :, i, j, :]
        wt = np.asarray(g["weights"][start:stop], dtype=np.float32)[n, i, j]
        yield x.reshape(len(lab), t, f), lab, wt


def split_table(ds, split: str, *, max_pixels: int | None, seed: int, keep_rare: bool,
                groups: Sequence[str] = FEATURE_GROUPS):
    """``(features (n, P), y, stored weights)`` of a split (see :func:`split_rows`)."""
    xs, ys, ws = [], [], []
    for x, y, w in split_rows(ds, split, max_pixels=max_pixels, seed=seed,
                                keep_rare=keep_rare):
        xs.append(pixel_features(x, ds.attrs, groups))
        ys.append(y)
        ws.append(w)
    p = len(feature_names(ds.attrs, groups))
    if not xs:
        return np.zeros((0, p), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


# ------------------------------------------------------------------------------------ training
def train_pixel_bundle(ds, outputs, cfg, *, progress=None, extra_meta: Mapping | None = None,
                       fit_splits: Sequence[str] = ("train",),
                       cross_validation: dict | None = None, folds: int | None = None) -> dict:
    """Fit ``cfg.train.model.architecture`` (a pixel classifier) on the training split of
    ``ds`` and write its bundle through ``outputs`` (an :class:`landcover.outputs.OutputSet`
    whose main output is the bundle folder); returns the train summary.

    Sample weights: the stored per-pixel weights when ``train.loss.class_weights``, else 1. At
    most :data:`TRAIN_MAX_PIXELS` training pixels (stratified, rare classes kept). Validation
    and test are scored as the networks' (:func:`landcover.scoring.held_out_scores`: every usable
    pixel once, 95 % intervals over spatial groups), the probabilities are calibrated the same
    way (a temperature fitted on the validation split), and ``extra_meta`` (e.g. ``model``,
    ``estimate`` of ``train.model.architecture=auto``) goes into ``bundle.json`` as it is.

    ``fit_splits`` ``("train", "validation")``: fit on both (after a cross-validation chose the
    model, the validation pixels are more training pixels); validation is then not scored and
    nothing is calibrated on it. ``cross_validation``: the scores of the cross-validation that
    chose the model (kept in ``metrics``; the estimate where the test split is too small,
    :func:`landcover.scoring.estimate_record`).

    Raises:
        DatasetError: no usable training pixel, or fewer than 2 classes in them.
    """
    from landcover.progress import message, reporter
    from landcover.scores import confusion, scores
    from landcover.scoring import score_held_out

    report = reporter(progress)
    tc = cfg.train
    kind = tc.model.architecture
    if ds.split_size("train") == 0:
        raise DatasetError(f"{ds.path}: the training split is empty; prepare it again with "
                           "other prepare.split settings")
    t0 = time.monotonic()
    subsampled = {}
    fit_splits = [sp for sp in fit_splits if sp in ds.attrs.get("splits", {})]
    parts = [split_table(ds, sp, max_pixels=TRAIN_MAX_PIXELS, seed=tc.seed, keep_rare=True)
             for sp in fit_splits]
    X, y, w = (np.concatenate([pt[i] for pt in parts]) for i in range(3))
    if not len(y):
        raise DatasetError(f"{ds.path}: the training split has no usable pixel (all ignored or "
                           "weight 0); nothing to fit a pixel classifier on")
    if len(y) == TRAIN_MAX_PIXELS:
        subsampled["train"] = {"used_pixels": TRAIN_MAX_PIXELS}
    weighted = bool(tc.loss.class_weights)
    validation = None
    if (not is_rf(kind) and "validation" in ds.attrs.get("splits", {})
            and "validation" not in fit_splits):
        vx, vy, vw = split_table(ds, "validation", max_pixels=EVAL_MAX_PIXELS, seed=tc.seed,
                                 keep_rare=False)
        validation = (vx, vy, vw if weighted else None) if len(vy) else None
    if report is not None:
        message(report, f"fitting a {kind.replace('_', ' ')} (LightGBM) on {len(y):,d} training "
                        f"pixels, {X.shape[1]} features")
    model = fit_pixel_classifier(kind, X, y, w if weighted else None, seed=tc.seed,
                                 num_classes=ds.num_classes, validation=validation,
                                 attrs=ds.attrs)
    fit_seconds = time.monotonic() - t0
    del validation
    names = ds.class_names
    train_scores = scores(confusion(y, model.predict(X), ds.num_classes,
                                    ignore_label=ds.ignore_label), names)
    del X
    evaluation, calibration, baseline = score_held_out(model.predict_on_batch, ds, tc,
                                                       fitted_on=fit_splits)
    extra_meta = dict(extra_meta or {})
    if cross_validation is not None:
        from landcover.scoring import estimate_record

        evaluation["cross_validation"] = cross_validation
        extra_meta["estimate"] = estimate_record(evaluation, "kfold", folds)
    seconds = time.monotonic() - t0
    absent = [c for c in range(ds.num_classes) if c not in model.present]
    if absent:
        log.warning("%s: no training pixels of %s; the model will not predict %s", ds.path,
                    ", ".join(names[c] for c in absent), "it" if len(absent) == 1 else "them")
    mode_check = {"train_oa_inference": train_scores["overall_accuracy"],
                  "train_oa_training_mode": train_scores["overall_accuracy"],
                  "train_oa_logged": None,
                  "train_macro_f1_inference": train_scores["macro_f1"], "gap": 0.0,
                  "note": "a tree ensemble has no training mode: the training split's scores"}
    training = {"pixels": int(len(y)), "weighted": weighted, "splits": list(fit_splits),
                "fit_seconds": round(fit_seconds, 1), "trees": int(model.booster.num_trees()),
                "rounds": int(model.booster.current_iteration()),
                "max_pixels": TRAIN_MAX_PIXELS, "subsampled": subsampled,
                "train_overall_accuracy": train_scores["overall_accuracy"]}
    summary = _write_pixel_bundle(model, ds, cfg, outputs, evaluation, baseline, absent,
                                  mode_check, training, calibration, seconds, extra_meta)
    if report is not None:
        for split, v in evaluation.items():
            message(report, f"{kind}: {split} OA {v['overall_accuracy']:.3f}, macro F1 "
                            f"{v['macro_f1']:.3f}")
    return summary


def _report(kind: str, evaluation: dict, baseline, training: dict, absent, calibration: dict,
            names) -> str:
    from landcover.estimate import describe

    what = kind.replace("_", " ")
    lines = ["# Training report", "",
             f"{what.capitalize()} (LightGBM, {training['trees']} trees: {training['rounds']} "
             f"rounds of one tree per class) on {training['pixels']:,d} training pixels"
             + (", weighted by their stored weights" if training["weighted"] else "")
             + f"; training-split OA {training['train_overall_accuracy']:.3f}."]
    if absent:
        lines.append("Classes without training pixels, never predicted: "
                     + ", ".join(names[i] for i in absent) + ".")
    lines.append("")
    for split in ("validation", "test"):
        r = evaluation.get(split)
        if r:
            lines.append(f"{what.capitalize()}, {split} split: OA "
                         f"{describe(r, 'overall_accuracy')}; macro F1 "
                         f"{describe(r, 'macro_f1')}.")
        else:
            lines.append(f"{what.capitalize()}, {split} split: no held-out pixels, no estimate.")
    lines.append("")
    if calibration.get("fitted"):
        lines.append(f"Probabilities: temperature {calibration['temperature']:.3f} fitted on "
                     f"{calibration['fitted_on_pixels']:,d} validation pixels; expected "
                     f"calibration error on {calibration['checked_on']}: "
                     f"{calibration['before']['ece']:.3f} before, "
                     f"{calibration['after']['ece']:.3f} after (reliability.png).")
    else:
        why = ("the validation pixels trained the model, after the cross-validation chose it"
               if "validation" in training.get("splits", ()) else
               "fewer than 100 validation pixels")
        lines.append(f"Probabilities: not calibrated ({why}); temperature 1.")
    lines.append("")
    if baseline is None:
        lines.append("No baseline (train.baseline: none).")
    else:
        from landcover.baseline import comparison_table

        lines.append(f"Against scikit-learn's random forest ({baseline['n_estimators']} trees, "
                     f"{baseline['train_pixels']:,d} training pixels, the raw per-date inputs) "
                     "on the same pixels:")
        lines.append("")
        lines.append(comparison_table(evaluation, baseline, names,
                                      (f"{what} (LightGBM)", "scikit-learn forest")))
    return "\n".join(lines) + "\n"


def _write_pixel_bundle(model: PixelClassifier, ds, cfg, outputs, evaluation: dict, baseline,
                        absent: list, mode_check: dict, training: dict, calibration: dict,
                        seconds: float, extra_meta: Mapping) -> dict:
    import lightgbm
    import yaml

    from landcover.bundle import write_metadata
    from landcover.bundle.writer import (bundle_record, resolved_config,
                                         write_held_out_pictures)
    from landcover.outputs import remove
    from landcover.report_html import write_bundle_report
    from landcover.runtime import versions

    resolved = resolved_config(ds, cfg)
    meta = bundle_record(
        ds, cfg, variable_time_steps=False, output_kind="log_probabilities", absent=absent,
        calibration=calibration,
        training={"epochs_run": None, "best_epoch": None, "monitor": None, "best": None,
                  "stopped_early": None, "seconds_this_run": round(seconds, 1),
                  "loss": resolved["train"]["loss"], "mode_check": mode_check,
                  "pixels": training},
        evaluation=evaluation, model=model.kind, candidates=[], baseline=baseline,
        versions={**versions(), "lightgbm": lightgbm.__version__})
    meta.update(extra_meta)
    out = outputs.main
    tmp = outputs.temporary()
    try:
        tmp.mkdir()
        meta.update(model.to_files(tmp))
        (tmp / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        write_held_out_pictures(tmp, evaluation, calibration, model.kind.replace("_", " "))
        report = _report(model.kind, evaluation, baseline, training, absent, calibration,
                         ds.class_names)
        if meta["model"].get("candidates"):  # chosen by train.model.architecture=auto
            from landcover.scoring import candidates_table

            report += "\n" + candidates_table(meta["model"])
        (tmp / "report.md").write_text(report)
        written = write_metadata(tmp, meta)
        write_bundle_report(tmp, written)
        outputs.commit({out: tmp})
    finally:
        remove(tmp)
    return {"output": str(out), "content_hash": written.content_hash, "epochs_run": None,
            "best_epoch": None, "monitor": None, "best": None, "metrics": evaluation,
            "estimate": written.estimate, "baseline": baseline, "mode_check": mode_check,
            "report": report, "seconds": round(seconds, 1), "pixels": training}
