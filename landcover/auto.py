"""``train.model.architecture: auto``: the network and the pixel classifiers on the same held-out
pixels, the best kept, and an estimate of its accuracy that says how much it can be trusted.

**Which estimate** (``train.estimate``): ``holdout`` scores every candidate on the validation split
(each labelled pixel once, 95 % intervals over its spatial groups, see :mod:`landcover.estimate`);
``kfold`` cross-validates over the groups of the training and validation splits together
(``train.folds`` folds of whole groups); ``auto`` takes ``kfold`` when the validation split holds
fewer than :data:`landcover.estimate.MIN_GROUPS` groups or
:data:`landcover.estimate.MIN_SPLIT_PIXELS` pixels (a 78-pixel split
of two polygons scores 1.000 after one epoch: that is no estimate), else ``holdout``.

**Candidates**: the default network (trained as ``train`` always does: epochs chosen on the
validation split), and the LightGBM pixel classifiers ``random_forest`` and ``gradient_boosting``
(:mod:`landcover.pixel`). The network is cross-validated only where the budget
(``train.auto.max_minutes``) allows it; otherwise, under ``kfold``, it is trained and reported but
not a candidate, and the report says so.

**Which is kept**: the cheapest candidate that is not clearly worse than the one with the highest
macro F1 (:func:`pick`): the candidates in the order random forest, gradient boosting, network,
and "clearly worse" means the best beats it in at least :data:`SURE_BETTER` of the paired
bootstrap draws of the held-out groups (:func:`landcover.estimate.superiority`). On maipo with 3 %
of its fields and 10 folds, gradient boosting ranked first (0.321 against 0.296) but won only
89.8 % of the paired draws, and its test macro F1 was 0.610 against the random forest's 0.768;
docs/training.md gives the measurements behind :data:`SURE_BETTER`. After a cross-validation the
kept pixel classifier is fitted on the training and validation pixels together (nothing is left
to choose on them; on maipo with 3 % of its fields this raised the test OA from 0.698 to 0.803); a
kept network trains as ``train`` always does. The folds are whole groups with the class shares
kept as even as the groups allow (:func:`landcover.estimate.group_folds`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from landcover.errors import DatasetError

log = logging.getLogger(__name__)

TIE = 0.005  # where no paired comparison can be made: within this of the best is a tie
SURE_BETTER = 0.9  # a dearer candidate is kept when it wins this share of the paired draws
CV_MAX_PIXELS = 200_000


def choose_estimate(ds, method: str) -> tuple[str, dict]:
    """``(holdout | kfold, the validation split's size {pixels, groups})``."""
    from landcover.baseline import split_pixels
    from landcover.estimate import large_enough

    pixels, groups = 0, set()
    if "validation" in ds.attrs.get("splits", {}):
        for *_, lab, grp in split_pixels(ds, "validation"):
            pixels += len(lab)
            groups.update(np.unique(grp).tolist())
    size = {"pixels": pixels, "groups": len(groups)}
    if method != "auto":
        return method, size
    if not large_enough(size):
        return "kfold", size
    return "holdout", size


def _table(ds, splits, max_pixels: int, seed: int):
    """Pixel features, labels, stored weights and groups of ``splits`` (each pixel once), at most
    ``max_pixels`` (a seeded random subset of whole rows)."""
    from landcover.baseline import split_pixels
    from landcover.pixel_model import pixel_features

    g = ds.group
    xs, ys, ws, gs = [], [], [], []
    for split in splits:
        if split not in ds.attrs.get("splits", {}):
            continue
        for start, stop, n, i, j, lab, grp in split_pixels(ds, split):
            if not len(lab):
                continue
            x = np.asarray(g["inputs"][start:stop], dtype=np.float32)[n, :, i, j, :]
            xs.append(pixel_features(x, ds.attrs))
            ys.append(lab)
            ws.append(np.asarray(g["weights"][start:stop], dtype=np.float32)[n, i, j])
            gs.append(grp)
    if not ys:
        raise DatasetError(f"{ds.path}: no usable pixel in {', '.join(splits)}")
    X, y, w, grp = (np.concatenate(a) for a in (xs, ys, ws, gs))
    if len(y) > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), max_pixels, replace=False))
        X, y, w, grp = X[keep], y[keep], w[keep], grp[keep]
    return X, y, w, grp


def cross_validate_pixels(ds, kinds, *, folds: int, seed: int, weighted: bool
                          ) -> tuple[dict, np.ndarray, np.ndarray]:
    """k-fold cross-validation over whole groups of the training and validation pixels:
    ``({kind: interval scores} of the pooled held-out predictions, group ids, their folds)``."""
    from landcover.estimate import group_confusions, group_folds, interval_scores
    from landcover.pixel_model import fit_pixel_classifier

    X, y, w, grp = _table(ds, ("train", "validation"), CV_MAX_PIXELS, seed)
    ids, inv = np.unique(grp, return_inverse=True)
    if len(ids) < 2:
        raise DatasetError(f"{ds.path}: the labelled pixels form {len(ids)} group(s); "
                           "cross-validation needs several: set prepare.split.block_size smaller "
                           "or split by polygon (prepare.split.by=column)")
    fold = group_folds(grp, y, folds, seed=seed)
    k = int(fold.max()) + 1
    fold_of_group = np.zeros(len(ids), np.int64)
    fold_of_group[inv] = fold  # a group's pixels share one fold
    out = {}
    for kind in kinds:
        pred = np.zeros(len(y), np.int64)
        for f in range(k):
            train, held = fold != f, fold == f
            if len(np.unique(y[train])) < 2:
                pred[held] = y[train][0] if train.any() else 0
                continue
            model = fit_pixel_classifier(kind, X[train], y[train],
                                         w[train] if weighted else None, seed=seed,
                                         num_classes=ds.num_classes)
            pred[held] = model.predict(X[held])
        gids, cms = group_confusions(y, pred, grp, ds.num_classes)
        out[kind] = interval_scores(cms, ds.class_names, seed=seed, ids=gids)
        out[kind]["folds"] = k
    return out, ids, fold_of_group


def cross_validate_network(ds, cfg, ids: np.ndarray, fold_of_group: np.ndarray, *,
                           budget_s: float, progress=None) -> tuple[dict | None, str]:
    """The network cross-validated on the folds of :func:`cross_validate_pixels`
    (:func:`landcover.network_training.fit_fold_network` per fold; each held-out pixel predicted once):
    ``(interval scores or None, why not)``. Stops when the first fold shows that all of them
    would not fit in ``budget_s`` seconds."""
    from landcover.baseline import split_pixels
    from landcover.estimate import group_confusions, interval_scores
    from landcover.network_training import fit_fold_network

    k = int(fold_of_group.max()) + 1
    t0 = time.monotonic()
    deadline = t0 + budget_s
    ys, preds, gs = [], [], []
    inputs = ds.group["inputs"]
    for f in range(k):
        held = ids[fold_of_group == f]
        predict = fit_fold_network(ds, cfg, held, progress=progress,
                                   label=f"fold {f + 1}/{k}: ", deadline=deadline,
                                   epochs_after=(k - f - 1) * cfg.train.epochs)
        if predict is None:
            return None, (f"not cross-validated: {k} folds of {cfg.train.epochs} epochs would "
                          f"take more than train.auto.max_minutes "
                          f"({cfg.train.auto.max_minutes:g}, the pixel classifiers' time "
                          "included; projected from the first epoch): not a candidate")
        for split in ("train", "validation"):
            if split not in ds.attrs.get("splits", {}):
                continue
            for start, stop, n, i, j, lab, grp in split_pixels(ds, split):
                m = np.isin(grp, held)
                if not m.any():
                    continue
                n, i, j = n[m], i[m], j[m]
                rows, local = np.unique(n, return_inverse=True)
                x = np.asarray(inputs[start:stop], dtype=np.float32)[rows]
                logits = np.asarray(predict(x))[local, i, j]
                preds.append(logits.argmax(axis=-1))
                ys.append(lab[m])
                gs.append(grp[m])
    gids, cms = group_confusions(np.concatenate(ys), np.concatenate(preds), np.concatenate(gs),
                              ds.num_classes)
    result = interval_scores(cms, ds.class_names, seed=cfg.train.seed, ids=gids)
    result["folds"] = k
    return result, ""


def holdout_pixels(ds, kinds, *, seed: int, weighted: bool) -> dict:
    """Each pixel classifier fitted on the training split and scored on the validation split
    (:func:`landcover.scoring.held_out_scores`)."""
    from landcover.pixel_model import fit_pixel_classifier
    from landcover.scoring import held_out_scores

    X, y, w, _ = _table(ds, ("train",), CV_MAX_PIXELS, seed)
    out = {}
    for kind in kinds:
        model = fit_pixel_classifier(kind, X, y, w if weighted else None, seed=seed,
                                     num_classes=ds.num_classes, attrs=ds.attrs)
        out[kind] = held_out_scores(model.predict_on_batch, ds, "validation", seed=seed)
    return out


def _record(name: str, kind: str, result: dict | None, seconds: float, note: str = "") -> dict:
    from landcover.estimate import figure

    rec = {"architecture": name, "kind": kind, "seconds": round(seconds, 1)}
    if result:
        rec.update(overall_accuracy=figure(result, "overall_accuracy"),
                   macro_f1=figure(result, "macro_f1"), pixels=result.get("pixels"),
                   groups=result.get("groups"), enough=result.get("enough"))
    if note:
        rec["note"] = note
    return rec


def pick(candidates: list[dict], results: dict | None = None) -> tuple[dict, str]:
    """The kept candidate and why: of those with a figure, in order of cost (the pixel
    classifiers in the registry's order, then the network), the first that the one with the
    highest macro F1 does not beat in :data:`SURE_BETTER` of the paired bootstrap draws
    (``results``: each candidate's held-out scores with their per-group matrices); where no
    paired comparison can be made, the first within :data:`TIE` of the best."""
    from landcover.estimate import superiority

    scored = [c for c in candidates if c.get("macro_f1", {}).get("value") is not None
              and not c.get("note")]
    if not scored:
        raise DatasetError("train.model.architecture=auto: no candidate could be scored")
    best = max(scored, key=lambda c: c["macro_f1"]["value"])
    results = results or {}
    for c in sorted(scored, key=lambda c: (c["kind"] != "pixel", scored.index(c))):
        if c is best:
            return best, f"highest macro F1 ({best['macro_f1']['value']:.3f})"
        a, b = results.get(best["architecture"]), results.get(c["architecture"])
        share = superiority(a, b) if a and b else None
        c["beaten_by_best"] = None if share is None else round(share, 3)
        if share is None and c["macro_f1"]["value"] >= best["macro_f1"]["value"] - TIE:
            return c, (f"macro F1 {c['macro_f1']['value']:.3f}, within {TIE} of "
                       f"{best['architecture']}'s {best['macro_f1']['value']:.3f}, and cheaper")
        if share is not None and share < SURE_BETTER:
            return c, (f"macro F1 {c['macro_f1']['value']:.3f}; {best['architecture']}'s "
                       f"{best['macro_f1']['value']:.3f} is higher in only {share:.1%} of the "
                       f"paired draws of the groups (under {SURE_BETTER:.0%}): no clear "
                       "difference, and this one is cheaper")
    return best, f"highest macro F1 ({best['macro_f1']['value']:.3f})"


PRETRAINED = "+pretrained"  # the pretrained network's candidate name: the architecture's and this


def _network_configs(ds, cfg, network: str):
    """``[(candidate name, config)]`` of the networks ``auto`` tries: the default network from
    scratch and, with ``train.pretrain`` a folder, the same network started from it."""
    from landcover.encoder.folder import train_pixels, with_head

    tc, pixels = cfg.train, train_pixels(ds)
    model = dataclasses.replace(tc.model, architecture=network)
    out = [(network, dataclasses.replace(cfg, train=with_head(dataclasses.replace(
        tc, model=model, pretrain="none"), pixels)))]
    if tc.pretrain not in (None, "", "none"):
        out.append((network + PRETRAINED, dataclasses.replace(cfg, train=with_head(
            dataclasses.replace(tc, model=model), pixels))))
    return out


def _train_candidate_network(ds, outputs, name, net_cfg, *, resume, progress, callbacks):
    """Train a network candidate under holdout: the first straight into ``outputs``; a second
    (the pretrained one) into a folder beside it, returned with its summary so that it can
    replace the first if it is kept."""
    from landcover.network_training import train_network
    from landcover.outputs import OutputSet

    if not name.endswith(PRETRAINED):
        return train_network(ds, outputs, net_cfg, resume=resume, progress=progress,
                             callbacks=callbacks), None
    side = outputs.main.parent / f".{outputs.main.name}.pretrained-candidate"
    with OutputSet([side], True, folders=[True]) as other:
        summary = train_network(ds, other, net_cfg, resume=False, progress=progress,
                                callbacks=callbacks)
    return summary, side


def train_auto(ds, outputs, cfg, *, resume: bool, progress, callbacks) -> dict:
    """Train the candidates, keep the best (see the module's docstring), write its bundle."""
    from landcover.models import default_architecture, pixel_architectures
    from landcover.network_training import train_network
    from landcover.outputs import remove
    from landcover.pixel import train_pixel_bundle
    from landcover.progress import message, reporter
    from landcover.scoring import rewrite_model_meta

    tc = cfg.train
    report = reporter(progress)
    method, val_size = choose_estimate(ds, tc.estimate)
    weighted = bool(tc.loss.class_weights)
    network, kinds = default_architecture(), pixel_architectures()
    networks = _network_configs(ds, cfg, network)
    t0 = time.monotonic()
    if report is not None:
        message(report, f"auto: {method} estimate (validation split: {val_size['pixels']:,d} px "
                        f"in {val_size['groups']} groups); candidates "
                        + ", ".join([n for n, _ in networks] + list(kinds)))
    budget = tc.auto.max_minutes * 60
    if method == "kfold":
        pixel, ids, folds_of = cross_validate_pixels(ds, kinds, folds=tc.folds, seed=tc.seed,
                                                     weighted=weighted)
    else:
        pixel = holdout_pixels(ds, kinds, seed=tc.seed, weighted=weighted)
    pixel_seconds = time.monotonic() - t0
    candidates = [_record(k, "pixel", pixel[k], pixel_seconds / len(kinds)) for k in kinds]
    net_records = []

    def model_record(kept, why):
        for c in candidates:
            c["kept"] = c is kept
        return {"architecture": network, "pretrained": kept["architecture"].endswith(PRETRAINED),
                "candidates": candidates, "why": why, "estimate_method": method}

    if method == "kfold":
        for name, net_cfg in networks:
            t1 = time.monotonic()
            net, why_not = cross_validate_network(
                ds, net_cfg, ids, folds_of, budget_s=budget - (time.monotonic() - t0),
                progress=progress)
            net_records.append(_record(name, "network", net, time.monotonic() - t1,
                                       note=why_not))
            if net is not None:
                pixel[name] = net
        candidates[:0] = net_records
        kept, why = pick(candidates, pixel)
        chosen = dict(networks).get(kept["architecture"])
        if chosen is not None:
            net = pixel[kept["architecture"]]
            summary = train_network(ds, outputs, chosen, resume=resume, progress=progress,
                                    callbacks=callbacks)
            model = model_record(kept, why)
            summary.update(rewrite_model_meta(outputs, model, cross_validation=net,
                                              folds=net.get("folds", tc.folds)),
                           model=model)
            return summary
    else:
        # the networks first: the first writes its bundle (replaced if another candidate is
        # kept), a pretrained one writes beside it
        summaries, sides = {}, {}
        try:
            for name, net_cfg in networks:
                t1 = time.monotonic()
                summary, side = _train_candidate_network(ds, outputs, name, net_cfg,
                                                         resume=resume, progress=progress,
                                                         callbacks=callbacks)
                summaries[name], sides[name] = summary, side
                pixel[name] = summary["metrics"].get("validation") or {}
                net_records.append(_record(name, "network", summary["metrics"].get("validation"),
                                           time.monotonic() - t1))
            candidates[:0] = net_records
            kept, why = pick(candidates, pixel)
            if kept["architecture"] in summaries:
                side = sides[kept["architecture"]]
                if side is not None:
                    outputs.commit({outputs.main: side})
                model = model_record(kept, why)
                summary = summaries[kept["architecture"]]
                summary.update(rewrite_model_meta(outputs, model), model=model)
                return summary
        finally:
            for side in sides.values():
                if side is not None:
                    remove(side)
    for c in candidates:
        c["kept"] = c is kept
    meta = {"model": {"architecture": kept["architecture"], "pretrained": False,
                      "candidates": candidates, "why": why, "estimate_method": method}}
    pix_cfg = dataclasses.replace(cfg, train=dataclasses.replace(
        tc, model=dataclasses.replace(tc.model, architecture=kept["architecture"])))
    log.info("auto: keeping %s (%s)", kept["architecture"], why)
    # after a cross-validation the validation pixels are not needed to choose: they train too
    fit_splits = ("train", "validation") if method == "kfold" else ("train",)
    cv = pixel[kept["architecture"]] if method == "kfold" else None
    summary = train_pixel_bundle(ds, outputs, pix_cfg, progress=progress, extra_meta=meta,
                                 fit_splits=fit_splits, cross_validation=cv,
                                 folds=cv.get("folds", tc.folds) if cv else None)
    summary["model"] = meta["model"]
    return summary
