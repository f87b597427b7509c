"""``landcover check-samples``: mislabelled polygons of a seeded field scene come out suspect."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.conftest import one_line_error

SIZE, FIELD = 96, 8  # 12 x 12 fields of 8 x 8 px


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """The crop-field scenes (no rare class) and their fields as polygons: (scenes, polygons
    GeoDataFrame with ``field``, ``code``, ``name``)."""
    import geopandas as gpd
    import rasterio
    import shapely

    from landcover.synthetic import FIELD_CLASSES, write_field_series

    folder = tmp_path_factory.mktemp("check_fields")
    scenes, labels = write_field_series(folder / "scenes", size=SIZE, field=FIELD, seed=3,
                                        rare_share=0.0)
    with rasterio.open(labels) as src:
        codes, t, crs = src.read(1), src.transform, src.crs
    names = {c: n for c, n, _ in FIELD_CLASSES}
    rows = []
    for i in range(SIZE // FIELD):
        for j in range(SIZE // FIELD):
            x0, y0 = t @ (j * FIELD, i * FIELD)
            x1, y1 = t @ ((j + 1) * FIELD, (i + 1) * FIELD)
            code = int(codes[i * FIELD, j * FIELD])
            rows.append({"field": i * 100 + j, "code": code, "name": names[code],
                         "geometry": shapely.box(min(x0, x1), min(y0, y1), max(x0, x1),
                                                 max(y0, y1))})
    return scenes, gpd.GeoDataFrame(rows, crs=crs)


def flip(frame, count: int, seed: int = 0):
    """``frame`` with ``count`` fields given another class (seeded); and their field numbers."""
    from landcover.synthetic import FIELD_CLASSES

    names = {c: n for c, n, _ in FIELD_CLASSES}
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    chosen = rng.choice(len(frame), count, replace=False)
    for i in chosen:
        own = int(frame.loc[i, "code"])
        new = int(rng.choice([c for c in (1, 2, 3) if c != own]))
        frame.loc[i, ["code", "name"]] = [new, names[new]]
    return frame, set(frame.loc[chosen, "field"].tolist())


def run_check(scenes, labels, tmp_path, *extra):
    from landcover.check_samples import CheckSettings, check
    from landcover.config import load_config
    from landcover.scenes import find_scenes

    cfg = load_config(None, ["prepare.labels.name_column=name", *extra])
    return check(find_scenes(scenes, profile=cfg.scenes.profile), labels, cfg,
                 settings=CheckSettings(grid=12, iterations=20000))


def test_flipped_polygons_are_suspect(fields, tmp_path):
    scenes, frame = fields
    noisy, flipped = flip(frame, 8)
    path = tmp_path / "noisy.gpkg"
    noisy.to_file(path, layer="fields")
    result = run_check(scenes, path, tmp_path)
    table = result.table
    assert len(table) == len(frame)  # one sample per polygon
    suspect = set(table.loc[table["verdict"] == "suspect", "field"].astype(int))
    assert flipped <= suspect, (flipped - suspect, table[table["field"].isin(flipped)])
    assert len(suspect - flipped) <= 3, suspect - flipped
    truth = dict(zip(frame["field"], frame["code"]))
    rows = table[table["field"].isin(flipped)]
    assert (rows["suggested_code"].to_numpy() == [truth[f] for f in rows["field"]]).all()
    # prepare's entry point: the suspect polygons leave the labels, except a fixed test split's
    from landcover.check_samples import Suspects
    from landcover.config import LabelsConfig
    from landcover.labels import open_labels
    from landcover.scenes import find_scenes
    from landcover.stack import grid_of, stack_scenes

    grid = grid_of(stack_scenes(find_scenes(scenes)))
    labels = open_labels(path, grid, LabelsConfig(name_column="name"))
    suspects = Suspects(result.keys[table["verdict"].to_numpy() == "suspect"], result)
    kept = suspects.drop_from(labels)
    assert len(kept.frame) == len(frame) - len(suspect)
    assert not set(kept.extra["field"]) & suspect
    test = set(sorted(flipped)[:2])
    labels.extra["split"] = np.array(["test" if f in test else str(f) for f in labels.extra["field"]])
    spared = suspects.drop_from(labels, spare="split")
    assert set(spared.extra["field"]) & suspect == test


def test_clean_set_is_mostly_clean(fields, tmp_path):
    scenes, frame = fields
    path = tmp_path / "clean.gpkg"
    frame.to_file(path, layer="fields")
    table = run_check(scenes, path, tmp_path).table
    assert (table["verdict"] == "clean").mean() >= 0.95, table["verdict"].value_counts()
    assert (table["verdict"] == "suspect").sum() <= 1


def test_raster_labels_by_block(fields, tmp_path):
    """Raster labels: samples are the pixels of one class in one block; a block of a field whose
    pixels were recoded comes out suspect."""
    import rasterio

    scenes, frame = fields
    with rasterio.open(scenes[0].parent / "labels.tif") as src:
        codes, profile = src.read(1), src.profile
    crop = frame[frame["code"] > 1]["field"].to_numpy()
    i, j = divmod(int(crop[len(crop) // 2]), 100)  # a crop field recoded as background
    codes[i * FIELD:(i + 1) * FIELD, j * FIELD:(j + 1) * FIELD] = 1
    path = tmp_path / "labels.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes, 1)
    result = run_check(scenes, path, tmp_path, "prepare.split.block_size=8")
    table = result.table
    assert "block" in table.columns and len(table) == (SIZE // FIELD) ** 2
    block = i * (SIZE // FIELD) + j
    row = table[table["block"] == block].iloc[0]
    assert row["verdict"] == "suspect" and row["class_code"] == 1
    assert (table["verdict"] == "suspect").sum() <= 3
    # prepare's entry point: the suspect blocks read as unlabelled
    from landcover.check_samples import Suspects
    from landcover.config import LabelsConfig
    from landcover.labels import open_labels
    from landcover.scenes import find_scenes
    from landcover.stack import grid_of, stack_scenes

    keys = result.keys[table["verdict"].to_numpy() == "suspect"]
    grid = grid_of(stack_scenes(find_scenes(scenes)))
    labels = Suspects(keys, result).drop_from(open_labels(path, grid, LabelsConfig()))
    window = labels.codes(grid, 0, 0, SIZE, SIZE)
    assert (window[i * FIELD:(i + 1) * FIELD, j * FIELD:(j + 1) * FIELD] == -1).all()
    assert (window >= 0).mean() > 0.9


def test_leave_one_out():
    """A sample alone on a neuron among another class's neighbours is improbable, however many
    pixels it has there: its own pixels do not vouch for it."""
    from landcover.check_samples import neighbourhood_probabilities

    bmu = np.r_[np.arange(9).repeat(5), np.full(20, 4)]  # samples 0-8: class 0, 5 px per neuron
    sample = np.r_[np.arange(9).repeat(5), np.full(20, 9)]
    cls = np.r_[np.zeros(45, int), np.ones(20, int)]
    p = neighbourhood_probabilities(bmu, sample, cls, (3, 3), 2)
    assert p[9, 1] < 0.1 and p[9, 0] > 0.9
    assert (p[[0, 2, 6, 8], 0] > 0.5).all()  # far from the other class: their own
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_cli_writes_styled_geopackage(fields, tmp_path, runner):
    import geopandas as gpd

    from landcover.cli.main import cli

    scenes, frame = fields
    noisy, flipped = flip(frame, 6, seed=1)
    labels = tmp_path / "noisy.gpkg"
    noisy.to_file(labels, layer="fields")
    out = tmp_path / "suspect.gpkg"
    args = ["check-samples", str(scenes[0].parent), "--labels", str(labels), "--out", str(out),
            "--column", "field", "--grid", "8", "--per-sample", "20", "--set", "prepare.labels.name_column=name"]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "suspect_som.png").stat().st_size > 1000
    table = gpd.read_file(out, layer="samples")
    for column in ("field", "class_code", "class_name", "probability", "suggested_code",
                   "suggested_class", "suggested_probability", "verdict", "pixels"):
        assert column in table.columns, table.columns
    assert set(table["verdict"]) <= {"clean", "doubtful", "suspect"}
    assert flipped <= set(table.loc[table["verdict"] == "suspect", "field"].astype(int))
    assert table.geometry.geom_type.isin(["MultiPolygon"]).all()
    with sqlite3.connect(out) as db:
        rows = db.execute("SELECT f_table_catalog, f_table_schema, f_table_name, "
                          "f_geometry_column, useAsDefault, styleQML, styleSLD FROM layer_styles"
                          ).fetchall()
        geom = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = "
                          "'samples'").fetchone()[0]
        kind = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = "
                          "'layer_styles'").fetchone()[0]
    assert kind == "attributes"
    (_catalog, schema, name, column, default, qml, sld), = rows
    # what QGIS' OGR provider matches: empty schema, the layer and its geometry column, default
    assert (schema, name, column, default) == ("", "samples", geom, 1)
    renderer = ET.fromstring(qml.split("\n", 1)[1]).find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "verdict"
    values = {c.get("value") for c in renderer.iter("category")}
    assert {"clean", "doubtful", "suspect"} <= values
    assert "verdict" in sld and ET.fromstring(sld) is not None
    # refuses to overwrite (exit 1, one line); with --overwrite it runs again
    one_line_error(runner.invoke(cli, args), 1, "already exists")
    assert runner.invoke(cli, [*args, "--overwrite"]).exit_code == 0


@pytest.mark.parametrize("extra, flag", [
    (["--out", "x.shp"], "--out"),
    (["--out", "x.gpkg", "--suspect", "0.6", "--doubtful", "0.5"], "--suspect"),
    (["--out", "x.gpkg", "--grid", "1"], "--grid"),
])
def test_cli_usage_errors(fields, tmp_path, runner, monkeypatch, extra, flag):
    from landcover.cli.main import cli

    monkeypatch.chdir(tmp_path)
    scenes, frame = fields
    labels = tmp_path / "labels.gpkg"
    frame.to_file(labels)
    result = runner.invoke(cli, ["check-samples", str(scenes[0].parent), "--labels",
                                 str(labels), *extra])
    one_line_error(result, 2, flag)
    assert not list(tmp_path.glob("x*"))


def test_cli_unknown_column(fields, tmp_path, runner):
    from landcover.cli.main import cli

    scenes, frame = fields
    labels = tmp_path / "labels.gpkg"
    frame.to_file(labels)
    result = runner.invoke(cli, ["check-samples", str(scenes[0].parent), "--labels", str(labels),
                                 "--out", str(tmp_path / "s.gpkg"), "--column", "parcel"])
    one_line_error(result, 1, "parcel", "--column")


QGIS_SCRIPT = """
import os, sys
from qgis.core import QgsApplication, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsVectorLayer(sys.argv[1] + "|layername=samples", "samples", "ogr")
renderer = layer.renderer()
print("renderer", renderer.type(), renderer.classAttribute(), sep="\\t")
for c in renderer.categories():
    print(c.value(), c.symbol().color().name(), sep="\\t")
sys.stdout.flush()
os._exit(0)  # QGIS 3.22 may crash on a normal exit
"""


def test_qgis_opens_the_samples_coloured_by_verdict(tmp_path):
    """QGIS (headless) applies the style stored in the GeoPackage when it opens the layer."""
    import os
    import subprocess

    import geopandas as gpd
    import shapely

    from landcover.check_outputs import VERDICT_COLORS, write_table
    from landcover.check_samples import SampleCheck
    from tests.test_legend import _qgis_python

    exe = _qgis_python()
    if exe is None:
        pytest.skip("qgis cannot be imported (apt-get install qgis python3-qgis)")
    verdicts = ["clean", "doubtful", "suspect"]
    table = gpd.GeoDataFrame({"sample_id": [1, 2, 3], "verdict": verdicts},
                             geometry=[shapely.MultiPolygon([shapely.box(i, 0, i + 1, 1)])
                                       for i in range(3)], crs="EPSG:32632")
    summary = {"verdicts": {v: 1 for v in verdicts}}
    write_table(SampleCheck(table, None, None, None, summary, None, None), tmp_path / "s.gpkg")
    (tmp_path / "q.py").write_text(QGIS_SCRIPT)
    out = subprocess.run([exe, str(tmp_path / "q.py"), str(tmp_path / "s.gpkg")], check=False,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    lines = dict(line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line)
    assert lines.get("renderer") == "categorizedSymbol\tverdict", out.stdout + out.stderr
    assert {v: lines.get(v) for v in verdicts} == {v: VERDICT_COLORS[v] for v in verdicts}


def test_prepare_drops_the_suspect_samples_and_says_how_many(fields, tmp_path):
    """prepare.labels.drop_suspect: the flipped fields' pixels are not in the dataset, the summary
    says how many samples were dropped; off by default."""
    from landcover.config import load_config
    from landcover.prepare import prepare
    from landcover.scenes import find_scenes

    scenes, frame = fields
    noisy, flipped = flip(frame, 8)
    path = tmp_path / "noisy.gpkg"
    noisy.to_file(path, layer="fields")
    settings = ["prepare.labels.name_column=name", "prepare.check_samples.grid=12",
                "prepare.check_samples.iterations=20000", "prepare.split.by=column",
                "prepare.split.column=field"]
    counts = {}
    for drop in (False, True):
        cfg = load_config(None, [*settings, f"prepare.labels.drop_suspect={str(drop).lower()}"])
        summary = prepare(find_scenes(scenes, profile=cfg.scenes.profile), path,
                          tmp_path / f"d{drop}.zarr", cfg, progress=False)
        counts[drop] = sum(sum(v.values()) for v in summary["labelled_pixels_per_split"].values())
        assert ("suspect_samples" in summary) == drop
    dropped = summary["suspect_samples"]
    assert dropped["samples"] == len(frame) and len(flipped) <= dropped["dropped"] <= 11
    assert counts[True] < counts[False]
