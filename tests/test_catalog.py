"""The map's STAC item (landcover.catalog): written by classify with the map, valid STAC."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pystac = pytest.importorskip("pystac")
rasterio = pytest.importorskip("rasterio")

from landcover.bundle import BundleMeta
from landcover.catalog import footprint, item_path, map_item, write_map_item  # noqa: E402
from landcover.classes import class_table  # noqa: E402
from landcover.grid import Grid  # noqa: E402

SCHEMAS = Path(__file__).parent / "data" / "stac-schemas"


def offline_validator():
    """pystac's JSON-schema validator with every schema it needs from local files: the core and
    GeoJSON schemas pystac ships, the extension schemas vendored in tests/data/stac-schemas
    (see its SOURCE.md). Fetching anything else fails the test instead of going online."""
    from pystac.validation import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    for schema in SCHEMAS.glob("*/v*/schema.json"):
        ext, version = schema.parent.parent.name, schema.parent.name
        uri = f"https://stac-extensions.github.io/{ext}/{version}/schema.json"
        validator.schema_cache[uri] = json.loads(schema.read_text(encoding="utf-8"))
    return validator


def validate_offline(item: dict) -> None:
    validator = offline_validator()
    missing = [u for u in item["stac_extensions"] if u not in validator.schema_cache]
    if missing:
        pytest.skip(f"this pystac writes extension versions not vendored in {SCHEMAS}: "
                    f"{', '.join(missing)} (see SOURCE.md to add them)")
    if f"v{item['stac_version']}" not in {p.name for p in _core_schemas()}:
        pytest.skip(f"pystac {pystac.__version__} ships no local core schemas for STAC "
                    f"{item['stac_version']}")

    def no_network(uri, *args, **kw):
        raise AssertionError(f"the validator tried to fetch {uri}")

    io = pystac.StacIO.default()
    original, io.read_text = io.read_text, no_network
    try:
        pystac.validation.validate_dict(item, validator=validator)
    finally:
        io.read_text = original


def _core_schemas():
    from importlib.resources import files

    return list(Path(str(files("pystac.validation.jsonschemas") / "stac-spec")).iterdir())


def _corners_lonlat(path):
    from pyproj import Transformer

    with rasterio.open(path) as src:
        b, crs = src.bounds, src.crs
    t = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
    return [t.transform(x, y) for x, y in ((b.left, b.top), (b.right, b.top),
                                           (b.right, b.bottom), (b.left, b.bottom))]


# --------------------------------------------------------------------------- the map's own item
@pytest.fixture(scope="module")
def classified(field_series, field_bundle, tmp_path_factory):
    pytest.importorskip("tensorflow")
    from landcover import classify as lc

    folder = tmp_path_factory.mktemp("catalogued")
    meta, cfg = lc.resolve_config(field_bundle, None, ["classify.block_size=96"])
    summary = lc.classify(lc.model_scenes(field_series[0], meta, cfg), field_bundle,
                          folder / "map.tif", cfg, meta=meta, probabilities=True, progress=False)
    return folder / "map.tif", summary, meta


def test_classify_writes_an_item_beside_the_map(classified, field_series):
    path, summary, meta = classified
    assert summary["files"]["item"] == str(path.with_name("map.stac.json"))
    item = pystac.Item.from_file(str(path.with_name("map.stac.json")))
    from shapely.geometry import Point, shape

    # geometry and bbox: the map's corners, in lon/lat
    area = shape(item.geometry)
    w, s, e, n = item.bbox
    for lon, lat in _corners_lonlat(path):
        assert area.buffer(1e-9).contains(Point(lon, lat))
        assert w - 1e-9 <= lon <= e + 1e-9 and s - 1e-9 <= lat <= n + 1e-9
    # the dates
    dates = summary["dates"]
    assert item.datetime is None
    assert item.common_metadata.start_datetime.date().isoformat() == dates[0]
    assert item.common_metadata.end_datetime.date().isoformat() == dates[-1]
    assert item.properties["landcover:dates"] == dates
    # the model and the version
    assert item.properties["landcover:model_hash"] == meta["content_hash"]
    from landcover import __version__

    assert item.properties["landcover:version"] == __version__
    # projection
    from pystac.extensions.projection import ProjectionExtension

    proj = ProjectionExtension.ext(item)
    with rasterio.open(path) as src:
        assert proj.epsg == src.crs.to_epsg()
        assert proj.shape == [src.height, src.width]
        assert proj.transform == pytest.approx(list(src.transform)[:6])


def test_item_classes_are_the_bundles(classified):
    from pystac.extensions.classification import ClassificationExtension
    from pystac.extensions.raster import RasterExtension

    path, _, meta = classified
    item = pystac.Item.from_file(str(item_path(path)))
    (band,) = RasterExtension.ext(item.assets["map"]).bands
    assert band.nodata == 255 and band.data_type == "uint8"
    classes = ClassificationExtension.ext(band).classes
    got = [(c.value, c.title, "#" + c.color_hint.lower()) for c in classes if not c.nodata]
    assert got == [(c["code"], c["name"], c["color"].lower()) for c in meta["classes"]]
    assert [c.value for c in classes if c.nodata] == [255]
    prob = RasterExtension.ext(item.assets["probabilities"]).bands
    assert len(prob) == len(meta["classes"]) + 1  # + uncertainty
    assert prob[0].scale == pytest.approx(1 / 250) and prob[0].nodata == 255


def test_item_assets_are_relative_and_checksums_match(classified):
    import hashlib

    from pystac.extensions.file import FileExtension

    path, summary, _ = classified
    data = json.loads(item_path(path).read_text())
    assert set(data["assets"]) == {"map", "probabilities", "legend", "style", "quicklook"}
    for key, asset in data["assets"].items():
        assert asset["href"] == Path(summary["files"][key]).name  # relative to the item
    item = pystac.Item.from_dict(data)
    for key, asset in item.assets.items():
        f = path.parent / asset.href
        ext = FileExtension.ext(asset)
        assert ext.size == f.stat().st_size
        assert ext.checksum == "1220" + hashlib.sha256(f.read_bytes()).hexdigest()
    assert item.assets["map"].roles == ["data"]
    assert item.assets["quicklook"].roles == ["overview"]
    assert item.assets["map"].media_type == pystac.MediaType.COG


def test_item_links_to_its_scenes(classified, field_series):
    path, _, _ = classified
    item = pystac.Item.from_file(str(item_path(path)))
    sources = sorted(link.href for link in item.links if link.rel == "derived_from")
    assert sources == sorted(str(Path(p).absolute()) for p in field_series[0])


def test_item_validates_offline(classified):
    path, _, _ = classified
    validate_offline(json.loads(item_path(path).read_text()))


def test_an_existing_item_needs_overwrite(classified, field_series, field_bundle, tmp_path):
    from landcover import classify as lc
    from landcover.errors import OutputExistsError

    item_path(tmp_path / "map.tif").write_text("{}")
    meta, cfg = lc.resolve_config(field_bundle)
    with pytest.raises(OutputExistsError, match="map.stac.json"):
        lc.classify(lc.model_scenes(field_series[0], meta, cfg), field_bundle,
                    tmp_path / "map.tif", cfg, meta=meta, progress=False)
    assert not (tmp_path / "map.tif").exists()


# ------------------------------------------------------------------- the item alone, no model
def _tiny_outputs(tmp_path, keys=("map", "legend", "style")):
    paths = {k: tmp_path / n for k, n in (("map", "m.tif"), ("legend", "m.tif.aux.xml"),
                                          ("style", "m.qml")) if k in keys}
    for i, p in enumerate(paths.values()):
        p.write_bytes(bytes([i]) * (10 + i))
    paths["item"] = item_path(tmp_path / "m.tif")
    return paths


TABLE = class_table([{"code": 1, "name": "winter wheat", "color": "#e6b400"},
                     {"code": 7, "name": "forest/woodland", "color": "#1a7a1a"}])
META = BundleMeta.from_json({"content_hash": "abc", "architecture": {"architecture": "unet"}})


def _scene(source, **attrs):
    return SimpleNamespace(source=str(source), scene_id=f"LC08_L2SP_{Path(source).name}",
                           attrs=attrs)


@pytest.mark.parametrize("crs,transform", [
    ("EPSG:32633", (30.0, 0.0, 500000.0, 0.0, -30.0, 5300010.0)),  # north
    ("EPSG:32733", (30.0, 0.0, 300000.0, 0.0, -30.0, 7000000.0)),  # south
    ("EPSG:32633", (30.0, 0.0, 500000.0, 0.0, 30.0, 5300010.0)),  # rows going north (flipped)
])
def test_map_item_alone_is_valid_stac(tmp_path, crs, transform):
    grid = Grid(crs, transform, 100, 80)
    paths = _tiny_outputs(tmp_path)
    stac_href = "https://example.org/stac/v1/collections/landsat-c2-l2/items/LC08_X"
    kept = [(dt.date(2023, 6, 10), [_scene(tmp_path / "a")]),
            (dt.date(2023, 7, 12), [_scene("/remote/b", stac_href=stac_href)])]
    item = write_map_item(paths["item"], paths, grid, kept, TABLE, META)
    data = json.loads(paths["item"].read_text())
    assert data == item.to_dict(include_self_link=False, transform_hrefs=False)
    assert data["properties"]["start_datetime"] == "2023-06-10T00:00:00Z"
    assert data["properties"]["end_datetime"] == "2023-07-12T23:59:59Z"
    assert (data["properties"]["landcover:model_hash"],
            data["properties"]["landcover:architecture"]) == ("abc", "unet")
    links = [(lk["href"], lk.get("type")) for lk in data["links"] if lk["rel"] == "derived_from"]
    assert links == [(str(tmp_path / "a"), None), (stac_href, "application/geo+json")]
    names = [c["name"] for c in data["assets"]["map"]["raster:bands"][0]["classification:classes"]]
    assert names == ["winter_wheat", "forest_woodland", "nodata"]  # tokens, as the schema wants
    ring = data["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 4 * 16 + 1
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:])) / 2
    assert area > 0  # counter-clockwise exterior ring (RFC 7946)
    validate_offline(data)


def test_the_offline_validator_rejects_a_broken_item(tmp_path):
    from pystac.errors import STACValidationError

    grid = Grid("EPSG:32633", (30.0, 0.0, 500000.0, 0.0, -30.0, 5300010.0), 10, 10)
    paths = _tiny_outputs(tmp_path)
    data = map_item(paths, grid, [(dt.date(2023, 6, 10), [_scene(tmp_path / "a")])], TABLE,
                    META).to_dict(include_self_link=False)
    data["assets"]["map"]["raster:bands"][0]["classification:classes"][0]["color_hint"] = "#e6b4"
    with pytest.raises(STACValidationError, match="classification"):
        validate_offline(data)


def test_footprint_of_a_geographic_grid_is_its_bounds():
    grid = Grid("EPSG:4326", (0.01, 0.0, 9.5, 0.0, -0.01, 47.8), 100, 60)
    ring = footprint(grid, densify=1)["coordinates"][0]
    assert {tuple(round(v, 9) for v in p) for p in ring} == {
        (9.5, 47.8), (9.5, 47.2), (10.5, 47.2), (10.5, 47.8)}


def test_map_item_wkt_crs_without_epsg(tmp_path):
    wkt = ('PROJCS["custom",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
           '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
           'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
           'PARAMETER["central_meridian",13.1],PARAMETER["scale_factor",0.9996],'
           'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1]]')
    grid = Grid(wkt, (30.0, 0.0, 500000.0, 0.0, -30.0, 5300010.0), 10, 10)
    paths = _tiny_outputs(tmp_path)
    item = map_item(paths, grid, [(dt.date(2023, 6, 10), [_scene(tmp_path / "a")])], TABLE, META)
    props = item.properties
    assert props["proj:code"] is None or "proj:code" not in props
    assert "Transverse_Mercator" in props["proj:wkt2"] or "Transverse Mercator" in \
        props["proj:wkt2"]
    validate_offline(item.to_dict(include_self_link=False, transform_hrefs=False))
