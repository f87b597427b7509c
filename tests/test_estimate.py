"""Honest estimates: intervals over spatial groups that widen as groups shrink, folds of whole
groups, ties in validation scores broken by the loss, blocks fitted to the labelled area."""

from __future__ import annotations

import numpy as np
import pytest

from landcover.estimate import (describe, group_confusions, group_folds, interval_scores,
                                significantly_better)
from landcover.network_training import improves

NAMES = ["a", "b"]


def fields(n_groups: int, pixels: int = 4000, accuracy: float = 0.8, seed: int = 0):
    """``pixels`` labelled pixels in ``n_groups`` equal fields; each field is classified all right
    or all wrong (a classifier gets a field right or wrong as a whole), ``accuracy`` of them
    right."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_groups), pixels // n_groups)
    y = np.repeat(rng.integers(0, 2, n_groups), pixels // n_groups)
    right = np.repeat(rng.random(n_groups) < accuracy, pixels // n_groups)
    pred = np.where(right, y, 1 - y)
    return y, pred, group


def width(result, key="overall_accuracy"):
    lo, hi = result["intervals"][key]
    return hi - lo


def test_group_confusions_sum_to_the_pixel_confusion():
    y, pred, group = fields(20)
    ids, cms = group_confusions(y, pred, group, 2)
    assert len(ids) == 20 and cms.shape == (20, 2, 2)
    assert cms.sum() == len(y)
    assert cms.sum(axis=0)[0, 0] == int(((y == 0) & (pred == 0)).sum())


def test_intervals_widen_as_groups_shrink():
    widths = []
    for n in (200, 40, 8):
        y, pred, group = fields(n, seed=n)
        _, cms = group_confusions(y, pred, group, 2)
        r = interval_scores(cms, NAMES)
        lo, hi = r["intervals"]["overall_accuracy"]
        assert lo <= r["overall_accuracy"] <= hi
        widths.append(width(r))
    assert widths[0] < widths[1] < widths[2]
    # 4,000 pixels in 8 fields: far wider than a binomial interval over 4,000 independent pixels
    assert widths[2] > 10 * 2 * 1.96 * np.sqrt(0.8 * 0.2 / 4000)


def test_too_few_groups_are_not_enough_to_tell():
    y, pred, group = fields(2, accuracy=1.0)
    _, cms = group_confusions(y, pred, group, 2)
    r = interval_scores(cms, NAMES)
    assert r["overall_accuracy"] == 1.0 and not r["enough"]
    assert "not enough to tell" in describe(r)
    y, pred, group = fields(50)
    r = interval_scores(group_confusions(y, pred, group, 2)[1], NAMES)
    assert r["enough"] and "not enough" not in describe(r)
    assert r["intervals"]["per_class"]["a"]["enough"]


def test_a_rare_class_with_few_pixels_is_not_enough_to_tell():
    y, pred, group = fields(50)
    y = np.where(np.arange(len(y)) < 40, 2, y)  # 40 px of class c, in one field
    r = interval_scores(group_confusions(y, pred, group, 3)[1], NAMES + ["c"])
    assert not r["intervals"]["per_class"]["c"]["enough"]


def test_significantly_better_needs_clear_intervals():
    def res(v, ci, g=40):
        return {"macro_f1": v, "enough": g >= 5, "intervals": {"macro_f1": [v - ci, v + ci]}}

    assert significantly_better(res(0.9, 0.02), res(0.8, 0.02))
    assert not significantly_better(res(0.82, 0.05), res(0.8, 0.05))
    assert significantly_better(res(1.0, 0.0, g=2), res(0.8, 0.02)) is None


def test_folds_keep_groups_whole_and_every_class_in_training():
    rng = np.random.default_rng(1)
    group = np.repeat(np.arange(40), rng.integers(5, 50, 40))
    y = np.repeat(np.arange(40) % 4, np.bincount(group))  # each group one class, 10 of each
    fold = group_folds(group, y, 5, seed=0)
    assert set(fold.tolist()) == set(range(5))
    for g in range(40):  # whole groups
        assert len(set(fold[group == g].tolist())) == 1
    for f in range(5):  # every class keeps training pixels in every fold
        assert set(y[fold != f].tolist()) == {0, 1, 2, 3}
    assert (group_folds(group, y, 5, seed=0) == fold).all()
    assert group_folds(group[:60], y[:60], 5).max() + 1 <= len(np.unique(group[:60]))


def test_ties_in_validation_score_go_to_the_lower_loss_not_epoch_1():
    state = {"best": None}
    history = [(1.0, 0.025), (1.0, 0.010), (1.0, 0.012), (1.0, 0.002), (0.99, 0.001)]
    best_epoch = None
    for epoch, (score, loss) in enumerate(history, 1):
        if improves(state, score, loss):
            state.update(best=score, best_loss=loss)
            best_epoch = epoch
    assert best_epoch == 4
    assert improves({"best": 0.5, "best_loss": 0.1}, 0.6, 9.0)  # a higher score always wins


def test_blocks_shrink_to_the_labelled_area(field_series, tmp_path):
    """One block over the whole labelled area would leave validation and test empty: the block
    size is halved until there are enough blocks, and the summary says to what."""
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import find_scenes

    scenes, labels, classes = field_series
    cfg = load_config(None, ["prepare.patches.size=16", "prepare.patches.stride=16",
                             "prepare.split.block_size=1000", f"prepare.classes={classes}"])
    summary = prepare(find_scenes(scenes), str(labels), tmp_path / "ds.zarr", cfg,
                      progress=False)
    assert summary["split"]["block_size"] == 62  # 1000 -> 500 -> 250 -> 125 -> 62: 16 blocks
    assert all(v > 0 for v in summary["patches_per_split"].values())
    import zarr

    groups = np.asarray(zarr.open_group(str(tmp_path / "ds.zarr"), mode="r")["groups"][:])
    assert len(np.unique(groups[groups >= 0])) >= 10


def test_a_labelled_area_too_small_for_blocks_names_the_key(tmp_path, field_series):
    import rasterio

    from landcover.config import load_config
    from landcover.errors import DatasetError
    from landcover.prepare import prepare
    from landcover.scenes import find_scenes

    scenes, labels, classes = field_series
    small = tmp_path / "small.tif"
    with rasterio.open(labels) as src:
        codes, profile = src.read(1), src.profile
    keep = np.zeros_like(codes)
    keep[40:52, 40:52] = codes[40:52, 40:52]  # labels in one 12 x 12 px corner
    with rasterio.open(small, "w", **profile) as dst:
        dst.write(keep, 1)
    cfg = load_config(None, ["prepare.patches.size=16", "prepare.patches.stride=16",
                             f"prepare.classes={classes}"])
    with pytest.raises(DatasetError, match="prepare.split.block_size"):
        prepare(find_scenes(scenes), str(small), tmp_path / "ds.zarr", cfg, progress=False)


def test_a_batch_that_does_not_fit_is_halved_and_one_that_never_fits_is_refused(monkeypatch):
    """Batches that fit: halve train.batch_size (with a warning) rather than refuse; refuse
    naming the key only when one patch does not fit."""
    import types

    import psutil

    from landcover.config import load_config
    from landcover.errors import ConfigError
    from landcover.network_memory import batch_memory, fit_batch_size

    tc = load_config(None, ["train.batch_size=16", "train.model.architecture=convlstm"]).train
    ds = types.SimpleNamespace(input_shape=(47, 30, 30, 9), chunk=32)
    need_8 = batch_memory(dataclasses_replace(tc, 8), ds.input_shape, ds.chunk)
    need_16 = batch_memory(tc, ds.input_shape, ds.chunk)
    assert need_8 < need_16
    fake = types.SimpleNamespace(available=int((need_8 + need_16) / 2))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: fake)
    import landcover.network_memory

    said = []
    monkeypatch.setattr(landcover.network_memory.log, "warning", lambda msg, *a: said.append(msg % a))
    assert fit_batch_size(tc, ds) == 8
    assert len(said) == 1 and "batches of 8 instead" in said[0]
    fake.available = 10
    with pytest.raises(ConfigError, match="train.batch_size=1"):
        fit_batch_size(tc, ds)


def dataclasses_replace(tc, batch):
    import dataclasses

    return dataclasses.replace(tc, batch_size=batch)


def test_the_memory_estimate_no_longer_refuses_what_runs():
    """The 47-date, 30 px, batch 8 case that was refused for 25 GB: unet used 219 MiB there
    (benchmarks/train_memory.py); every architecture's estimate is now under 3 GB."""
    from landcover.config import load_config
    from landcover.network_memory import batch_memory

    for arch in ("convlstm", "unet", "unet_convlstm", "ltae", "utae"):
        tc = load_config(None, [f"train.model.architecture={arch}", "train.batch_size=8"]).train
        assert batch_memory(tc, (47, 30, 30, 9), 32, activations_only=True) < 3e9, arch


def test_few_group_intervals_hold_the_truth_about_95_percent_of_the_time():
    """Draw 10 fields from a population whose accuracy is known (0.8): the percentile bootstrap
    over 10 groups alone holds it well under 95 % of the time; the widened interval close to 95 %.
    Coverage over 400 draws has a standard error of about 1.1 points."""
    from landcover.estimate import few_groups_factor

    assert few_groups_factor(5) == pytest.approx(1.583, abs=1e-3)
    assert few_groups_factor(10) == pytest.approx(1.217, abs=1e-3)
    assert few_groups_factor(1000) == pytest.approx(1.0, abs=2e-3)
    held = {"plain": 0, "widened": 0}
    trials = 400
    for seed in range(trials):
        y, pred, group = fields(10, pixels=1000, accuracy=0.8, seed=1000 + seed)
        _, cms = group_confusions(y, pred, group, 2)
        r = interval_scores(cms, NAMES, seed=seed, draws=400)
        lo, hi = r["intervals"]["overall_accuracy"]
        held["widened"] += lo <= 0.8 <= hi
        boot = np.random.default_rng(seed).multinomial(10, np.full(10, 0.1), size=400)
        oa = (boot @ cms.reshape(10, 4))[:, [0, 3]].sum(axis=1) / 1000
        plo, phi = np.percentile(oa, [2.5, 97.5])
        held["plain"] += plo <= 0.8 <= phi
    assert held["plain"] / trials < 0.93  # the plain bootstrap undercovers with 10 groups
    assert held["widened"] / trials > held["plain"] / trials + 0.02
    assert held["widened"] / trials > 0.92


def _two_models(n_groups, extra, seed=0):
    """Two classifiers scored on the same fields, both right on the easiest 60 % of them (what
    the fields share: some are hard for both); b also on ``extra`` more."""
    rng = np.random.default_rng(seed)
    per = 100
    group = np.repeat(np.arange(n_groups), per)
    y = np.repeat(rng.integers(0, 2, n_groups), per)
    rank = np.repeat(rng.permutation(n_groups), per)
    right_a = rank < int(0.6 * n_groups)
    right_b = rank < int(0.6 * n_groups) + extra
    out = []
    for right in (right_a, right_b):
        ids, cms = group_confusions(y, np.where(right, y, 1 - y), group, 2)
        out.append(interval_scores(cms, NAMES, ids=ids))
    return out


def test_paired_draws_see_a_difference_that_overlapping_intervals_hide():
    from landcover.estimate import CONFUSIONS, superiority, without_confusions

    a, b = _two_models(30, 4)
    assert b["overall_accuracy"] > a["overall_accuracy"]
    assert superiority(b, a, "overall_accuracy") > 0.975  # b is never worse on a field
    one = _two_models(30, 1)  # one field of 30: missed by a third of the draws
    assert 0.7 < superiority(one[1], one[0], "overall_accuracy") < 0.9
    # the two intervals overlap: unpaired, no verdict could be given
    assert b["intervals"]["overall_accuracy"][0] < a["overall_accuracy"]
    assert significantly_better(b, a, "overall_accuracy")
    assert superiority(a, a, "overall_accuracy") == pytest.approx(0.5)
    assert superiority(without_confusions(a), b) is None
    assert CONFUSIONS in a and CONFUSIONS not in without_confusions({"x": [a]})["x"][0]


def test_the_estimate_is_the_test_split_where_it_is_large_else_the_folds():
    from landcover.scoring import estimate_record

    big, small = _two_models(30, 0)[0], _two_models(3, 0)[0]
    cv = _two_models(12, 0, seed=1)[0]
    rec = estimate_record({"test": big, "cross_validation": cv}, "kfold", 5)
    assert rec["split"] == "test" and rec["cross_validation"]["groups"] == 12
    rec = estimate_record({"test": small, "cross_validation": cv}, "kfold", 5)
    assert rec["split"] == "cross_validation" and rec["groups"] == 12
    assert estimate_record({"validation": small}, "holdout")["split"] == "validation"
