"""train.model.architecture=auto: every candidate scored on the same held-out pixels, the better
kept (the forest where it must win, the network where it must), the choice in bundle.json, the
report, the map's tags."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lightgbm")

from landcover.auto import pick  # noqa: E402


def cand(name, kind, f1, note=""):
    c = {"architecture": name, "kind": kind, "macro_f1": {"value": f1, "ci95": [f1 - .05, f1]}}
    if note:
        c["note"] = note
    return c


def test_pick_keeps_the_best_and_a_cheaper_model_wins_a_tie():
    kept, why = pick([cand("convlstm", "network", 0.90), cand("random_forest", "pixel", 0.80),
                      cand("gradient_boosting", "pixel", 0.85)])
    assert kept["architecture"] == "convlstm" and "highest macro F1" in why
    kept, why = pick([cand("convlstm", "network", 0.900), cand("random_forest", "pixel", 0.897)])
    assert kept["architecture"] == "random_forest" and "cheaper" in why
    kept, _ = pick([cand("convlstm", "network", 0.99, note="not cross-validated"),
                    cand("random_forest", "pixel", 0.5)])
    assert kept["architecture"] == "random_forest"  # a candidate with a note never wins


def _auto(field_dataset, tmp_path, extra):
    from landcover.config import load_config
    from landcover.train import train

    cfg = load_config(None, ["train.model.architecture=auto", "train.estimate=holdout",
                             "train.baseline=none", "train.batch_size=8",
                             "train.min_epoch_steps=0", "train.patience=0",
                             "train.model.layers=1", *extra])
    train(field_dataset, tmp_path / "auto", cfg, progress=False)
    return json.loads((tmp_path / "auto" / "bundle.json").read_text())


@pytest.mark.slow  # about 35 s on 2 cores
def test_auto_keeps_the_forest_where_it_must_win(field_dataset, tmp_path):
    """A network of 1 filter trained for one epoch cannot learn the crop fields; trees can."""
    meta = _auto(field_dataset, tmp_path, ["train.model.filters=1", "train.epochs=1"])
    model = meta["model"]
    names = [c["architecture"] for c in model["candidates"]]
    assert names == ["convlstm", "random_forest", "gradient_boosting"]
    assert model["architecture"] in ("random_forest", "gradient_boosting")
    assert meta["architecture"]["architecture"] == model["architecture"]
    net = model["candidates"][0]
    kept = next(c for c in model["candidates"] if c.get("kept"))
    assert kept["macro_f1"]["value"] > net["macro_f1"]["value"]
    for c in model["candidates"]:  # every figure with its interval and its size
        lo, hi = c["macro_f1"]["ci95"]
        assert lo <= c["macro_f1"]["value"] <= hi and c["pixels"] > 0 and c["groups"] >= 1
    est = meta["estimate"]
    assert est["method"] == "holdout" and est["overall_accuracy"]["ci95"] is not None
    report = (tmp_path / "auto" / "report.md").read_text()
    assert "## Model choice" in report and "(kept)" in report


@pytest.mark.slow
def test_auto_keeps_the_network_where_it_must_win(field_dataset_small_blocks, tmp_path):
    """The rare class of the crop fields shows only in spatial context (docs/training.md): the
    network finds it, per-pixel trees cannot, so its macro F1 wins, clearly: in nearly every
    paired draw of the 12 validation groups (with 48 px blocks, fewer groups, the same gap won
    only 86 % of the draws: no clear difference, and the forest would be kept)."""
    meta = _auto(field_dataset_small_blocks, tmp_path,
                 ["train.model.filters=16", "train.epochs=8", "train.learning_rate=0.005"])
    assert meta["model"]["architecture"] == "convlstm", meta["model"]["why"]
    shares = [c["beaten_by_best"] for c in meta["model"]["candidates"] if c["kind"] == "pixel"]
    assert min(shares) >= 0.9, shares
    assert (tmp_path / "auto" / "model.keras").is_file()


def test_a_dearer_candidate_must_win_most_paired_draws_to_be_kept():
    import numpy as np

    from landcover.auto import SURE_BETTER
    from landcover.estimate import group_confusions, interval_scores

    rng = np.random.default_rng(3)
    group = np.repeat(np.arange(10), 50)
    y = np.repeat(rng.integers(0, 2, 10), 50)

    def scored(right_fields):
        right = np.isin(group, right_fields)
        ids, cms = group_confusions(y, np.where(right, y, 1 - y), group, 2)
        r = interval_scores(cms, ["a", "b"], ids=ids)
        return r

    def as_cand(name, kind, r):
        return {"architecture": name, "kind": kind,
                "macro_f1": {"value": r["macro_f1"], "ci95": r["intervals"]["macro_f1"]}}

    # 10 fields: the boosted model gets one field more right than the forest, another one wrong
    results = {"random_forest": scored([0, 1, 2, 3, 4, 5]),
               "gradient_boosting": scored([0, 1, 2, 3, 4, 6, 7]),
               "convlstm": scored(list(range(10)))}
    cands = [as_cand("random_forest", "pixel", results["random_forest"]),
             as_cand("gradient_boosting", "pixel", results["gradient_boosting"])]
    kept, why = pick(cands, results)
    assert kept["architecture"] == "random_forest" and "no clear difference" in why
    assert cands[0]["beaten_by_best"] < SURE_BETTER
    # a network right on every field wins clearly
    cands.insert(0, as_cand("convlstm", "network", results["convlstm"]))
    kept, why = pick(cands, results)
    assert kept["architecture"] == "convlstm" and "highest" in why


def test_a_fold_that_would_outlast_the_budget_stops_within_its_first_epoch(field_dataset):
    """The budget is checked on the first batches, not after a first epoch that may itself take
    longer than the whole budget."""
    import time

    from landcover.config import load_config
    from landcover.dataset import open_dataset
    from landcover.network_training import PROJECT_AFTER, fit_fold_network

    cfg = load_config(None, ["train.model.architecture=convlstm", "train.model.filters=4",
                             "train.model.layers=1", "train.batch_size=2", "train.epochs=30",
                             "train.min_epoch_steps=200"])
    stats = {}
    predict = fit_fold_network(open_dataset(field_dataset), cfg, [],
                               deadline=time.monotonic() + 1.0, stats=stats)
    assert predict is None
    assert stats["batches"] == PROJECT_AFTER[0] + 1  # of the first epoch's 200 and more
