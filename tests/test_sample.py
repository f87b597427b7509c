"""``landcover sample``: Olofsson/Cochran sample sizes, stratified draws that recover known areas,
the most uncertain pixels, and evaluate reading the filled-in sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
gpd = pytest.importorskip("geopandas")

from landcover.classes import class_table  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from landcover.evaluate import area_adjusted  # noqa: E402
from landcover.products import open_map  # noqa: E402
from landcover.grid import Grid  # noqa: E402
from landcover.maps import write_array_map  # noqa: E402
from landcover.sample import allocate, cochran_n, draw_stratified, sample  # noqa: E402

TABLE = class_table([{"code": 1, "name": "water"}, {"code": 2, "name": "forest"},
                     {"code": 3, "name": "crop"}])


def test_sample_sizes_match_the_hand_worked_olofsson_example():
    # Olofsson et al. (2014), section 5.1: strata deforestation, forest gain, stable forest,
    # stable non-forest; W = 0.02, 0.015, 0.320, 0.645; expected U = 0.7, 0.6, 0.9, 0.95;
    # S(O) = 0.01. By hand: sum W_i S_i = 0.02 x 0.4583 + 0.015 x 0.4899 + 0.32 x 0.3
    # + 0.645 x 0.2179 = 0.25309; n = (0.25309 / 0.01)^2 = 640.5 -> 641 (the paper's n).
    w, u = [0.02, 0.015, 0.320, 0.645], [0.7, 0.6, 0.9, 0.95]
    assert cochran_n(w, u, 0.01) == 641
    # 75 to each rare stratum, the remaining 491 in proportion: 491 x 0.320/0.965 = 162.8 -> 163,
    # 491 x 0.645/0.965 = 328.2 -> 328
    assert allocate(641, w, "rare-min", 75, 0.1).tolist() == [75, 75, 163, 328]
    # proportional: 12.82, 9.615, 205.12, 413.445 -> largest remainders
    assert allocate(641, w, "proportional").tolist() == [13, 10, 205, 413]
    assert allocate(641, w, "proportional", available=[5, 100, 1000, 1000]).tolist()[0] == 5


def known_maps(size=150, seed=0):
    """A truth of three classes (water 10 %, forest 40 %, crop 50 % as bands) and a map with known
    errors: 20 % of the forest mapped as crop, 10 % of the crop as forest, 30 % of the water as
    forest. Returns ``(truth codes, map codes)``."""
    rng = np.random.default_rng(seed)
    truth = np.full((size, size), 3, np.uint8)
    truth[:, : size // 10] = 1
    truth[:, size // 10: size // 2] = 2
    mapped = truth.copy()
    r = rng.random(truth.shape)
    mapped[(truth == 2) & (r < 0.2)] = 3
    mapped[(truth == 3) & (r < 0.1)] = 2
    mapped[(truth == 1) & (r < 0.3)] = 2
    return truth, mapped


def write(path, codes):
    grid = Grid("EPSG:32632", (30.0, 0.0, 584280.0, 0.0, -30.0, 5420820.0), codes.shape[1],
                codes.shape[0])
    write_array_map(codes, grid, TABLE, path)
    return path


def test_the_area_estimates_cover_the_true_areas(tmp_path):
    """A simulation: stratified samples of 400 points from a map with known errors; the 95 %
    intervals of the estimated class areas hold the true areas in about 95 % of the draws
    (60 draws, seeds 0..59)."""
    truth, mapped = known_maps()
    cmap = open_map(write(tmp_path / "map.tif", mapped))
    pixels = np.bincount(mapped.ravel(), minlength=4)[1:]
    true_area = np.bincount(truth.ravel(), minlength=4)[1:]
    n = allocate(400, pixels / pixels.sum(), "rare-min", 50, 0.15)
    hits = np.zeros(3)
    for seed in range(60):
        drawn = draw_stratified(cmap, TABLE, pixels, n, seed=seed)
        assert np.bincount([i for _, _, i in drawn], minlength=3).tolist() == n.tolist()
        assert all(mapped[r, c] == TABLE.codes[i] for r, c, i in drawn)
        counts = np.zeros((3, 3))
        for r, c, i in drawn:
            counts[i, TABLE.codes.index(int(truth[r, c]))] += 1
        est = area_adjusted(counts, pixels, names=TABLE.names)["per_class"]
        for j, name in enumerate(TABLE.names):
            hits[j] += abs(est[name]["area_pixels"] - true_area[j]) <= \
                est[name]["area_pixels_ci95"]
    coverage = hits / 60
    assert (coverage >= 0.85).all(), coverage
    # the map itself is biased: forest is over-mapped by the errors planted
    assert pixels[1] != true_area[1]


def test_cli_sample_then_evaluate_the_filled_sample(runner, tmp_path, monkeypatch):
    truth, mapped = known_maps(seed=1)
    write(tmp_path / "map.tif", mapped)
    monkeypatch.chdir(tmp_path)  # a relative --out
    res = runner.invoke(cli, ["sample", "map.tif", "--out", "s.gpkg", "--target-se", "0.02",
                              "--expected-ua", "0.85", "--expected-ua-class", "1=0.7",
                              "--min-per-class", "40", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "Cochran/Olofsson n =" in res.output and "exp. UA" in res.output
    frame = gpd.read_file(tmp_path / "s.gpkg", layer="sample")
    assert frame["reference"].isna().all() and len(frame) > 100
    assert frame.crs.to_epsg() == 32632
    assert (frame["map_code"] == frame["stratum"]).all()
    # fill in the reference (what an analyst does in QGIS); leave three points empty
    frame["reference"] = [int(truth[r, c]) for r, c in zip(frame["row"], frame["col"])]
    frame.loc[:2, "reference"] = None
    frame.to_file(tmp_path / "filled.gpkg", layer="sample", driver="GPKG")
    res = runner.invoke(cli, ["evaluate", str(tmp_path / "map.tif"), "--reference",
                              str(tmp_path / "filled.gpkg"), "--out", str(tmp_path / "acc"),
                              "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["pixels"]["compared"] == len(frame) - 3
    adj = result["area_adjusted"]["per_class"]
    true_area = np.bincount(truth.ravel(), minlength=4)[1:]
    for j, name in enumerate(TABLE.names):
        assert adj[name]["map_pixels"] == int((mapped == TABLE.codes[j]).sum())  # strata: map
        assert abs(adj[name]["area_pixels"] - true_area[j]) <= 2 * adj[name]["area_pixels_ci95"]
    # errors: a bad target, an output that exists
    res = runner.invoke(cli, ["sample", str(tmp_path / "map.tif"), "--out",
                              str(tmp_path / "t.gpkg"), "--target-se", "0"])
    assert res.exit_code == 2 and "--target-se" in res.output
    res = runner.invoke(cli, ["sample", str(tmp_path / "map.tif"), "--out",
                              str(tmp_path / "s.gpkg")])
    assert res.exit_code == 1 and "--overwrite" in res.output


def test_uncertainty_design_takes_the_most_uncertain_places_spaced_apart(tmp_path):
    from test_smooth import CLASSES, write_probabilities  # noqa: PLC0415

    size = 80
    prob = np.zeros((size, size, 3), np.float32)
    prob[..., 0] = 0.9
    prob[..., 1:] = 0.05
    spots = [(10, 10), (10, 13), (40, 40), (70, 20), (60, 70)]  # (10, 13) is too close to (10, 10)
    for k, (r, c) in enumerate(spots):
        prob[r, c] = (0.34, 0.33, 0.33) if k != 1 else (0.4, 0.35, 0.25)
    observed = np.ones((size, size), bool)
    write_probabilities(tmp_path / "m_probabilities.tif", prob, observed)
    grid = Grid("EPSG:32632", (30.0, 0.0, 584280.0, 0.0, -30.0, 5420820.0), size, size)
    codes = np.asarray([c["code"] for c in CLASSES], np.uint8)[prob.argmax(-1)]
    write_array_map(codes, grid, class_table(CLASSES), tmp_path / "m.tif")
    result = sample(tmp_path / "m.tif", tmp_path / "u.gpkg", design="uncertainty", count=4,
                    spacing=5)
    frame = gpd.read_file(tmp_path / "u.gpkg")
    got = sorted(zip(frame["row"], frame["col"]))
    assert result["points"] == 4 and got == sorted(s for k, s in enumerate(spots) if k != 1)
    assert frame["uncertainty"].min() > 0.9 and "p_forest" in frame
