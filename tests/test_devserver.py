"""The development STAC API (``python -m landcover.devserver --stac DIR``): ``landcover search``
queries it, and the ItemCollection it writes reads the same scenes over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from conftest import DESIGNED

pytest.importorskip("pystac_client")

from landcover.cli.main import cli  # noqa: E402
from landcover.devserver import main, search, serve_stac  # noqa: E402
from landcover.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def api():
    from conftest import SCENES

    catalogue, server, url = serve_stac(SCENES)
    yield catalogue, url
    server.shutdown()


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def test_landing_page_conformance_and_collections(api):
    catalogue, url = api
    landing = get(url + "/")
    assert "https://api.stacspec.org/v1.0.0/item-search" in landing["conformsTo"]
    assert {link["rel"] for link in landing["links"]} >= {"self", "conformance", "data", "search"}
    assert get(url + "/conformance")["conformsTo"] == landing["conformsTo"]
    (collection,) = get(url + "/collections")["collections"]
    assert collection["id"] == "landsat-c2-l2" and len(catalogue.items) == 5
    assert collection["extent"]["temporal"]["interval"] == [["2023-06-10T00:00:00Z",
                                                             "2023-07-12T00:00:00Z"]]
    item = get(f"{url}/collections/landsat-c2-l2/items/{DESIGNED}")
    assert item["assets"]["SR_B4"]["href"] == f"{url}/files/{DESIGNED}/{DESIGNED}_SR_B4.TIF"


def test_landcover_search_finds_the_scenes_and_info_reads_them_over_http(api, runner,
                                                                         scenes_dir, tmp_path):
    _, url = api
    out = tmp_path / "items.json"
    res = runner.invoke(cli, ["search", "--stac", url, "--collection", "landsat-c2-l2",
                              "--bbox", "16.4,52.33,16.5,52.4", "--datetime",
                              "2023-06-01/2023-06-30", "--query", "eo:cloud_cover<50",
                              "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["items"]
    assert [r["id"] for r in rows] == [DESIGNED, "LE07_L2SP_193026_20230618_20230627_02_T1"]
    # the filters act: a cloud-cover limit below the first scene's 25.8 %, and a box south of
    # row 026 (only 193/027 reaches below 52.324)
    low = runner.invoke(cli, ["search", "--stac", url, "--collection", "landsat-c2-l2",
                              "--query", "eo:cloud_cover<20", "--datetime", "2023-06-10",
                              "--out", str(tmp_path / "low.json"), "--json"])
    assert json.loads(low.stdout)["count"] == 0
    south = runner.invoke(cli, ["search", "--stac", url, "--collection", "landsat-c2-l2",
                                "--bbox", "16.4,52.30,16.5,52.32", "--out",
                                str(tmp_path / "south.json"), "--json"])
    assert [r["id"] for r in json.loads(south.stdout)["items"]] == [
        "LC08_L2SP_193027_20230712_20230721_02_T1"]
    remote = runner.invoke(cli, ["-q", "info", str(out), "--json"])
    local = runner.invoke(cli, ["-q", "info", str(scenes_dir / DESIGNED), "--json"])
    assert remote.exit_code == 0, remote.output
    got = {s["scene_id"]: s for s in json.loads(remote.stdout)["scenes"]}
    mine = json.loads(local.stdout)["scenes"][0]
    assert got[DESIGNED]["valid_fraction"] == mine["valid_fraction"]
    assert got[DESIGNED]["cloud_fraction"] == mine["cloud_fraction"] == 992 / 3840


def test_search_pages_with_a_token(api):
    catalogue, url = api
    seen, page = [], f"{url}/search?collections=landsat-c2-l2&limit=2"
    while page:
        answer = get(page)
        assert answer["numberMatched"] == 5 and answer["numberReturned"] <= 2
        seen += [f["id"] for f in answer["features"]]
        page = next((link["href"] for link in answer["links"] if link["rel"] == "next"), None)
    assert seen == [it["id"] for it in catalogue.items]
    found, first, after = search(catalogue.items, {"limit": 3, "token": "3"})
    assert len(found) == 5 and len(first) == 2 and after == -1


@pytest.mark.parametrize("query, message", [
    ("bbox=1,2", "bbox"), ("datetime=yesterday", "datetime"), ("limit=0", "limit"),
    ("query=%7B%22eo:cloud_cover%22:%7B%22like%22:1%7D%7D", "operator"),
])
def test_bad_searches_are_http_400_naming_the_parameter(api, query, message):
    _, url = api
    with pytest.raises(urllib.error.HTTPError) as caught:
        get(f"{url}/search?{query}")
    assert caught.value.code == 400
    assert message in json.loads(caught.value.read())["description"]


def test_files_stay_inside_the_folder(api):
    _, url = api
    with pytest.raises(urllib.error.HTTPError) as caught:
        get(f"{url}/files/../conftest.py")
    assert caught.value.code == 404


def test_a_folder_without_scenes_is_refused(tmp_path, capsys):
    with pytest.raises(UsageError, match="no scene folder"):
        serve_stac(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["--stac", str(tmp_path / "missing")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: --stac ") and "not a folder" in err[0]


def test_stac_item_files_are_served_with_their_assets_in_files(tmp_path, runner):
    doc = {"type": "Feature", "stac_version": "1.0.0", "id": "x1", "collection": "mine",
           "bbox": [0, 0, 1, 1], "geometry": None, "links": [],
           "properties": {"datetime": "2023-01-02T10:00:00Z"},
           "assets": {"data": {"href": "data/x1.tif"}, "far": {"href": "https://a.b/c.tif"}}}
    (tmp_path / "items").mkdir()
    (tmp_path / "items" / "x1.json").write_text(json.dumps(doc))
    _, server, url = serve_stac(tmp_path)
    try:
        item = get(f"{url}/collections/mine/items/x1")
        assert item["assets"]["data"]["href"] == f"{url}/files/items/data/x1.tif"
        assert item["assets"]["far"]["href"] == "https://a.b/c.tif"
        res = runner.invoke(cli, ["search", "--stac", url, "--collection", "mine",
                                  "--out", str(tmp_path / "found.json"), "--json"])
        assert json.loads(res.stdout)["count"] == 1, res.output
    finally:
        server.shutdown()


def test_a_port_in_use_is_one_line_exit_1():
    import subprocess
    import sys

    from conftest import SCENES

    _, server, url = serve_stac(SCENES)
    try:
        res = subprocess.run([sys.executable, "-m", "landcover.devserver", "--stac", str(SCENES),
                              "--port", url.rsplit(":", 1)[1]], capture_output=True, text=True,
                             timeout=120, check=False)
    finally:
        server.shutdown()
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith("Error: 127.0.0.1:") and "choose another --port" in lines[0]
