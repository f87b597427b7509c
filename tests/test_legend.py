"""Legends that survive: GDAL category names and a RAT beside the map, colours from class names,
a quicklook with coordinates, scale bar, CRS and a distinct nodata."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from landcover.classes import PALETTE, class_table, color_for_name  # noqa: E402
from landcover.grid import Grid  # noqa: E402
from landcover.maps import (NODATA_CHECKER, legend_xml, nice_length, quicklook_rgba,  # noqa: E402
                            read_category_names, write_array_map, write_quicklook)

DEMO = class_table([{"code": c, "name": n} for c, n in
                    [(1, "water"), (2, "forest"), (3, "urban"), (4, "summer_crop"),
                     (5, "spring_crop"), (6, "grassland"), (7, "wetland")]])


def rgb(color):
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def small_map(tmp_path, crs="EPSG:32632", res=30.0, origin=(584280.0, 5420820.0)):
    codes = np.repeat(np.arange(1, 8, dtype=np.uint8), 8)[None, :].repeat(40, 0)
    codes[:4] = 255  # a band of nodata
    grid = Grid(crs, (res, 0.0, origin[0], 0.0, -res, origin[1]), codes.shape[1], codes.shape[0])
    path = tmp_path / "map.tif"
    write_array_map(codes, grid, DEMO, path, legend=Path(str(path) + ".aux.xml"))
    return path, codes


# ------------------------------------------------------------------------------------ colours
def test_colours_come_from_class_names():
    c = {cl.name: rgb(cl.color) for cl in DEMO.classes}
    r, g, b = c["water"]
    assert b > r + 80 and b > g, "water is blue"
    r, g, b = c["forest"]
    assert g > r + 60 and g > b + 40 and g < 160, "forest is dark green"
    for crop in ("summer_crop", "spring_crop"):
        r, g, b = c[crop]
        assert r > 200 and g > 120 and b < 80, f"{crop} is yellow/orange"
    assert c["summer_crop"] != c["spring_crop"], "two crop classes get two shades"
    r, g, b = c["urban"]
    assert r > g + 60 and r > b + 60, "urban is red"
    assert len(set(DEMO.colors)) == len(DEMO)
    assert color_for_name("Built-up area") and color_for_name("Open water")
    assert color_for_name("seasonal_thing") is None  # "sea" only as a whole word


def test_unknown_names_take_the_palette_and_given_colours_win():
    t = class_table([{"code": 1, "name": "alpha"}, {"code": 2, "name": "water", "color": "#ff0000"},
                     {"code": 3, "name": "beta"}])
    assert [c.color for c in t.classes] == [PALETTE[0], "#ff0000", PALETTE[1]]


# --------------------------------------------------------------------------------- the legend
def test_the_map_carries_category_names_and_a_rat_beside_it(tmp_path):
    path, _ = small_map(tmp_path)
    assert read_category_names(path) == {c.code: c.name for c in DEMO.classes}
    band = ET.parse(str(path) + ".aux.xml").getroot().find("PAMRasterBand")
    cats = [c.text or "" for c in band.find("CategoryNames")]
    assert cats == ["", *DEMO.names]  # one per value from 0
    rat = band.find("GDALRasterAttributeTable")
    assert rat.get("tableType") == "thematic"
    rows = [[f.text for f in row] for row in rat.findall("Row")]
    assert rows[0] == ["1", "water", *map(str, rgb(DEMO.classes[0].color)), "255"]
    with rasterio.open(path) as src:  # GDAL opens the map with its sidecar, colours unchanged
        assert src.colormap(1)[1][:3] == rgb(DEMO.classes[0].color)
        assert any(f.endswith(".aux.xml") for f in src.files)
    assert legend_xml(DEMO).startswith("<PAMDataset>")


def test_the_colour_table_stops_at_the_largest_code_for_qgis(tmp_path):
    """QGIS 3.22 lists one legend entry per colour-table entry: a TIFF colour table has 256 (249
    unused codes in the legend), so the colours are in the sidecar, values 0..max(code) only."""
    path, _ = small_map(tmp_path)
    with rasterio.open(path) as src:
        cmap = src.colormap(1)
        assert src.colorinterp[0].name == "palette"
    assert sorted(cmap) == list(range(max(DEMO.codes) + 1))
    assert cmap[0][3] == 0 and all(cmap[c.code] == (*rgb(c.color), 255) for c in DEMO.classes)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(path, alone / "map.tif")  # the TIFF itself holds no colour table of 256 entries
    with rasterio.open(alone / "map.tif") as src, pytest.raises(ValueError):
        src.colormap(1)
    band = ET.parse(str(path) + ".aux.xml").getroot().find("PAMRasterBand")
    assert len(band.find("ColorTable")) == len(band.find("CategoryNames")) == max(DEMO.codes) + 1
    assert len(band.find("GDALRasterAttributeTable").findall("Row")) == len(DEMO)


def test_a_map_without_a_legend_keeps_its_colours_in_the_tiff(tmp_path):
    codes = np.array([[1, 2], [3, 255]], np.uint8)
    grid = Grid("EPSG:32632", (30.0, 0.0, 584280.0, 0.0, -30.0, 5420820.0), 2, 2)
    write_array_map(codes, grid, DEMO, tmp_path / "m.tif")
    assert not (tmp_path / "m.tif.aux.xml").exists()
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.colormap(1)[2][:3] == rgb(DEMO.classes[1].color)


def test_classify_lists_the_legend_among_its_outputs(tmp_path):
    from landcover.products import output_paths

    paths = output_paths(tmp_path / "map.tif", False, True)
    assert paths["legend"] == (tmp_path / "map.tif.aux.xml").absolute()


QGIS_SCRIPT = """
import os, sys
from qgis.core import QgsApplication, QgsRasterLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsRasterLayer(sys.argv[1], "map")
renderer = layer.renderer()
for c in renderer.classes():
    print(int(c.value), c.label, sep="\\t")
sys.stdout.flush()
os._exit(0)  # QGIS 3.22 may crash on a normal exit
"""


def _qgis_python():
    for exe in dict.fromkeys([sys.executable, shutil.which("python3"), "/usr/bin/python3"]):
        if exe and Path(exe).exists() and subprocess.run(
                [exe, "-c", "import qgis.core"], capture_output=True, timeout=60).returncode == 0:
            return exe
    return None


def test_qgis_shows_the_class_names_without_the_qml(tmp_path):
    exe = _qgis_python()
    if exe is None:
        pytest.skip("qgis cannot be imported (apt-get install qgis python3-qgis)")
    path, _ = small_map(tmp_path)
    assert not path.with_suffix(".qml").exists()
    copy = tmp_path / "copied"
    copy.mkdir()  # a map copied with its sidecar but without the .qml
    shutil.copy(path, copy / "lc.tif")
    shutil.copy(str(path) + ".aux.xml", copy / "lc.tif.aux.xml")
    (tmp_path / "q.py").write_text(QGIS_SCRIPT)
    out = subprocess.run([exe, str(tmp_path / "q.py"), str(copy / "lc.tif")], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    labels = {int(k): v for k, v in (line.split("\t") for line in out.stdout.splitlines()
                                      if "\t" in line)}
    assert {k: v for k, v in labels.items() if k in DEMO.codes} == \
        {c.code: c.name for c in DEMO.classes}, out.stdout + out.stderr
    # one entry per value from 0 to the largest code (QGIS 3.22 lists every colour-table entry;
    # a TIFF colour table listed 256): here the classes 1..7 and value 0
    assert sorted(labels) == list(range(max(DEMO.codes) + 1)), labels


# ------------------------------------------------------------------------------- the quicklook
def test_quicklook_nodata_is_distinct_from_the_page_and_every_class():
    codes = np.array([[1, 2, 255, 255], [255, 9, 3, 255]], np.uint8)
    rgba = quicklook_rgba(codes, DEMO, cell=1)
    nodata = rgba[np.isin(codes, DEMO.codes, invert=True)][:, :3]
    colours = {tuple(map(int, c)) for c in nodata}
    assert colours <= set(NODATA_CHECKER) and len(colours) == 2  # a checkerboard
    assert (255, 255, 255) not in colours and not colours & {rgb(c) for c in DEMO.colors}
    assert (rgba[..., 3] == 255).all()


@pytest.mark.parametrize("span,length", [(7680, 1000), (1200, 200), (30000, 5000),
                                         (99, 10), (2.5e6, 500000)])
def test_scale_bar_has_a_round_length_of_about_a_fifth(span, length):
    assert nice_length(span) == length


@pytest.mark.parametrize("crs,res,origin", [("EPSG:32632", 30.0, (584280.0, 5420820.0)),
                                            ("EPSG:4326", 0.0003, (10.1, 48.9))])
def test_quicklook_draws_projected_and_geographic_maps(tmp_path, crs, res, origin):
    import matplotlib.image

    path, codes = small_map(tmp_path, crs, res, origin)
    png = tmp_path / "ql.png"
    write_quicklook(path, DEMO, np.bincount(codes[codes != 255], minlength=8)[1:], png,
                    title="t")
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 200
    grey = np.all(np.abs(img[..., :3] * 255 - NODATA_CHECKER[0]) < 2, axis=-1)
    assert grey.sum() > 100  # nodata drawn in grey, not left white


@pytest.mark.parametrize("crs,res,origin", [("EPSG:32632", 30.0, (584280.0, 5420820.0)),
                                            ("EPSG:4326", 0.0003, (10.1, 48.9))])
def test_the_quicklook_drawn_from_the_store_is_the_one_drawn_from_the_map(tmp_path, crs, res,
                                                                          origin):
    """classify draws the quicklook from its store while GDAL writes the COG: for a map that
    needs no shrinking the picture is the one drawn from the finished map, pixel for pixel."""
    import matplotlib.image
    import zarr

    from landcover.maps import draw_quicklook, store_preview

    path, codes = small_map(tmp_path, crs, res, origin)
    grid = Grid(crs, (res, 0.0, origin[0], 0.0, -res, origin[1]), codes.shape[1], codes.shape[0])
    store = zarr.open_group(tmp_path / "store.zarr", mode="w")
    store.create_array("classes", shape=codes.shape, chunks=(16, 16), dtype="uint8")[...] = codes
    counts = np.bincount(codes[codes != 255], minlength=8)[1:]
    write_quicklook(path, DEMO, counts, tmp_path / "map.png", title="t")
    draw_quicklook(store_preview(str(tmp_path / "store.zarr"), grid), grid.bounds, grid.crs, DEMO,
                   counts, tmp_path / "store.png", title="t")
    np.testing.assert_array_equal(matplotlib.image.imread(tmp_path / "map.png"),
                                  matplotlib.image.imread(tmp_path / "store.png"))


def test_a_large_map_is_shrunk_to_the_pixels_nearest_the_cells_centres(tmp_path):
    import zarr

    from landcover.maps import store_preview

    rng = np.random.default_rng(0)
    codes = rng.integers(1, 8, (2500, 1200), dtype=np.uint8)
    grid = Grid("EPSG:32632", (30.0, 0.0, 0.0, 0.0, -30.0, 0.0), 1200, 2500)
    store = zarr.open_group(tmp_path / "store.zarr", mode="w")
    store.create_array("classes", shape=codes.shape, chunks=(256, 256), dtype="uint8")[...] = codes
    preview = store_preview(str(tmp_path / "store.zarr"), grid, max_size=1000)
    assert preview.shape == (1000, 480)  # 2.5 px a cell on both axes
    rows = (np.arange(1000) * 2.5 + 1.25).astype(int)  # each cell's centre: 1.25, 3.75, ...
    cols = (np.arange(480) * 2.5 + 1.25).astype(int)
    np.testing.assert_array_equal(preview, codes[rows][:, cols])
