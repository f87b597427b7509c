"""``landcover search``: a STAC API's items -> a table and an ItemCollection file (local stub API)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

pystac = pytest.importorskip("pystac")
pytest.importorskip("pystac_client")
pytest_httpserver = pytest.importorskip("pytest_httpserver")

from landcover.cli.main import cli  # noqa: E402
from landcover.errors import UsageError  # noqa: E402
from landcover.stac import search as stac_search  # noqa: E402

CONFORMANCE = ["https://api.stacspec.org/v1.0.0/core",
               "https://api.stacspec.org/v1.0.0/item-search",
               "https://api.stacspec.org/v1.0.0/item-search#query"]
COLLECTION = "landsat-c2-l2"
SCENES = [  # id, acquisition time, cloud cover, EPSG, WRS path, row
    ("LC08_L2SP_193026_20230610_20230619_02_T1", "2023-06-10T09:58:41.123Z", 12.34, 32632,
     "193", "026"),
    ("LC09_L2SP_193027_20230704_20230713_02_T1", "2023-07-04T09:59:07.456Z", 48.0, 32632,
     "193", "027"),
]


def landsat_item(base: str, scene) -> pystac.Item:
    """A Landsat C2 L2 item as the public catalogues publish it (properties and asset names)."""
    sid, when, cloud, epsg, path, row = scene
    item = pystac.Item(
        id=sid, datetime=pystac.utils.str_to_datetime(when), bbox=[8.9, 46.9, 10.6, 48.0],
        geometry={"type": "Polygon", "coordinates": [[[8.9, 46.9], [10.6, 46.9], [10.6, 48.0],
                                                       [8.9, 48.0], [8.9, 46.9]]]},
        properties={"platform": sid[:4].replace("LC0", "landsat-").lower(),
                    "instruments": ["oli", "tirs"], "eo:cloud_cover": cloud,
                    "proj:epsg": epsg, "landsat:wrs_path": path, "landsat:wrs_row": row,
                    "landsat:collection_category": "T1", "landsat:collection_number": "02",
                    "landsat:correction": "L2SP"},
        collection=COLLECTION)
    item.stac_extensions = ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json"]
    for band in ("red", "green", "blue", "nir08", "swir16", "swir22", "qa_pixel"):
        suffix = {"qa_pixel": "QA_PIXEL", "nir08": "SR_B5", "red": "SR_B4", "green": "SR_B3",
                  "blue": "SR_B2", "swir16": "SR_B6", "swir22": "SR_B7"}[band]
        item.add_asset(band, pystac.Asset(f"{base}/data/{sid}/{sid}_{suffix}.TIF",
                                          media_type=pystac.MediaType.COG, roles=["data"]))
    item.set_self_href(f"{base}/collections/{COLLECTION}/items/{sid}")
    return item


@pytest.fixture
def api(httpserver):
    """A STAC API stub: landing page, conformance, and /search (POST and GET) answering the two
    items; records the search requests."""
    base = httpserver.url_for("").rstrip("/")
    searches = []
    landing = {
        "type": "Catalog", "stac_version": "1.0.0", "id": "stub", "description": "a stub API",
        "conformsTo": CONFORMANCE,
        "links": [{"rel": "self", "href": f"{base}/", "type": "application/json"},
                  {"rel": "root", "href": f"{base}/", "type": "application/json"},
                  {"rel": "conformance", "href": f"{base}/conformance",
                   "type": "application/json"},
                  {"rel": "search", "href": f"{base}/search", "type": "application/geo+json",
                   "method": "GET"},
                  {"rel": "search", "href": f"{base}/search", "type": "application/geo+json",
                   "method": "POST"}]}

    def search(request):
        from werkzeug import Response

        body = request.get_json(silent=True) if request.method == "POST" else \
            dict(request.args)
        searches.append(body)
        items = [landsat_item(base, s).to_dict() for s in SCENES]
        limit = int(body.get("limit") or 100)
        page = {"type": "FeatureCollection", "features": items[:limit],
                "links": [{"rel": "root", "href": f"{base}/"}]}
        return Response(json.dumps(page), content_type="application/geo+json")

    httpserver.expect_request("/").respond_with_json(landing)
    httpserver.expect_request("/conformance").respond_with_json({"conformsTo": CONFORMANCE})
    httpserver.expect_request("/search").respond_with_handler(search)
    return base, searches


def _search(runner, *args):
    return runner.invoke(cli, ["-q", "search", *args])


def test_search_lists_the_items_and_writes_an_item_collection(runner, api, tmp_path):
    base, searches = api
    out = tmp_path / "items.json"
    result = _search(runner, "--stac", f"{base}/", "--collection", COLLECTION,
                     "--bbox", "9.5,47.2,10.5,47.8", "--datetime", "2023-06-01/2023-07-31",
                     "--query", "eo:cloud_cover<60", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "date", "cloud", "%", "EPSG", "path/row"]
    assert lines[1].split() == [SCENES[0][0], "2023-06-10", "12.3", "32632", "193/026"]
    assert lines[2].split() == [SCENES[1][0], "2023-07-04", "48.0", "32632", "193/027"]
    assert "2 items written to" in result.stderr
    # the request the API got
    (body,) = searches
    assert body["collections"] == [COLLECTION]
    assert body["bbox"] == [9.5, 47.2, 10.5, 47.8]
    assert body["datetime"] == "2023-06-01T00:00:00Z/2023-07-31T23:59:59Z"
    assert body["query"] == {"eo:cloud_cover": {"lt": 60}}
    # the file: an ItemCollection that pystac reads back, items with their hrefs and assets
    items = pystac.ItemCollection.from_file(str(out))
    assert [i.id for i in items] == [s[0] for s in SCENES]
    first = items.items[0]
    assert first.get_self_href() == f"{base}/collections/{COLLECTION}/items/{SCENES[0][0]}"
    assert first.assets["red"].href.endswith("_SR_B4.TIF")
    assert first.properties["landsat:wrs_row"] == "026"


def test_search_json_and_max_items(runner, api, tmp_path):
    base, searches = api
    out = tmp_path / "one.json"
    result = _search(runner, "--stac", base, "--collection", COLLECTION, "--max-items", "1",
                     "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["count"] == 1 and data["out"] == str(out)
    assert data["items"] == [{"id": SCENES[0][0], "date": "2023-06-10", "cloud_cover": 12.34,
                              "epsg": 32632, "path_row": "193/026"}]
    assert len(json.loads(out.read_text())["features"]) == 1
    # an existing output needs --overwrite, and is refused before the API is asked
    again = _search(runner, "--stac", base, "--collection", COLLECTION, "--out", str(out))
    assert again.exit_code == 1 and "already exists" in again.output
    assert len(searches) == 1
    assert _search(runner, "--stac", base, "--collection", COLLECTION, "--out", str(out),
                   "--overwrite").exit_code == 0
    assert len(json.loads(out.read_text())["features"]) == 2


def test_server_errors_are_one_line_naming_the_url(runner, httpserver, tmp_path, monkeypatch):
    monkeypatch.setattr(stac_search, "RETRY_BACKOFF", 0.0)
    httpserver.expect_request("/").respond_with_data("boom", status=500)
    url = httpserver.url_for("/")
    out = tmp_path / "items.json"
    result = _search(runner, "--stac", url, "--collection", COLLECTION, "--out", str(out))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and url in lines[0], result.output
    assert "HTTP 500" in lines[0] and "Traceback" not in result.output
    assert len(httpserver.log) == stac_search.RETRIES + 1  # retried, then given up
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_search_that_fails_after_the_landing_page(runner, httpserver, tmp_path, monkeypatch):
    monkeypatch.setattr(stac_search, "RETRY_BACKOFF", 0.0)
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_json({
        "type": "Catalog", "stac_version": "1.0.0", "id": "stub", "description": "d",
        "conformsTo": CONFORMANCE,
        "links": [{"rel": "search", "href": f"{base}/search", "method": "POST"}]})
    httpserver.expect_request("/search").respond_with_data("unavailable", status=503)
    result = _search(runner, "--stac", base, "--collection", COLLECTION,
                     "--out", str(tmp_path / "i.json"))
    assert result.exit_code == 1
    assert "searching the STAC API failed (HTTP 503" in result.output and base in result.output
    searches = [r for r in httpserver.log if r[0].path == "/search"]
    assert len(searches) == stac_search.RETRIES + 1


def test_unreachable_url(runner, tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(stac_search, "RETRY_BACKOFF", 0.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/stac"
    result = _search(runner, "--stac", url, "--collection", COLLECTION,
                     "--out", str(tmp_path / "i.json"))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and url in lines[0] and "connection refused" in lines[0], lines


def test_a_catalogue_without_item_search(runner, httpserver, tmp_path):
    httpserver.expect_request("/").respond_with_json({
        "type": "Catalog", "stac_version": "1.0.0", "id": "static", "description": "d",
        "links": []})
    result = _search(runner, "--stac", httpserver.url_for("/"), "--collection", COLLECTION,
                     "--out", str(tmp_path / "i.json"))
    assert result.exit_code == 1 and "item search" in result.output, result.output


@pytest.mark.parametrize("flag,value", [
    ("--bbox", "9.5,47.2,10.5"),  # three numbers
    ("--bbox", "west,47.2,10.5,47.8"),
    ("--bbox", "9.5,47.8,10.5,47.2"),  # S > N
    ("--datetime", "2023-13-01/2023-10-31"),
    ("--datetime", "2023-10-31/2023-04-01"),  # ends before it starts
    ("--datetime", "../.."),
    ("--query", "eo:cloud_cover~60"),
    ("--max-items", "0"),
])
def test_bad_filters_are_usage_errors_naming_the_flag(runner, httpserver, tmp_path, flag, value):
    result = _search(runner, "--stac", httpserver.url_for("/"), "--collection", COLLECTION,
                     flag, value, "--out", str(tmp_path / "i.json"))
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output
    assert not httpserver.log  # refused before any request
    assert not list(tmp_path.iterdir())


def test_parsers():
    assert stac_search.parse_bbox(" 9.5, 47.2 ,10.5,47.8") == [9.5, 47.2, 10.5, 47.8]
    assert stac_search.parse_bbox("170,-10,-170,10") == [170, -10, -170, 10]  # antimeridian
    assert stac_search.parse_datetime("2023-06-01") == \
        "2023-06-01T00:00:00Z/2023-06-01T23:59:59Z"
    assert stac_search.parse_datetime("../2023-06-01T10:00:00+02:00") == "../2023-06-01T08:00:00Z"
    assert stac_search.parse_datetime("2023-06-01/..") == "2023-06-01T00:00:00Z/.."
    assert stac_search.parse_query(["eo:cloud_cover<=60", "platform=landsat-9",
                                "eo:cloud_cover>5.5"]) == {
        "eo:cloud_cover": {"lte": 60, "gt": 5.5}, "platform": {"eq": "landsat-9"}}
    with pytest.raises(UsageError):
        stac_search.parse_query(["cloud"])


def test_item_rows_read_proj_code_and_missing_fields():
    item = pystac.Item("x", None, None, dt.datetime(2023, 6, 10, 10, tzinfo=dt.timezone.utc),
                       {"proj:code": "EPSG:32633"})
    assert stac_search.item_row(item) == {"id": "x", "date": "2023-06-10", "cloud_cover": None,
                                      "epsg": 32633, "path_row": None}
    text = stac_search.format_rows([stac_search.item_row(item)])
    assert text.splitlines()[1].split() == ["x", "2023-06-10", "-", "32633", "-"]
