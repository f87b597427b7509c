"""Remote documents and model bundles are not trusted (issue 24, points 4-7): nothing they say
runs code, fetches an address or reads a local file the user did not name; network waits time
out, page loops end; bad documents give one-line errors. Local servers only (loopback)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pystac = pytest.importorskip("pystac")
pytest.importorskip("pystac_client")
pytest.importorskip("pytest_httpserver")

from test_search import COLLECTION, CONFORMANCE, SCENES, landsat_item  # noqa: E402

from landcover.cli.main import cli  # noqa: E402
from landcover.errors import StacError  # noqa: E402
from landcover.stac import search as stac_search  # noqa: E402


def _bounded(fn, seconds: float = 30.0):
    """Run ``fn`` in a daemon thread; ``(finished, result or exception)`` after at most
    ``seconds`` (a hang fails the test instead of stalling it)."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), out.get("error", out.get("value"))


def _one_line(result, code=1):
    """The one ``Error: ...`` line of a failed command (a usage error, exit 2, comes after
    click's usage lines)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and (code == 2 or len(lines) == 1), result.output
    return errors[0]


def _landing(base):
    return {"type": "Catalog", "stac_version": "1.0.0", "id": "stub", "description": "d",
            "conformsTo": CONFORMANCE,
            "links": [{"rel": "search", "href": f"{base}/search", "method": "GET"}]}


# ------------------------------------------------------------------------------ landcover search
def test_search_times_out_on_a_server_that_accepts_and_never_answers(monkeypatch):
    monkeypatch.setattr(stac_search, "TIMEOUT", 1.0)
    monkeypatch.setattr(stac_search, "RETRIES", 0)
    with socket.socket() as s:  # the kernel accepts connections; nobody ever answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/stac"
        start = time.monotonic()
        finished, error = _bounded(lambda: stac_search.search_items(url, COLLECTION), 30)
    assert finished, "the search did not time out"
    assert isinstance(error, StacError) and "timed out" in str(error), error
    assert time.monotonic() - start < 20


def test_search_stops_when_next_page_links_loop(httpserver):
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_json(_landing(base))
    items = [landsat_item(base, s).to_dict() for s in SCENES]
    page = {"type": "FeatureCollection", "features": items,
            "links": [{"rel": "next", "href": f"{base}/search?token=1"}]}
    httpserver.expect_request("/search").respond_with_json(page)  # every page links to itself
    finished, error = _bounded(lambda: stac_search.search_items(base, COLLECTION), 30)
    assert finished and isinstance(error, StacError) and "loop" in str(error), error
    assert len(httpserver.log) < 10


def test_search_stops_when_new_tokens_bring_the_same_items(httpserver):
    from werkzeug import Response

    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_json(_landing(base))
    items = [landsat_item(base, s).to_dict() for s in SCENES]
    count = [0]

    def search(request):
        count[0] += 1
        return Response(json.dumps({"type": "FeatureCollection", "features": items, "links": [
            {"rel": "next", "href": f"{base}/search?token={count[0]}"}]}),
            content_type="application/geo+json")

    httpserver.expect_request("/search").respond_with_handler(search)
    finished, error = _bounded(lambda: stac_search.search_items(base, COLLECTION), 30)
    assert finished and isinstance(error, StacError) and "repeats items" in str(error), error
    assert count[0] < 10


def test_search_on_an_item_collection_url_says_to_give_it_as_scenes(runner, httpserver,
                                                                     tmp_path):
    base = httpserver.url_for("").rstrip("/")
    collection = pystac.ItemCollection([landsat_item(base, s) for s in SCENES])
    httpserver.expect_request("/items.json").respond_with_json(collection.to_dict())
    result = runner.invoke(cli, ["-q", "search", "--stac", f"{base}/items.json", "--collection",
                                 COLLECTION, "--out", str(tmp_path / "i.json")])
    line = _one_line(result)
    assert "not a STAC API" in line and "SCENES" in line, line


def test_http_error_pages_are_not_pasted_into_the_message(runner, httpserver, tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(stac_search, "RETRY_BACKOFF", 0.0)
    page = ("<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>"
            + "<p>upstream trouble</p>" * 200 + "</body></html>")
    httpserver.expect_request("/").respond_with_data(page, status=404,
                                                     content_type="text/html")
    result = runner.invoke(cli, ["-q", "search", "--stac", httpserver.url_for("/"),
                                 "--collection", COLLECTION, "--out", str(tmp_path / "i.json")])
    line = _one_line(result)
    assert "404" in line and "<" not in line and len(line) < 400, line


@pytest.mark.parametrize("query", ["eo:cloud_cover<<60", "eo:cloud_cover<=>60",
                                   "eo:cloud_cover<"])
def test_malformed_queries_are_refused_before_any_request(runner, httpserver, tmp_path, query):
    result = runner.invoke(cli, ["-q", "search", "--stac", httpserver.url_for("/"),
                                 "--collection", COLLECTION, "--query", query,
                                 "--out", str(tmp_path / "i.json")])
    line = _one_line(result, code=2)
    assert "--query" in line, line
    assert not httpserver.log


@pytest.mark.parametrize("url", ["file:///etc/passwd", "notaurl", "ftp://127.0.0.1/x",
                                 "http://"])
def test_search_refuses_what_is_not_an_http_url(runner, tmp_path, url):
    result = runner.invoke(cli, ["-q", "search", "--stac", url, "--collection", COLLECTION,
                                 "--out", str(tmp_path / "i.json")])
    line = _one_line(result, code=2)
    assert "--stac" in line and "http" in line, line


def test_a_malformed_item_in_a_search_page_is_one_line(runner, httpserver, tmp_path):
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_json(_landing(base))
    bad = landsat_item(base, SCENES[0]).to_dict()
    bad["geometry"] = "nowhere"
    bad["bbox"] = "x"
    bad["assets"] = []
    httpserver.expect_request("/search").respond_with_json(
        {"type": "FeatureCollection", "features": [bad, 7], "links": []})
    result = runner.invoke(cli, ["-q", "search", "--stac", base, "--collection", COLLECTION,
                                 "--out", str(tmp_path / "i.json")])
    line = _one_line(result)
    assert base in line, line


def test_a_landing_page_cannot_make_search_read_a_local_file(httpserver, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    base = httpserver.url_for("").rstrip("/")
    landing = _landing(base)
    landing["links"] = [{"rel": "search", "href": str(secret), "method": "GET"}]
    httpserver.expect_request("/").respond_with_json(landing)
    finished, error = _bounded(lambda: stac_search.search_items(base, COLLECTION), 30)
    assert finished and isinstance(error, StacError), error


# ----------------------------------------------------------------------- settings from a bundle
def _edited_bundle(field_bundle, folder, **scenes):
    """A copy of the bundle whose saved ``scenes`` config is changed, its content hash
    recomputed (as whoever edits a bundle would)."""
    import shutil

    from landcover.bundle import read_metadata, write_metadata

    out = folder / "edited_model"
    shutil.copytree(field_bundle, out)
    meta = read_metadata(out)
    saved = meta.setdefault("config", {}).setdefault("scenes", {})
    for key, value in scenes.items():
        node = saved
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    write_metadata(out, {k: v for k, v in meta.items() if k != "content_hash"})
    return out


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module that leaves a marker file when it is imported or its ``sign`` is called."""
    marker = tmp_path / "ran"
    (tmp_path / "lc_evil_signer.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "def sign(href):\n"
        f"    Path({str(marker)!r}).write_text(href)\n"
        "    return href\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "lc_evil_signer", raising=False)
    return marker


def test_a_bundle_cannot_run_code_or_fetch_a_grid(runner, field_series, field_bundle, tmp_path,
                                                  evil_module):
    pytest.importorskip("tensorflow")
    from landcover.devserver import serve

    served, server, base = serve(tmp_path)
    try:
        bundle = _edited_bundle(field_bundle, tmp_path, **{
            "stac.signer": "lc_evil_signer:sign", "grid.like": f"/vsicurl/{base}/like.tif"})
        scenes = [str(s) for s in field_series[0]]
        result = runner.invoke(cli, ["-q", "classify", *scenes, "--model", str(bundle),
                                     "--out", str(tmp_path / "map.tif")])
        assert result.exit_code == 0, result.output
        assert not evil_module.exists(), "the bundle's signer module was imported"
        assert not served.requests, served.requests  # the bundle's grid.like was not fetched
    finally:
        server.shutdown()
        server.server_close()


def test_the_users_own_config_still_sets_them(field_bundle, tmp_path):
    pytest.importorskip("tensorflow")
    from landcover.classify import resolve_config

    bundle = _edited_bundle(field_bundle, tmp_path, **{"stac.signer": "os:system",
                                                       "grid.like": "/etc/passwd"})
    _, cfg = resolve_config(bundle)
    assert cfg.scenes.stac.signer == "none" and cfg.scenes.grid.like is None
    _, cfg = resolve_config(bundle, None, ["scenes.stac.signer=planetary_computer",
                                           f"scenes.grid.like={tmp_path / 'mine.tif'}"])
    assert cfg.scenes.stac.signer == "planetary_computer"
    assert cfg.scenes.grid.like == str(tmp_path / "mine.tif")


def test_a_bundles_profile_path_is_not_read(field_bundle, tmp_path):
    pytest.importorskip("tensorflow")
    from landcover.classify import resolve_config

    bundle = _edited_bundle(field_bundle, tmp_path, profile="/etc/hostname.yaml")
    _, cfg = resolve_config(bundle)
    assert cfg.scenes.profile != "/etc/hostname.yaml"


def test_a_bundles_settings_are_validated_naming_the_bundle(runner, field_series, field_bundle,
                                                            tmp_path):
    pytest.importorskip("tensorflow")
    from conftest import one_line_error

    bundle = _edited_bundle(field_bundle, tmp_path, chunk_size="big")
    scenes = [str(s) for s in field_series[0]]
    one_line_error(runner.invoke(cli, ["-q", "classify", *scenes, "--model", str(bundle),
                                       "--out", str(tmp_path / "map.tif")]),
                   1, str(bundle), "scenes.chunk_size")
    assert not (tmp_path / "map.tif").exists()


# ------------------------------------------------------------------------- STAC documents as SCENES
rasterio = pytest.importorskip("rasterio")

SCENE = "LC08_L2SP_193026_20230610_20230619_02_T1"


def scene_item(folder, base: str) -> dict:
    """A hand-made C2 L2 item of a scene folder whose files lie under ``base`` (a URL or a
    folder), with proj:* from the red band's header."""
    import datetime as dt

    sid = folder.name
    with rasterio.open(folder / f"{sid}_SR_B4.TIF") as src:
        shape, transform, epsg = [src.height, src.width], list(src.transform)[:6], src.crs.to_epsg()
    item = pystac.Item(sid, {"type": "Polygon", "coordinates": [[[14.0, 52.0], [15.0, 52.0],
                       [15.0, 53.0], [14.0, 53.0], [14.0, 52.0]]]}, [14.0, 52.0, 15.0, 53.0],
                       dt.datetime(2023, 6, 10, 10), {"proj:epsg": epsg, "proj:shape": shape,
                                                      "proj:transform": transform},
                       collection="landsat-c2-l2")
    for f in sorted(folder.iterdir()):
        key = f.name[len(sid) + 1:].split(".")[0]
        item.add_asset(key, pystac.Asset(f"{base}/{sid}/{f.name}",
                                         roles=["reflectance"] if "SR_B" in f.name else ["data"]))
    return item.to_dict(include_self_link=False)


@pytest.fixture
def site(tmp_path):
    """The test scene copied under ``tmp_path/data`` and served over HTTP (loopback)."""
    import shutil

    from conftest import SCENES as SCENE_DIR
    from landcover.devserver import serve

    root = tmp_path / "data"
    shutil.copytree(SCENE_DIR / SCENE, root / SCENE)
    served, server, base = serve(root)
    yield {"root": root, "base": base, "served": served, "folder": root / SCENE}
    server.shutdown()
    server.server_close()


def _collection(*items) -> dict:
    return {"type": "FeatureCollection", "features": list(items)}


def _write(root, name, doc) -> str:
    (root / name).write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(root / name)


def _grid_of(href):
    from landcover.scenes import as_scenes
    from landcover.stac import StacScenes

    return as_scenes(StacScenes((href,)))[0].grid


def _folder_grid(folder):
    from landcover.scenes import LocalScenes, as_scenes

    return as_scenes(LocalScenes((str(folder),)))[0].grid


def test_a_transform_far_off_the_files_is_read_on_the_headers_grid(site, caplog):
    item = scene_item(site["folder"], site["base"])
    item["properties"]["proj:transform"][2] += 1_000_000  # 1000 km east of the files
    _write(site["root"], "items.json", _collection(item))
    with caplog.at_level("WARNING", logger="landcover.stac"):
        grid = _grid_of(f"{site['base']}/items.json")
    assert grid == _folder_grid(site["folder"])
    assert SCENE in caplog.text and "SR_B" in caplog.text and "header" in caplog.text


def test_a_downsampled_copy_gives_the_grid_of_its_files(site):
    """The item describes the 30 m product; the files are a copy at 60 m: the folder and the item
    give the same grid."""
    from affine import Affine
    from rasterio.enums import Resampling

    copy = site["root"] / "small" / SCENE
    copy.mkdir(parents=True)
    for f in site["folder"].iterdir():
        if f.suffix.upper() != ".TIF":
            (copy / f.name).write_bytes(f.read_bytes())
            continue
        with rasterio.open(f) as src:
            data = src.read(out_shape=(1, src.height // 2, src.width // 2),
                            resampling=Resampling.nearest)
            profile = src.profile | {"width": src.width // 2, "height": src.height // 2,
                                     "transform": src.transform @ Affine.scale(2)}
        with rasterio.open(copy / f.name, "w", **profile) as dst:
            dst.write(data)
    item = scene_item(site["folder"], f"{site['base']}/small")  # proj:* of the 30 m files
    _write(site["root"], "items.json", _collection(item))
    grid = _grid_of(f"{site['base']}/items.json")
    assert grid == _folder_grid(copy) and grid.res == (60.0, 60.0)


def test_a_huge_proj_shape_does_not_hang_info(site, runner):
    item = scene_item(site["folder"], site["base"])
    item["properties"]["proj:shape"] = [2_000_000, 2_000_000]
    _write(site["root"], "items.json", _collection(item))
    finished, result = _bounded(lambda: runner.invoke(
        cli, ["-q", "info", f"{site['base']}/items.json", "--json"]), 60)
    assert finished, "info hangs"
    assert result.exit_code == 0, result.output
    assert '"width": 64' in result.output and "2000000" not in result.output


def test_a_remote_item_collection_may_not_point_at_local_files(site, runner):
    item = scene_item(site["folder"], f"file://{site['root']}")
    _write(site["root"], "items.json", _collection(item))
    before = len(site["served"].requests)
    result = runner.invoke(cli, ["-q", "info", f"{site['base']}/items.json"])
    line = _one_line(result)
    assert SCENE in line and "local files" in line, line
    assert len(site["served"].requests) == before + 1  # the document only
    # the same document as a local file (the user's own) may name local files
    local = _write(site["root"], "local.json", _collection(item))
    assert runner.invoke(cli, ["-q", "info", local]).exit_code == 0


def test_a_remote_item_may_not_name_itself_local(site):
    item = scene_item(site["folder"], ".")  # relative hrefs, an absolute local self link
    item["links"] = [{"rel": "self", "href": f"file://{site['root']}/x.json"}]
    for asset in item["assets"].values():
        asset["href"] = asset["href"][2:]
    _write(site["root"], "items.json", _collection(item))
    from landcover.scenes import as_scenes
    from landcover.stac import StacScenes

    (scene,) = as_scenes(StacScenes((f"{site['base']}/items.json",)))
    assert all(p.startswith(f"/vsicurl/{site['base']}/") for p in scene.bands.values())


def test_a_remote_catalog_may_not_link_to_local_files(site, runner):
    item = scene_item(site["folder"], site["base"])
    local_item = _write(site["root"], "item.json", item)
    catalog_doc = {"type": "Catalog", "stac_version": "1.0.0", "id": "c", "description": "d",
                   "links": [{"rel": "item", "href": f"file://{local_item}"}]}
    _write(site["root"], "catalog.json", catalog_doc)
    line = _one_line(runner.invoke(cli, ["-q", "info", f"{site['base']}/catalog.json"]))
    assert "local files" in line, line


def test_a_catalog_that_links_to_itself_ends(site, runner):
    item = scene_item(site["folder"], site["base"])
    _write(site["root"], "item.json", item)
    base = site["base"]
    for name, links in (("a.json", [{"rel": "child", "href": "./a.json"},
                                     {"rel": "child", "href": f"{base}/b.json"}]),
                        ("b.json", [{"rel": "child", "href": "a.json"},
                                    {"rel": "item", "href": "item.json"}])):
        _write(site["root"], name, {"type": "Catalog", "stac_version": "1.0.0", "id": name,
                                    "description": "d", "links": links})
    finished, result = _bounded(lambda: runner.invoke(cli, ["-q", "info", f"{base}/a.json"]), 60)
    assert finished, "the catalog walk does not end"
    assert result.exit_code == 0 and SCENE in result.output, result.output


def _mutations():
    def drop(key):
        return lambda d: d.pop(key)

    def prop(key, value):
        return lambda d: d["properties"].__setitem__(key, value)

    def red(key, value):
        return lambda d: d["assets"]["SR_B4"].__setitem__(key, value)

    return {
        "no assets": drop("assets"),
        "empty assets": lambda d: d.__setitem__("assets", {}),
        "no id": drop("id"),
        "empty id": lambda d: d.__setitem__("id", ""),
        "asset without href": lambda d: d["assets"]["SR_B4"].pop("href"),
        "shape of text": prop("proj:shape", "64x64"),
        "shape of floats": prop("proj:shape", [64.5, "64"]),
        "negative shape": prop("proj:shape", [-64, 64]),
        "short transform": prop("proj:transform", [30, 0]),
        "transform of text": prop("proj:transform", ["a", 0, 0, 0, -30, 0]),
        "zero pixel": prop("proj:transform", [0, 0, 600000, 0, -30, 5800020]),
        "epsg of text": prop("proj:epsg", "utm"),
        "unknown code": prop("proj:code", "EPSG:999999999"),
        "raster:bands text": red("raster:bands", "scaled"),
        "raster:bands scale text": red("raster:bands", [{"scale": "x", "offset": 0}]),
        "raster:bands list of lists": red("raster:bands", [[1]]),
        "collection number": lambda d: d.__setitem__("collection", 5),
        "properties list": lambda d: d.__setitem__("properties", []),
    }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_malformed_items_are_one_line(site, runner, name):
    item = scene_item(site["folder"], site["base"])
    _mutations()[name](item)
    for doc in (_collection(item), item):
        path = _write(site["root"], "odd.json", doc)
        _one_line(runner.invoke(cli, ["-q", "info", path]))


@pytest.mark.parametrize("text", ['{"type": "FeatureCollection", "features": [{"type": "Fea',
                                  "[1, 2]", '{"type": "FeatureCollection", "features": 3}',
                                  '{"type": "Catalog", "links": 3}',
                                  '{"type": "Catalog", "links": [{"rel": "child"}]}',
                                  "\xff\xfe"])
def test_malformed_documents_are_one_line(site, runner, text):
    path = _write(site["root"], "odd.json", text)
    _one_line(runner.invoke(cli, ["-q", "info", path]))


def test_a_body_cut_short_is_one_line(runner):
    """A server that promises 1000 bytes, sends 20 and closes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/items.json"

        def answer():
            conn, _ = s.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                             b"Content-Type: application/json\r\n\r\n{\"type\": \"Feature")

        threading.Thread(target=answer, daemon=True).start()
        finished, result = _bounded(lambda: runner.invoke(cli, ["-q", "info", url]), 60)
    assert finished
    line = _one_line(result)
    assert url in line, line


def test_search_results_may_not_point_at_local_files(httpserver):
    """Saved as items.json, they would be read as the user's own document."""
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_json(_landing(base))
    item = landsat_item(base, SCENES[0]).to_dict()
    item["assets"]["red"]["href"] = "file:///etc/hostname"
    httpserver.expect_request("/search").respond_with_json(
        {"type": "FeatureCollection", "features": [item], "links": []})
    finished, error = _bounded(lambda: stac_search.search_items(base, COLLECTION), 30)
    assert finished and isinstance(error, StacError) and "local files" in str(error), error


def test_a_stac_document_download_times_out(monkeypatch, runner):
    from landcover.stac import items

    monkeypatch.setattr(items, "TIMEOUT", 1.0)
    with socket.socket() as s:  # accepts, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/items.json"
        finished, result = _bounded(lambda: runner.invoke(cli, ["-q", "info", url]), 30)
    assert finished
    line = _one_line(result)
    assert url in line and "timed out" in line, line
