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

from landcover import catalog  # noqa: E402
from landcover.cli.main import cli  # noqa: E402
from landcover.errors import StacError  # noqa: E402


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
    monkeypatch.setattr(catalog, "TIMEOUT", 1.0)
    monkeypatch.setattr(catalog, "RETRIES", 0)
    with socket.socket() as s:  # the kernel accepts connections; nobody ever answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/stac"
        start = time.monotonic()
        finished, error = _bounded(lambda: catalog.search_items(url, COLLECTION), 30)
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
    finished, error = _bounded(lambda: catalog.search_items(base, COLLECTION), 30)
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
    finished, error = _bounded(lambda: catalog.search_items(base, COLLECTION), 30)
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
    monkeypatch.setattr(catalog, "RETRY_BACKOFF", 0.0)
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
    finished, error = _bounded(lambda: catalog.search_items(base, COLLECTION), 30)
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
