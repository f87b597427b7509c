"""Scenes from STAC: items made by stactools-landsat from the real C2 L2 samples, served over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL

from landcover.cli.main import cli
from landcover.config import load_config
from landcover.devserver import serve

pystac = pytest.importorskip("pystac")
landsat_stac = pytest.importorskip("stactools.landsat.stac")
rasterio = pytest.importorskip("rasterio")

SAMPLE = REAL / "stactools-landsat-c2l2"  # the fixtures skip when it is absent


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """The real samples with STAC items made by stactools-landsat, as local and as HTTP
    ItemCollections."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} is absent")
    from landcover.mtl import mtl_get, parse_mtl

    root = tmp_path_factory.mktemp("stac") / "data"
    shutil.copytree(SAMPLE, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        # stactools takes the footprint from the USGS <ID>_SR_stac.json beside the MTL (or asks
        # the USGS API): these samples have none and there is no network, so write one with the
        # MTL's corner coordinates
        mtl = parse_mtl((folder / f"{folder.name}_MTL.txt").read_bytes(), str(folder))
        lat = [mtl_get(mtl, f"CORNER_{c}_LAT_PRODUCT", float) for c in ("UL", "UR", "LL", "LR")]
        lon = [mtl_get(mtl, f"CORNER_{c}_LON_PRODUCT", float) for c in ("UL", "UR", "LL", "LR")]
        box = [min(lon), min(lat), max(lon), max(lat)]
        ring = [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]],
                [box[0], box[1]]]
        usgs = pystac.Item(f"{folder.name}_SR", {"type": "Polygon", "coordinates": [ring]}, box,
                           dt.datetime(2020, 1, 1), {})
        (folder / f"{folder.name}_SR_stac.json").write_text(json.dumps(usgs.to_dict()))
        item = landsat_stac.create_item(str(folder / f"{folder.name}_MTL.xml"))
        # the samples were shrunk to 512 px: the MTL (and so proj:*) describes the full scene
        with rasterio.open(folder / f"{folder.name}_SR_B4.TIF") as src:
            item.properties["proj:shape"] = [src.height, src.width]
            item.properties["proj:transform"] = list(src.transform)[:6]
        item.collection_id = "landsat-c2-l2"
        items.append(item)
    local = root / "items.json"
    local.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    served, server, base = serve(root)
    text = local.read_text().replace(str(root), base)
    (root / "remote.json").write_text(text)
    yield {"root": root, "local": local, "url": f"{base}/remote.json", "served": served,
           "folders": sorted(p for p in root.iterdir() if p.is_dir())}
    server.shutdown()


def _scenes(source):
    from landcover.scenes import as_scenes

    return as_scenes(source)


def test_items_are_the_same_scenes_as_the_folders(catalogue):
    from landcover.scenes import LocalScenes
    from landcover.stac import StacScenes

    folders = _scenes(LocalScenes(tuple(map(str, catalogue["folders"]))))
    for href in (str(catalogue["local"]), catalogue["url"]):
        items = _scenes(StacScenes((href,)))
        assert [s.scene_id for s in items] == [s.scene_id for s in folders]
        for a, b in zip(items, folders):
            assert a.grid == b.grid  # from proj:*, no file opened
            assert (a.date, a.sensor, a.path, a.row) == (b.date, b.sensor, b.path, b.row)
            assert {k: Path(v).name for k, v in a.bands.items()} == \
                {k: Path(v).name for k, v in b.bands.items()}
            assert a.scale == pytest.approx(b.scale) and a.offset == pytest.approx(b.offset)
            assert Path(a.mask_path).name == Path(b.mask_path).name
            assert a.attrs["stac_item"] and a.attrs["stac_collection"] == "landsat-c2-l2"
    assert items[0].bands["red"].startswith("/vsicurl/http://127.0.0.1")


def test_remote_reads_give_the_same_arrays_and_are_windowed(catalogue):
    from landcover.scenes import LocalScenes
    from landcover.stac import StacScenes
    from landcover.stack import read_date_block

    cfg = load_config()
    local = _scenes(LocalScenes((str(catalogue["folders"][1]),)))[0]
    remote = next(s for s in _scenes(StacScenes((catalogue["url"],)))
                  if s.scene_id == local.scene_id)
    bands = ("blue", "green", "red", "nir", "swir1", "swir2")
    served = catalogue["served"]
    before = served.bytes
    a = read_date_block([local], bands, local.grid, cfg.scenes.mask, 200, 300, 64, 64)[0]
    b = read_date_block([remote], bands, remote.grid, cfg.scenes.mask, 200, 300, 64, 64)[0]
    np.testing.assert_array_equal(a, b)
    sent = served.bytes - before
    files = sum((catalogue["folders"][1] / Path(p).name).stat().st_size
                for p in [*remote.bands.values(), remote.mask_path, remote.radsat_path])
    assert 0 < sent < 0.35 * files, (sent, files)  # a 64 px window of 512 px rasters


def test_cli_info_and_prepare_on_an_item_collection_match_the_folders(catalogue, runner,
                                                                      tmp_path):
    folders = [str(catalogue["folders"][1])]
    local = runner.invoke(cli, ["-q", "info", *folders, "--json"])
    remote = runner.invoke(cli, ["-q", "info", catalogue["url"], "--json"])
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    a, b = json.loads(local.output), json.loads(remote.output)
    scene = next(s for s in b["scenes"] if s["scene_id"] == a["scenes"][0]["scene_id"])
    drop = ("source", "files")
    assert {k: v for k, v in scene.items() if k not in drop} == \
        {k: v for k, v in a["scenes"][0].items() if k not in drop}

    # prepare one scene's windows from the folder and from the served item: the same dataset
    one = tmp_path / "one.json"
    data = json.loads(Path(catalogue["root"] / "remote.json").read_text())
    data["features"] = [f for f in data["features"]
                        if Path(catalogue["folders"][1]).name.startswith(f["id"][:25])]
    one.write_text(json.dumps(data))
    with rasterio.open(catalogue["folders"][1] / f"{catalogue['folders'][1].name}_SR_B4.TIF") as s:
        profile = dict(driver="GTiff", width=s.width, height=s.height, count=1, dtype="uint8",
                       crs=s.crs, transform=s.transform, nodata=0)
    labels = tmp_path / "labels.tif"
    codes = np.zeros((profile["height"], profile["width"]), np.uint8)
    codes[100:300, 100:300] = 1 + (np.arange(200)[:, None] // 50 + np.arange(200) // 50) % 3
    with rasterio.open(labels, "w", **profile) as dst:
        dst.write(codes, 1)
    sets = ["--set", "prepare.patches.size=16", "--set", "prepare.patches.stride=16",
            "--set", "prepare.split.block_size=64", "--set", "prepare.features.min_date_valid=0"]
    for name, scenes in (("a", folders), ("b", [str(one)])):
        done = runner.invoke(cli, ["-q", "prepare", *scenes, "--labels", str(labels), "--out",
                                   str(tmp_path / f"{name}.zarr"), *sets])
        assert done.exit_code == 0, done.output
    import zarr

    za, zb = (zarr.open_group(str(tmp_path / f"{n}.zarr"), mode="r") for n in "ab")
    for array in ("inputs", "labels", "weights"):
        np.testing.assert_array_equal(za[array][:], zb[array][:])


def test_http_errors_are_retried_then_fail_as_one_line(catalogue, runner, monkeypatch):
    from landcover import gdalio
    from landcover.errors import RasterReadError
    from landcover.stac import StacScenes
    from landcover.stack import read_date_block

    cfg = load_config()
    name = catalogue["folders"][2].name
    scene = next(s for s in _scenes(StacScenes((catalogue["url"],))) if name.startswith(
        s.scene_id[:25]))
    served = catalogue["served"]
    red = Path(scene.bands["red"]).name
    served.fail[red] = 2  # two 500s, then the file: retried
    block = read_date_block([scene], ("red",), scene.grid, cfg.scenes.mask, 200, 300, 32, 32)[0]
    assert np.isfinite(block[0]).all() and served.fail[red] == 0
    served.fail[red] = 1000  # always failing: a clean error naming the URL (retried quickly)
    monkeypatch.setitem(gdalio.GDAL_OPTIONS, "GDAL_HTTP_MAX_RETRY", "1")
    monkeypatch.setitem(gdalio.GDAL_OPTIONS, "GDAL_HTTP_RETRY_DELAY", "0.1")
    try:
        with pytest.raises(RasterReadError, match=re.escape(red)):
            read_date_block([scene], ("red",), scene.grid, cfg.scenes.mask, 64, 64, 32, 32)
    finally:
        served.fail[red] = 0
    served.drop.add("remote.json")
    try:
        result = runner.invoke(cli, ["-q", "info", catalogue["url"]])
    finally:
        served.drop.discard("remote.json")
    assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert "remote.json" in result.output and "Traceback" not in result.output


def test_items_of_other_collections_are_refused(catalogue, tmp_path, runner):
    data = json.loads(catalogue["local"].read_text())
    data["features"][0]["collection"] = "sentinel-2-l2a"
    other = tmp_path / "s2.json"
    other.write_text(json.dumps(data))
    result = runner.invoke(cli, ["-q", "info", str(other)])
    assert result.exit_code == 1 and "sentinel-2-l2a" in result.output, result.output


def test_classify_on_an_item_collection_gives_the_map_of_the_folder(catalogue, field_bundle,
                                                                      runner, tmp_path):
    pytest.importorskip("tensorflow")
    folder = catalogue["folders"][1]
    one = tmp_path / "one.json"
    data = json.loads(Path(catalogue["root"] / "remote.json").read_text())
    data["features"] = [f for f in data["features"] if folder.name.startswith(f["id"][:25])]
    one.write_text(json.dumps(data))
    for name, scenes in (("local", str(folder)), ("remote", str(one))):
        done = runner.invoke(cli, ["-q", "classify", scenes, "--model", str(field_bundle),
                                   "--out", str(tmp_path / f"{name}.tif"), "--probabilities"])
        assert done.exit_code == 0, done.output
    for suffix in (".tif", "_probabilities.tif"):
        with rasterio.open(tmp_path / f"local{suffix}") as a, \
                rasterio.open(tmp_path / f"remote{suffix}") as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert a.crs == b.crs and a.transform == b.transform
