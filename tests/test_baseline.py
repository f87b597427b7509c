"""The per-pixel random-forest baseline: one row per labelled grid pixel (overlapping windows
de-duplicated, ignored pixels left out), stratified subsampling, scores, the comparison table."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("sklearn")

from conftest import FIELD_PREPARE  # noqa: E402
from landcover.baseline import (  # noqa: E402
    class_counts,
    comparison_table,
    fit_baseline,
    pixel_table,
    quotas,
    verdict,
    verdict_line,
)
from landcover.dataset import open_dataset  # noqa: E402

OVERLAP = [*FIELD_PREPARE, "prepare.patches.stride=8"]  # 16-pixel windows every 8 pixels


@pytest.fixture(scope="module")
def overlapping(field_series, tmp_path_factory):
    """The crop fields prepared with windows overlapping by half (each pixel stored ~4 times)."""
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import LocalScenes

    scenes, labels, classes = field_series
    out = tmp_path_factory.mktemp("fields_overlap") / "ds.zarr"
    cfg = load_config(None, [*OVERLAP, f"prepare.classes={classes}"])
    prepare(LocalScenes(tuple(str(s) for s in scenes), cfg.scenes.profile), str(labels), out, cfg,
            progress=False)
    return out


def grid_positions(ds, split):
    """Naive reference: grid (row, col) -> (sample, i, j) of every usable stored pixel."""
    a, b = ds.split_range(split)
    g = ds.group
    rows, cols = g["row"][a:b], g["col"][a:b]
    lab, wt = g["labels"][a:b], g["weights"][a:b]
    stored = {}
    for n, i, j in zip(*np.nonzero((lab != ds.ignore_label) & (wt > 0))):
        stored.setdefault((int(rows[n] + i), int(cols[n] + j)), []).append((a + n, i, j))
    return stored


def test_overlapping_windows_give_one_row_per_grid_pixel(overlapping):
    ds = open_dataset(overlapping)
    for split in ("train", "validation", "test"):
        X, y, rc = pixel_table(ds, split, positions=True)
        stored = grid_positions(ds, split)
        copies = sum(len(v) for v in stored.values())
        assert copies > 2 * len(stored)  # the windows really overlap
        assert len(X) == len(y) == len(stored)
        assert {tuple(p) for p in rc.tolist()} == set(stored)
        assert X.shape[1] == ds.input_shape[0] * ds.input_shape[3] and X.dtype == np.float32
        assert class_counts(ds, split).sum() == len(stored)
    # the row is the stored features of that pixel, (T, F) flattened; every copy is identical
    inputs, labels = ds.group["inputs"][:], ds.group["labels"][:]
    X, y, rc = pixel_table(ds, "train", positions=True)
    row_of = {tuple(p): k for k, p in enumerate(rc.tolist())}
    for pos, copies in list(grid_positions(ds, "train").items())[::97]:
        k = row_of[pos]
        for n, i, j in copies:
            np.testing.assert_array_equal(X[k], inputs[n, :, i, j, :].reshape(-1))
            assert y[k] == labels[n, i, j]


def test_ignored_and_zero_weight_pixels_are_left_out(overlapping, tmp_path):
    import zarr

    path = tmp_path / "ds.zarr"
    shutil.copytree(overlapping, path)
    ds = open_dataset(path)
    a, b = ds.split_range("train")
    g = zarr.open_group(str(path), mode="r+")
    rows, cols = g["row"][a:b], g["col"][a:b]
    r0, c0 = int(rows[0]), int(cols[0])
    lab, wt = g["labels"][:], g["weights"][:]
    ii, jj = np.mgrid[:16, :16]
    for n in range(b - a):  # in every window covering them: ignore label / weight 0
        gr, gc = rows[n] + ii, cols[n] + jj
        lab[a + n][(gr >= r0) & (gr < r0 + 4) & (gc >= c0) & (gc < c0 + 4)] = ds.ignore_label
        wt[a + n][(gr >= r0 + 8) & (gr < r0 + 12) & (gc >= c0) & (gc < c0 + 4)] = 0
    # a pixel ignored in its first window only stays: it is labelled in the others
    lab[a, 0, 8] = ds.ignore_label
    g["labels"][:], g["weights"][:] = lab, wt

    ds = open_dataset(path)
    X, y, rc = pixel_table(ds, "train", positions=True)
    before = pixel_table(open_dataset(overlapping), "train")[0]
    assert len(X) == len(grid_positions(ds, "train")) == len(before) - 2 * 16
    got = {tuple(p) for p in rc.tolist()}
    assert not {(r0 + i, c0 + j) for i in range(4) for j in range(4)} & got
    assert not {(r0 + 8 + i, c0 + j) for i in range(4) for j in range(4)} & got
    assert (r0, c0 + 8) in got
    assert (y != ds.ignore_label).all()


def test_quotas_keep_rare_classes_and_the_budget():
    counts = np.array([100_000, 10, 5_000, 0])
    q = quotas(counts, 1_000)
    assert q.sum() == 1_000 and (q <= counts).all()
    assert q[1] == 10 and q[2] >= 1_000 // 6 and q[3] == 0  # 3 classes present: floor 166
    assert q[0] > q[2]  # the rest goes by size
    p = quotas(counts, 1_000, keep_rare=False)  # class shares kept (for scoring)
    assert p.sum() == 1_000 and p.tolist() == [952, 0, 48, 0]
    assert quotas(counts, None).tolist() == counts.tolist()
    assert quotas(counts, 10**6).tolist() == counts.tolist()


def test_stratified_subsample_keeps_the_rare_class_and_is_deterministic(field_dataset):
    ds = open_dataset(field_dataset)
    counts = class_counts(ds, "train")
    rare = ds.class_names.index("rare")
    assert counts[rare] / counts.sum() < 0.03
    X, y = pixel_table(ds, "train", max_pixels=2_000, seed=3)
    assert len(X) == len(y) == 2_000
    per_class = np.bincount(y, minlength=ds.num_classes)
    assert per_class[rare] >= 2_000 // (2 * ds.num_classes)  # 250 of its 496, not 2% of 2000
    assert (per_class > 0).all()
    X2, y2, rc2 = pixel_table(ds, "train", max_pixels=2_000, seed=3, positions=True)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    _, _, rc4 = pixel_table(ds, "train", max_pixels=2_000, seed=4, positions=True)
    assert not np.array_equal(rc2, rc4)
    assert len({tuple(p) for p in rc2.tolist()}) == 2_000  # drawn without replacement
    with pytest.raises(ValueError, match="max_pixels"):
        pixel_table(ds, "train", max_pixels=0)


def test_random_forest_learns_the_fields(field_dataset):
    """Per pixel, the 4-date series separates crop A from crop B (no single date does)."""
    ds = open_dataset(field_dataset)
    result = fit_baseline(ds, n_estimators=30, max_pixels=5_000, seed=0, n_jobs=2)
    assert result["model"] == "random_forest" and result["n_estimators"] == 30
    assert result["train_pixels"] == 5_000 and result["seconds"] > 0
    assert result["subsampled"] == {"train": {"usable_pixels": int(class_counts(ds, "train").sum()),
                                              "used_pixels": 5_000}}
    for split in ("validation", "test"):
        s = result[split]
        assert s["pixels"] == class_counts(ds, split).sum()  # all pixels, de-duplicated
        majority = max(c["support"] for c in s["per_class"].values()) / s["pixels"]
        assert s["overall_accuracy"] > majority + 0.2
        assert s["macro_f1"] > 0.7
        assert min(s["per_class"][c]["f1"] for c in ("crop_a", "crop_b")) > 0.9
    # large evaluation splits are subsampled keeping class shares, and the result says so
    small = fit_baseline(ds, n_estimators=5, max_pixels=1_000, seed=0, n_jobs=2,
                         eval_max_pixels=1_000)
    for split in ("validation", "test"):
        assert small[split]["pixels"] == 1_000
        assert small["subsampled"][split] == {
            "usable_pixels": int(class_counts(ds, split).sum()), "used_pixels": 1_000}


def scores_of(oa, f1, per_class, ci=None, groups=None):
    """Scores; with ``ci`` (half-width) intervals of that width around OA and macro F1, from
    ``groups`` groups (enough from 5)."""
    out = {"overall_accuracy": oa, "macro_f1": f1, "pixels": 1000,
           "per_class": {k: {"f1": v} for k, v in per_class.items()}}
    if ci is not None:
        out.update(groups=groups, enough=groups >= 5, intervals={
            "overall_accuracy": [oa - ci, oa + ci],
            "macro_f1": None if f1 is None else [f1 - ci, f1 + ci], "per_class": {}})
    return out


def test_verdict_without_intervals_needs_both_oa_and_macro_f1():
    base = scores_of(0.80, 0.70, {})
    assert verdict(scores_of(0.85, 0.75, {}), base)["better"] is True
    assert verdict(scores_of(0.85, 0.69, {}), base)["better"] is False  # macro F1 below
    assert verdict(scores_of(0.79, 0.90, {}), base)["better"] is False  # OA below
    assert verdict(scores_of(0.80, 0.70, {}), base)["better"] is True  # a tie is not below
    assert verdict(scores_of(0.80, None, {}), base)["better"] is None


def test_verdict_with_intervals_says_better_only_beyond_them():
    base = scores_of(0.80, 0.70, {}, ci=0.02, groups=40)
    clear = verdict(scores_of(0.90, 0.85, {}, ci=0.02, groups=40), base)
    assert clear["better"] is True and clear["clear"]
    within = verdict(scores_of(0.81, 0.71, {}, ci=0.02, groups=40), base)
    assert within["better"] is None  # inside the intervals: no clear difference
    worse = verdict(scores_of(0.70, 0.60, {}, ci=0.02, groups=40), base)
    assert worse["better"] is False and worse["clear"]
    # a perfect score on two polygons is not a verdict
    tiny = verdict(scores_of(1.0, 1.0, {}, ci=0.0, groups=2), base)
    assert tiny["better"] is None and not tiny["enough"]
    assert "not enough to tell" in verdict_line("validation", tiny)
    assert "no clear difference" in verdict_line("test", within)


def test_comparison_table_rows_columns_and_verdicts():
    names = ["water", "forest"]
    network = {"metrics": {
        "validation": scores_of(0.912, 0.900, {"water": 0.95, "forest": 0.85}),
        "test": scores_of(0.850, 0.800, {"water": 0.90, "forest": 0.70})}}
    baseline = {"model": "random_forest", "train_pixels": 10, "subsampled": {},
                "test": scores_of(0.870, 0.850, {"water": 0.92, "forest": None})}
    text = comparison_table(network, baseline, names)
    assert "### test" in text and "validation" not in text  # only splits scored by both
    lines = text.splitlines()
    assert "| | network | random forest | difference |" in lines
    assert "| OA | 0.850 | 0.870 | -0.020 |" in lines
    assert "| macro F1 | 0.800 | 0.850 | -0.050 |" in lines
    assert "| F1 water | 0.900 | 0.920 | -0.020 |" in lines
    assert "| F1 forest | 0.700 | - | - |" in lines
    assert ("test: the network is NOT better than the random forest on this data "
            "(OA -0.020, macro F1 -0.050)") in text
    assert "architecture=auto" in text

    baseline["validation"] = scores_of(0.881, 0.880, {"water": 0.9, "forest": 0.86})
    text = comparison_table(network["metrics"], baseline, names)  # {split: scores} works too
    assert text.index("### validation") < text.index("### test")
    assert ("validation: the network is better than the random forest (OA +0.031, "
            "macro F1 +0.020)") in text
    assert "| F1 forest | 0.850 | 0.860 | -0.010 |" in text.splitlines()
    assert "No split" in comparison_table({"metrics": {}}, baseline, names)
    # with intervals: shown in the cells, and a 2-group split is not enough to tell
    small = {"validation": scores_of(1.0, 1.0, {"water": 1.0}, ci=0.0, groups=2)}
    rf = {"validation": scores_of(0.9, 0.8, {"water": 0.9}, ci=0.05, groups=2)}
    text = comparison_table(small, rf, names)
    assert "| OA | 1.000 (1.000-1.000) not enough to tell |" in text
    assert "not enough to tell whether the network is better" in text
    named = comparison_table(small, rf, names, ("gradient boosting", "scikit-learn forest"))
    assert "| | gradient boosting | scikit-learn forest | difference |" in named
    assert "whether the gradient boosting is better than the scikit-learn forest" in named
