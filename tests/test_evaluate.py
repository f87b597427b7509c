"""landcover evaluate: confusion matrix against numpy, reference grids and vectors, Olofsson et al.
(2014) against the paper's worked example, the report folder and the CLI errors."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

from landcover.cli.main import cli
from landcover.evaluate import FILES, area_adjusted, evaluate, format_markdown
from landcover.scores import scores

CRS = "EPSG:32632"
X0, Y0, RES = 500_000.0, 5_000_000.0, 30.0
H, W = 12, 10
TRANSFORM = Affine(RES, 0, X0, 0, -RES, Y0)
TABLE = [{"code": 10, "name": "forest", "color": "#1b7837"},
         {"code": 20, "name": "water", "color": "#2166ac"},
         {"code": 30, "name": "crop", "color": "#f1a340"}]
CODES = [10, 20, 30]


# ------------------------------------------------------------------------------------------ data
def map_codes() -> np.ndarray:
    """The map: classes 10/20/30, nodata (255) on three pixels, an unknown code 99 on one."""
    a = np.random.default_rng(0).choice(CODES, size=(H, W), p=[0.5, 0.2, 0.3]).astype(np.uint8)
    a[0, :3] = 255
    a[5, 5] = 99
    return a


def write_raster(path: Path, array: np.ndarray, transform, *, crs=CRS, nodata=255,
                 tags: dict | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype=array.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(array, 1)
        if tags:
            dst.update_tags(**tags)
    return path


def write_map(path: Path, array: np.ndarray | None = None, *, tag: bool = True) -> Path:
    tags = {"LANDCOVER_CLASSES": json.dumps(TABLE)} if tag else None
    return write_raster(path, map_codes() if array is None else array, TRANSFORM, tags=tags)


def centres() -> tuple[np.ndarray, np.ndarray]:
    """Map pixel centres (x, y), each (H, W)."""
    cols, rows = np.meshgrid(np.arange(W), np.arange(H))
    return X0 + (cols + 0.5) * RES, Y0 - (rows + 0.5) * RES


def expected_confusion(map_a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Reference rows x map columns, counted pixel by pixel (no landcover code involved)."""
    cm = np.zeros((3, 3), np.int64)
    for m, r in zip(map_a.ravel(), ref.ravel()):
        if m in CODES and r in CODES:
            cm[CODES.index(r), CODES.index(m)] += 1
    return cm


def coarse_reference(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """60 m reference raster, origin shifted by one map pixel; expected codes on the map grid.

    Map pixel centres fall 15 m (a quarter of a reference pixel) from the nearest reference pixel
    edge, so nearest resampling has a single answer: the reference pixel holding the centre.
    """
    rh, rw, x0, y0 = 8, 7, X0 - 30, Y0 + 30
    ref = np.random.default_rng(1).choice([10, 20, 30, 0, 77], size=(rh, rw),
                                          p=[0.35, 0.2, 0.3, 0.1, 0.05]).astype(np.uint8)
    path = write_raster(tmp_path / "ref_60m.tif", ref, Affine(60, 0, x0, 0, -60, y0), nodata=0)
    x, y = centres()
    expected = ref[np.floor((y0 - y) / 60).astype(int), np.floor((x - x0) / 60).astype(int)]
    return path, expected


# ------------------------------------------------------------------ Olofsson et al. (2014), sec. 5
PAPER_NAMES = ["Deforestation", "Forest gain", "Stable forest", "Stable non-forest"]
PAPER_COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]  # map rows
PAPER_MAPPED = [200_000, 150_000, 3_200_000, 6_450_000]  # pixels of 30 m


def test_olofsson_2014_worked_example():
    """The numerical example of Olofsson et al. (2014), section 5 (Tables 8 and 9).

    Published values, to their published precision: user's accuracies 0.88 ± 0.07, 0.73 ± 0.10,
    0.93 ± 0.04, 0.96 ± 0.02; producer's accuracies 0.75 ± 0.21, 0.85 ± 0.23, 0.93 ± 0.03,
    0.96 ± 0.01; overall accuracy 0.95 ± 0.02; areas 21,158 ± 6,158 ha, 11,686 ± 3,756 ha,
    285,770 ± 15,510 ha, 581,386 ± 16,282 ha; Table 9 area proportions (4 decimals).
    Two published half-widths are not reproduced by eq. 7 as printed: forest gain ± 0.23 and
    stable non-forest ± 0.01 (eq. 7 gives 0.2544 and 0.0184; the R package mapaccuracy and the
    Python accuracyAssessmentTools get the same, the latter notes a rounding error in the paper).
    Those two are asserted at the eq. 7 values, computed by hand for forest gain (j = 2):
    N_.j = 150000*55/75 + 6450000*1/325 = 129846.15; P = 110000/129846.15 = 0.8472;
    U = 55/75; term 1 = 150000^2 (1-P)^2 U (1-U) / 74 = 1.389e6; term 2 = 6450000^2 (1/325)
    (324/325) / 324 = 3.939e8; V = (1.389e6 + P^2 3.939e8) / 129846.15^2 = 0.01685;
    1.96 sqrt(V) = 0.2544 (and 0.0184 for stable non-forest the same way).
    """
    r = area_adjusted(PAPER_COUNTS, PAPER_MAPPED, pixel_area=900.0, names=PAPER_NAMES)
    c = r["per_class"]
    ua = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
    pa = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)]  # paper: ± 0.23, ± 0.01
    area = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]
    for name, (u, uci), (p, pci), (a, aci) in zip(PAPER_NAMES, ua, pa, area):
        assert round(c[name]["users_accuracy"], 2) == u
        assert round(c[name]["users_accuracy_ci95"], 2) == uci
        assert round(c[name]["producers_accuracy"], 2) == p
        assert round(c[name]["producers_accuracy_ci95"], 2) == pci
        assert round(c[name]["area_ha"]) == a and round(c[name]["area_ha_ci95"]) == aci
        # hectares are pixels x 0.09 ha; mapped areas are 18,000 / 13,500 / 288,000 / 580,500 ha
        assert c[name]["area_pixels"] * 0.09 == pytest.approx(c[name]["area_ha"])
        assert c[name]["map_area_ha"] == PAPER_MAPPED[PAPER_NAMES.index(name)] * 0.09
    assert c["Forest gain"]["producers_accuracy_ci95"] == pytest.approx(0.2544, abs=1e-4)
    assert c["Stable non-forest"]["producers_accuracy_ci95"] == pytest.approx(0.0184, abs=1e-4)
    assert round(r["overall_accuracy"], 2) == 0.95 and round(r["overall_accuracy_ci95"], 2) == 0.02
    assert r["overall_accuracy"] == pytest.approx(0.9465, abs=1e-4)
    # deforestation in pixels: 235,086 ± 68,418 (= 21,158 ha / 0.09 ha)
    assert round(c["Deforestation"]["area_pixels"]) == 235_086
    assert round(c["Deforestation"]["area_pixels_ci95"]) == 68_418
    table9 = [[0.0176, 0, 0.0013, 0.0011], [0, 0.0110, 0.0016, 0.0024],
              [0.0019, 0, 0.2967, 0.0213], [0.0040, 0.0020, 0.0179, 0.6212]]
    assert np.round(r["error_matrix"]["area_proportions"], 4).tolist() == table9
    assert [round(c[n]["area_share"], 4) for n in PAPER_NAMES] == [0.0235, 0.0130, 0.3175, 0.6460]


def test_area_adjusted_orientation_on_a_census():
    """A reference covering every mapped pixel: the estimates equal the pixel-count figures.

    The confusion matrix is asymmetric, so passing it untransposed would fail."""
    cm = np.array([[50, 3, 7], [10, 20, 0], [2, 5, 40]])  # reference rows, map columns
    mapped = cm.sum(axis=0)
    r = area_adjusted(cm.T, mapped, names=["a", "b", "c"])
    s = scores(cm, ["a", "b", "c"])
    for name, i in zip("abc", range(3)):
        c = r["per_class"][name]
        assert c["users_accuracy"] == pytest.approx(s["per_class"][name]["precision"], abs=1e-6)
        assert c["producers_accuracy"] == pytest.approx(s["per_class"][name]["recall"], abs=1e-6)
        assert c["area_pixels"] == pytest.approx(cm[i].sum())  # the reference count
        assert c["area_ha"] is None  # no pixel area given
    assert r["overall_accuracy"] == pytest.approx(110 / 137)
    assert r["per_class"]["b"]["users_accuracy"] == pytest.approx(20 / 28)  # not 20 / 30


def test_area_adjusted_empty_and_small_classes_give_none_without_warnings():
    counts = np.array([[8, 2, 0, 0], [1, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # class 2 neither mapped nor sampled, class 3 not mapped: both weigh nothing
        r = area_adjusted(counts, [600, 400, 0, 0], names=list("abcd"))
        # class 2 mapped but never sampled: estimates needing every stratum are undefined
        u = area_adjusted(counts, [600, 400, 50, 0], names=list("abcd"))
        # class 1 sampled once: its standard errors are undefined, its estimates are not
        one = area_adjusted([[8, 2], [0, 1]], [600, 400], names=list("ab"))
    json.dumps([r, u, one], allow_nan=False)
    assert r["overall_accuracy"] == pytest.approx(0.6 * 0.8 + 0.4 * 5 / 6)
    assert r["per_class"]["c"]["users_accuracy"] is None
    assert r["per_class"]["c"]["producers_accuracy"] is None and r["unsampled_classes"] == []
    assert r["per_class"]["c"]["area_pixels"] == 0 and r["per_class"]["c"]["area_pixels_se"] == 0
    assert u["unsampled_classes"] == ["c"] and u["overall_accuracy"] is None
    assert u["per_class"]["a"]["users_accuracy"] == pytest.approx(0.8)
    assert u["per_class"]["a"]["area_pixels"] is None
    assert u["per_class"]["a"]["producers_accuracy"] is None
    assert one["per_class"]["b"]["users_accuracy"] == 1.0
    assert one["per_class"]["b"]["users_accuracy_se"] is None
    assert one["overall_accuracy"] == pytest.approx(0.6 * 0.8 + 0.4)
    assert one["overall_accuracy_se"] is None and one["per_class"]["a"]["area_share_se"] is None
    assert one["per_class"]["a"]["users_accuracy_se"] == pytest.approx(np.sqrt(0.8 * 0.2 / 9))


# --------------------------------------------------------------------------- raster references
def test_raster_reference_on_a_coarser_shifted_lattice(tmp_path):
    mp = write_map(tmp_path / "map.tif")
    ref, expected = coarse_reference(tmp_path)
    a = map_codes()
    r = evaluate(mp, ref, tmp_path / "acc", window=4)  # 3 x 3 windows, ragged at the edges
    cm = np.array(r["confusion_matrix"]["counts"])
    assert cm.tolist() == expected_confusion(a, expected).tolist()
    assert cm.sum() > 60 and (cm - np.diag(np.diag(cm))).sum() > 10  # errors to count
    assert r["reference_kind"] == "raster"
    px = r["pixels"]
    known_ref = np.isin(expected, CODES)
    assert px["map"] == H * W and px["map_nodata"] == 3 and px["map_unknown_code"] == 1
    assert px["map_unknown_codes"] == [99] and px["reference_unknown_codes"] == [77]
    assert px["reference_labelled"] == int((expected != 0).sum())
    assert px["reference_unknown_code"] == int((expected == 77).sum())
    assert px["excluded_map_nodata"] == int((known_ref & (a == 255)).sum())
    assert px["excluded_map_unknown_code"] == int((known_ref & (a == 99)).sum())
    bad_ref = (expected == 77) & np.isin(a, CODES)
    assert px["excluded_reference_unknown_code"] == int(bad_ref.sum())
    assert px["reference_labelled"] == (px["compared"] + px["excluded_map_nodata"]
                                        + px["excluded_map_unknown_code"]
                                        + px["reference_unknown_code"])
    # strata: map pixels per class over the whole map, reference or not
    adj = r["area_adjusted"]
    assert [adj["per_class"][c["name"]]["map_pixels"] for c in TABLE] == [
        int((a == code).sum()) for code in CODES]
    assert adj["pixel_area_m2"] == 900.0 and adj["map_area_ha"] == (H * W - 4) * 0.09
    for i, c in enumerate(TABLE):  # user's accuracy: within the map class (a column of cm)
        assert adj["per_class"][c["name"]]["users_accuracy"] == pytest.approx(
            cm[i, i] / cm[:, i].sum())
        assert adj["per_class"][c["name"]]["samples_mapped"] == cm[:, i].sum()
    # the same counts read in one window
    again = evaluate(mp, ref, tmp_path / "acc", overwrite=True)
    assert again["confusion_matrix"] == r["confusion_matrix"] and again["pixels"] == px


def test_raster_reference_in_another_crs(tmp_path):
    """A geographic (EPSG:4326) reference, warped onto the UTM map grid with nearest."""
    to_geo = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x, y = centres()
    lon, lat = to_geo.transform(x, y)
    dx = dy = 0.0004  # about 31 x 44 m
    lon0, lat0 = lon.min() - 0.00072, lat.max() + 0.00072
    fx, fy = (lon - lon0) / dx, (lat0 - lat) / dy
    margin = min(np.abs(fx - np.round(fx)).min(), np.abs(fy - np.round(fy)).min())
    assert margin > 0.1  # no map centre within 4 m of a reference pixel edge: one nearest answer
    rh, rw = int(fy.max()) + 2, int(fx.max()) + 2
    ref = np.random.default_rng(2).choice([10, 20, 30], size=(rh, rw)).astype(np.uint8)
    path = write_raster(tmp_path / "ref_geo.tif", ref,
                        Affine(dx, 0, lon0, 0, -dy, lat0), crs="EPSG:4326", nodata=0)
    expected = ref[np.floor(fy).astype(int), np.floor(fx).astype(int)]
    r = evaluate(write_map(tmp_path / "map.tif"), path, tmp_path / "acc", window=5)
    assert r["confusion_matrix"]["counts"] == expected_confusion(map_codes(), expected).tolist()


# --------------------------------------------------------------------------- vector references
def test_point_reference_in_another_crs(tmp_path):
    a = map_codes()
    # (row, col, reference code): hits, misses, a point on map nodata, one on the unknown map
    # code, one with an unknown reference code, one outside the map
    points = [(1, 1, 20), (2, 3, 10), (3, 3, 30), (4, 8, 10), (6, 2, 20), (7, 7, 30),
              (9, 0, 10), (11, 9, 30), (10, 4, 20), (0, 1, 10), (5, 5, 10), (8, 8, 77),
              (-3, 2, 10)]
    to_geo = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    geoms = [Point(*to_geo.transform(X0 + (c + 0.5) * RES, Y0 - (r + 0.5) * RES))
             for r, c, _ in points]
    path = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"code": [p[2] for p in points]}, geometry=geoms,
                     crs="EPSG:4326").to_file(path)
    expected = np.zeros((3, 3), np.int64)
    for r, c, code in points:
        if 0 <= r < H and code in CODES and a[r, c] in CODES:
            expected[CODES.index(code), CODES.index(a[r, c])] += 1
    res = evaluate(write_map(tmp_path / "map.tif"), path, tmp_path / "acc", window=4)
    assert res["reference_kind"] == "vector"
    assert res["confusion_matrix"]["counts"] == expected.tolist()
    px = res["pixels"]
    assert px["compared"] == 9 and px["reference_labelled"] == 12
    assert px["excluded_map_nodata"] == 1 and px["excluded_map_unknown_code"] == 1
    assert px["reference_unknown_code"] == 1 and px["reference_unknown_codes"] == [77]


def test_polygon_reference_with_column_and_layer(tmp_path):
    a = map_codes()

    def cells(r0, r1, c0, c1):  # rows r0..r1-1, columns c0..c1-1, on pixel edges
        return box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)

    blocks = [((0, 2, 0, 10), 20), ((2, 6, 1, 5), 10), ((7, 11, 5, 10), 30), ((6, 7, 0, 3), 30)]
    path = tmp_path / "polygons.gpkg"
    frame = gpd.GeoDataFrame({"site": ["lake", "wood", "field", "strip"],
                              "lc": [code for _, code in blocks]},
                             geometry=[cells(*b) for b, _ in blocks], crs=CRS)
    frame.to_file(path, layer="reference")
    frame.iloc[:1].to_file(path, layer="other")
    ref = np.zeros((H, W), np.uint8)
    for (r0, r1, c0, c1), code in blocks:
        ref[r0:r1, c0:c1] = code
    res = evaluate(write_map(tmp_path / "map.tif"), path, tmp_path / "acc", column="lc",
                   layer="reference", window=3)
    assert res["confusion_matrix"]["counts"] == expected_confusion(a, ref).tolist()
    assert res["pixels"]["excluded_map_nodata"] == 3  # the lake covers the nodata pixels
    assert res["pixels"]["compared"] == int((np.isin(ref, CODES) & np.isin(a, CODES)).sum())


# ------------------------------------------------------------------------------------------- CLI
def test_cli_writes_the_report(runner, tmp_path):
    mp = write_map(tmp_path / "map.tif")
    ref, expected = coarse_reference(tmp_path)
    out = tmp_path / "acc"
    result = runner.invoke(cli, ["evaluate", str(mp), "--reference", str(ref), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert "user's acc" in result.stdout and "producer's acc" in result.stdout
    assert "Area-adjusted (Olofsson et al. 2014" in result.stdout
    report = json.loads((out / "evaluation.json").read_text())
    cm = expected_confusion(map_codes(), expected)
    assert report["confusion_matrix"]["counts"] == cm.tolist()
    assert report["confusion_matrix"]["rows"] == "reference"
    assert report["class_table"] == {"source": "LANDCOVER_CLASSES tag", "classes": TABLE}
    assert report["scores"]["overall_accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-6)
    forest = report["scores"]["per_class"]["forest"]
    assert forest["users_accuracy"] == pytest.approx(cm[0, 0] / cm[:, 0].sum(), abs=1e-6)
    assert forest["producers_accuracy"] == pytest.approx(cm[0, 0] / cm[0].sum(), abs=1e-6)
    with open(out / "accuracy.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["class"] for row in rows] == ["forest", "water", "crop", "overall"]
    assert int(rows[0]["code"]) == 10 and int(rows[0]["reference_pixels"]) == cm[0].sum()
    assert float(rows[0]["users_accuracy"]) == pytest.approx(forest["users_accuracy"], rel=1e-5)
    assert float(rows[3]["overall_accuracy"]) == pytest.approx(
        report["scores"]["overall_accuracy"], rel=1e-5)
    assert float(rows[3]["map_area_ha"]) == pytest.approx((H * W - 4) * 0.09)
    adj = report["area_adjusted"]["per_class"]["forest"]
    assert float(rows[0]["estimated_area_ha"]) == pytest.approx(adj["area_ha"], rel=1e-5)
    assert float(rows[0]["estimated_area_ha_ci95"]) == pytest.approx(adj["area_ha_ci95"], rel=1e-5)
    md = (out / "accuracy.md").read_text()
    assert md == format_markdown(report)
    assert "| Class | User's accuracy | Producer's accuracy |" in md
    assert "| Class | Mapped area (ha) | Estimated area (ha) |" in md
    assert f"| forest | {cm[0, 0]:,d} | {cm[0, 1]:,d} | {cm[0, 2]:,d} | {cm[0].sum():,d} |" in md
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left

    again = runner.invoke(cli, ["evaluate", str(mp), "--reference", str(ref), "--out", str(out),
                                "--overwrite", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["confusion_matrix"] == report["confusion_matrix"]


def test_cli_classes_option_wins_and_replaces_a_missing_tag(runner, tmp_path):
    ref, expected = coarse_reference(tmp_path)
    (tmp_path / "classes.yaml").write_text(
        "classes:\n  - {code: 10, name: Wald}\n  - {code: 20, name: Wasser}\n"
        "  - {code: 30, name: Acker}\n")
    for name, tag in (("tagged.tif", True), ("untagged.tif", False)):
        mp = write_map(tmp_path / name, tag=tag)
        out = tmp_path / f"acc_{name}"
        result = runner.invoke(cli, ["evaluate", str(mp), "--reference", str(ref), "--out",
                                     str(out), "--classes", str(tmp_path / "classes.yaml"),
                                     "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["confusion_matrix"]["class_names"] == ["Wald", "Wasser", "Acker"]
        assert report["class_table"]["source"] == str(tmp_path / "classes.yaml")
        assert report["confusion_matrix"]["counts"] == expected_confusion(
            map_codes(), expected).tolist()


def _float_map(path: Path) -> Path:
    return write_raster(path, map_codes().astype("float32"), TRANSFORM)


def _far_reference(path: Path) -> Path:
    return write_raster(path, np.full((4, 4), 10, np.uint8),
                        Affine(60, 0, X0 + 100_000, 0, -60, Y0), nodata=0)


def _reference_on_nodata_only(path: Path) -> Path:
    ref = np.zeros((H, W), np.uint8)
    ref[0, :3] = 10  # labels only where the map has no data
    ref[5, 5] = 20  # and on the unknown map code
    return write_raster(path, ref, TRANSFORM, nodata=0)


@pytest.mark.parametrize("case, code, message", [
    ("missing map", 1, "no such map file"),
    ("unreadable map", 1, "cannot open the map"),
    ("float map", 1, "band 1 is float32, not a class map of uint8 codes"),
    ("missing reference", 1, "--reference"),
    ("reference elsewhere", 1, "do not overlap"),
    ("no class table", 1, "pass --classes classes.yaml"),
    ("out exists", 1, "already exists; pass --overwrite"),
    ("out parent missing", 1, "the output folder does not exist"),
    ("nothing in common", 1, "no pixel has both a map class and a reference class"),
])
def test_cli_errors_are_one_line_and_write_nothing(runner, tmp_path, case, code, message):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    mp = write_map(inputs / "map.tif")
    ref, _ = coarse_reference(inputs)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "acc"
    if case == "missing map":
        mp = inputs / "nope.tif"
    elif case == "unreadable map":
        mp = inputs / "broken.tif"
        mp.write_bytes(b"not a tiff at all")
    elif case == "float map":
        mp = _float_map(inputs / "float.tif")
    elif case == "missing reference":
        ref = inputs / "nope.gpkg"
    elif case == "reference elsewhere":
        ref = _far_reference(inputs / "far.tif")
    elif case == "no class table":
        mp = write_map(inputs / "untagged.tif", tag=False)
    elif case == "out exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "out parent missing":
        out = work / "missing" / "acc"
    elif case == "nothing in common":
        ref = _reference_on_nodata_only(inputs / "ref_nodata.tif")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = runner.invoke(cli, ["-q", "evaluate", str(mp), "--reference", str(ref), "--out",
                                 str(out)])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert "Traceback" not in result.output and result.stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if case == "out exists":
        assert (out / "keep.txt").read_text() == "mine"


def test_cli_usage_error_exits_2(runner, tmp_path):
    result = runner.invoke(cli, ["evaluate", str(write_map(tmp_path / "map.tif")), "--out",
                                 str(tmp_path / "acc")])
    assert result.exit_code == 2 and "--reference" in result.stderr
