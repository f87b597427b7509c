"""``landcover change``: two maps with planted changes give the exact transition matrix."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from landcover.classes import class_table  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from landcover.grid import Grid  # noqa: E402
from landcover.maps import read_category_names, write_array_map  # noqa: E402

TABLE = class_table([{"code": 1, "name": "water"}, {"code": 2, "name": "forest"},
                     {"code": 5, "name": "crop"}])
GRID = Grid("EPSG:32632", (30.0, 0.0, 584280.0, 0.0, -30.0, 5420820.0), 100, 60)


def planted():
    a = np.full((60, 100), 2, np.uint8)  # forest
    a[:, :20] = 1  # water
    a[:, 70:] = 5  # crop
    b = a.copy()
    b[10:20, 30:50] = 5  # 200 px forest -> crop (a clearing)
    b[40:45, 75:85] = 2  # 50 px crop -> forest
    b[0:3, 0:10] = 2  # 30 px water -> forest
    a[59, :] = 255  # 100 px nodata in A
    b[:, 99] = 255  # 60 px nodata in B (1 of them also nodata in A)
    return a, b


def test_change_gives_the_exact_matrix(runner, tmp_path, monkeypatch):
    a, b = planted()
    write_array_map(a, GRID, TABLE, tmp_path / "a.tif")
    write_array_map(b, GRID, TABLE, tmp_path / "b.tif")
    monkeypatch.chdir(tmp_path)  # relative paths
    res = runner.invoke(cli, ["change", "a.tif", "b.tif", "--out", "ch", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    expected = [[20 * 59 - 30, 30, 0],  # water: 1180 px, 30 -> forest
                [0, 50 * 59 - 200, 200],  # forest: 2950 px, 200 -> crop
                [0, 50, 29 * 59 - 50]]  # crop: cols 70..98 (99 is nodata in B), 50 -> forest
    assert result["matrix_pixels"] == expected
    assert result["pixels_changed"] == 280
    assert result["matrix_hectares"][1][2] == pytest.approx(200 * 0.09)
    out = tmp_path / "ch"
    with rasterio.open(out / "transitions.tif") as src:
        t = src.read(1)
        cmap = src.colormap(1)
    K = 3
    assert t[15, 40] == 1 * K + 2 and t[0, 0] == 0 * K + 1 and t[30, 40] == 1 * K + 1
    assert (t[59] == 255).all() and (t[:, 99] == 255).all()
    assert cmap[1 * K + 2][:3] == TABLE.classes[2].rgb  # a change: the colour it became
    assert read_category_names(out / "transitions.tif")[1 * K + 2] == "forest -> crop"
    rows = list(csv.DictReader(open(out / "transitions.csv")))
    assert {(r["from_class"], r["to_class"]): int(r["pixels"]) for r in rows}[
        ("crop", "forest")] == 50
    md = (out / "transitions.md").read_text()
    assert "| forest | 0 | 2,750 | 200 | 2,950 |" in md
    assert (out / "transitions_quicklook.png").exists() and (out / "transitions.qml").exists()
    assert not list(tmp_path.glob(".ch*"))  # no temporary left


def test_change_explains_a_mismatch(runner, tmp_path):
    a, b = planted()
    write_array_map(a, GRID, TABLE, tmp_path / "a.tif")
    other = Grid("EPSG:32632", (30.0, 0.0, 584310.0, 0.0, -30.0, 5420820.0), 100, 60)
    write_array_map(b, other, TABLE, tmp_path / "shifted.tif")
    res = runner.invoke(cli, ["change", str(tmp_path / "a.tif"), str(tmp_path / "shifted.tif"),
                              "--out", str(tmp_path / "ch")])
    assert res.exit_code == 1 and "not on the grid" in res.output and "transform" in res.output
    renamed = class_table([{"code": 1, "name": "lake"}, {"code": 2, "name": "forest"},
                           {"code": 5, "name": "crop"}])
    write_array_map(b, GRID, renamed, tmp_path / "renamed.tif")
    res = runner.invoke(cli, ["change", str(tmp_path / "a.tif"), str(tmp_path / "renamed.tif"),
                              "--out", str(tmp_path / "ch")])
    assert res.exit_code == 1 and "classes" in res.output and "lake" in res.output
    assert not (tmp_path / "ch").exists()
