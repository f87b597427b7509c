"""Bayesian smoothing: isolated pixels go, field edges stay, blocks leave no trace; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from landcover.cli.main import cli  # noqa: E402
from landcover.config import load_config  # noqa: E402
from landcover.errors import ConfigError  # noqa: E402
from landcover.postprocess import BayesSmooth, describe, smoothing_step  # noqa: E402

CLASSES = [{"code": 1, "name": "forest", "color": "#1b7837"},
           {"code": 4, "name": "crop", "color": "#f1c232"},
           {"code": 6, "name": "grassland", "color": "#9bd770"}]


def noisy_fields(size=96, noise=0.05, seed=0):
    """Three fields (left third forest, then crop, then grassland: straight edges at columns 32
    and 64), p = 0.7 for the true class; ``noise`` of the pixels are salt-and-pepper: another
    class at p = 0.6. Returns ``(prob (h, w, 3), truth index (h, w), noisy pixels bool)``."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(3), size // 3)[None, :].repeat(size, 0)
    prob = np.full((size, size, 3), 0.15, np.float32)
    np.put_along_axis(prob, truth[..., None], 0.7, axis=-1)
    noisy = rng.random((size, size)) < noise
    other = (truth + rng.integers(1, 3, truth.shape)) % 3
    flipped = np.full((size, size, 3), 0.2, np.float32)
    np.put_along_axis(flipped, other[..., None], 0.6, axis=-1)
    prob[noisy] = flipped[noisy]
    return prob, truth, noisy


def test_smoothing_removes_isolated_pixels_and_keeps_field_edges():
    prob, truth, noisy = noisy_fields()
    observed = np.ones(truth.shape, bool)
    before = prob.argmax(-1) != truth
    after_prob = BayesSmooth().apply(prob, observed)
    after = after_prob.argmax(-1) != truth
    # figures (seed 0): 461 of 9216 pixels (5.1 %) wrong before, none after
    assert before.sum() == noisy.sum() == 461
    assert after.sum() == 0
    # the edges stay where they were: the columns on both sides of each edge are right
    for edge in (32, 64):
        assert not after[:, edge - 1:edge + 1].any()
    np.testing.assert_allclose(after_prob.sum(-1), 1.0, atol=1e-5)
    # unobserved pixels keep their probabilities, and so does an observed pixel without observed
    # neighbours (its prior is itself)
    observed[40:50, 40:50] = False
    observed[45, 45] = True
    prob[45, 45] = (0.2, 0.2, 0.6)
    out = BayesSmooth().apply(prob, observed)
    np.testing.assert_array_equal(out[42, 42], prob[42, 42])
    np.testing.assert_allclose(out[45, 45], prob[45, 45], atol=1e-6)


def test_smoothing_is_the_same_in_any_block_with_its_halo():
    prob, _, _ = noisy_fields(seed=3)
    observed = np.ones(prob.shape[:2], bool)
    observed[10:20, 70:90] = False
    step = BayesSmooth(window=7, neigh_fraction=0.5, smoothness=(20.0, 5.0, 10.0))
    whole = step.apply(prob, observed)
    r = step.halo
    for r0, r1, c0, c1 in [(0, 40, 0, 50), (40, 96, 50, 96), (13, 77, 31, 65)]:
        R0, R1, C0, C1 = max(0, r0 - r), min(96, r1 + r), max(0, c0 - r), min(96, c1 + r)
        part = step.apply(prob[R0:R1, C0:C1], observed[R0:R1, C0:C1])
        np.testing.assert_array_equal(part[r0 - R0:r1 - R0, c0 - C0:c1 - C0], whole[r0:r1, c0:c1])


def test_config_builds_the_step_and_names_bad_keys():
    cfg = load_config(None, ["classify.smooth.enabled=true", "classify.smooth.window=5",
                             "classify.smooth.smoothness_by_class={6: 2.5}"])
    step = smoothing_step(cfg.classify.smooth, [1, 4, 6])
    assert (step.window, step.halo, step.smoothness) == (5, 2, (2.0, 2.0, 2.5))
    assert describe([step])[0]["name"] == "bayes_smooth"
    with pytest.raises(ConfigError, match="classify.smooth.smoothness_by_class: code 9"):
        smoothing_step(load_config(None, ["classify.smooth.smoothness_by_class={9: 1}"])
                       .classify.smooth, [1, 4, 6])
    for bad, key in [("window=4", "classify.smooth.window"),
                     ("neigh_fraction=0", "classify.smooth.neigh_fraction"),
                     ("smoothness=0", "classify.smooth.smoothness")]:
        with pytest.raises(ConfigError, match=key):
            load_config(None, [f"classify.smooth.{bad}"])


# ------------------------------------------------------------------------- landcover smooth
def write_probabilities(path, prob, observed):
    """A probability GeoTIFF as classify writes it (uint8, p x 250, uncertainty band, tags)."""
    from rasterio.transform import from_origin

    from landcover.maps import encode_probabilities

    q = encode_probabilities(prob, observed, "uint8", "entropy")
    with rasterio.open(path, "w", driver="GTiff", width=prob.shape[1], height=prob.shape[0],
                       count=q.shape[0], dtype="uint8", nodata=255, crs="EPSG:32632",
                       transform=from_origin(584280, 5420820, 30, 30)) as dst:
        dst.write(q)
        dst.update_tags(LANDCOVER_CLASSES=json.dumps(CLASSES), LANDCOVER_PRODUCT="probabilities")
        dst.update_tags(q.shape[0], UNCERTAINTY="entropy")
        dst.scales = [1 / 250] * q.shape[0]


def test_cli_smooth_writes_a_map_that_does_not_depend_on_the_blocks(runner, tmp_path):
    prob, truth, _ = noisy_fields(size=150, seed=2)
    observed = np.ones(truth.shape, bool)
    observed[:5, :] = False
    write_probabilities(tmp_path / "p.tif", prob, observed)
    results = {}
    for block in (64, 128):
        out = tmp_path / f"m{block}.tif"
        res = runner.invoke(cli, ["-q", "smooth", str(tmp_path / "p.tif"), "--out", str(out),
                                  "--set", f"classify.block_size={block}", "--json"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        assert summary["blocks"] == (9 if block == 64 else 4)
        with rasterio.open(out) as src:
            results[block] = src.read(1)
            assert src.tags()["LANDCOVER_PRODUCT"] == "classification"
        with rasterio.open(tmp_path / f"m{block}_probabilities.tif") as src:
            results[block, "p"] = src.read()
        for f in (".tif.aux.xml", ".qml", "_quicklook.png"):
            assert (tmp_path / f"m{block}{f}").exists(), f
    np.testing.assert_array_equal(results[64], results[128])
    np.testing.assert_array_equal(results[64, "p"], results[128, "p"])
    codes = np.array([1, 4, 6])[truth]
    ok = observed
    assert (results[64][ok] == codes[ok]).mean() > 0.995
    assert (results[64][~ok] == 255).all()
    # refuses to replace without --overwrite; a missing input is one line, exit 1
    res = runner.invoke(cli, ["smooth", str(tmp_path / "p.tif"), "--out",
                              str(tmp_path / "m64.tif")])
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = runner.invoke(cli, ["smooth", str(tmp_path / "none.tif"), "--out",
                              str(tmp_path / "x.tif")])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "no such file" in res.output
    assert not (tmp_path / "x.tif").exists()


def test_classify_smooth_is_bit_identical_for_two_block_sizes(field_series, field_bundle,
                                                              tmp_path):
    pytest.importorskip("tensorflow")
    from landcover import classify as lc

    def run(name, *sets):
        meta, cfg = lc.resolve_config(field_bundle, None, list(sets))
        summary = lc.classify(lc.model_scenes(field_series[0], meta, cfg), field_bundle,
                              tmp_path / f"{name}.tif", cfg, meta=meta, probabilities=True,
                              progress=False)
        with rasterio.open(tmp_path / f"{name}_probabilities.tif") as src:
            return summary, src.read()

    s64, p64 = run("b64", "classify.block_size=64", "classify.smooth.enabled=true")
    s192, p192 = run("b192", "classify.block_size=192", "classify.smooth.enabled=true")
    assert (s64["blocks"], s192["blocks"]) == (9, 1)
    assert s64["post"][0]["name"] == "bayes_smooth" and s64["post"][0]["halo"] == 2
    np.testing.assert_array_equal(p64, p192)
    _, plain = run("plain", "classify.block_size=192")
    assert (plain != p64).any()  # the smoothing did something
