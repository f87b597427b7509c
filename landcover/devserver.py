"""A local HTTP server for development: files with byte ranges, and a small STAC API.

* :func:`serve` serves a folder's files with byte ranges (single and multipart), for the tests and
  benchmarks of remote reads: it counts requests and bytes, and can answer 500 or drop connections
  for chosen files.
* :func:`serve_stac` (``python -m landcover.devserver --stac DIR``) serves the scenes under ``DIR``
  as a STAC API that ``landcover search`` can query, and their files under ``/files/``, so that the
  ItemCollection it writes can be read by ``landcover info``, ``prepare`` and ``classify`` over
  HTTP. Scene folders that ``landcover`` reads (the sensor profiles of ``scenes.profile: auto``)
  become items, one per scene, with every file of the folder as an asset; STAC Item and
  ItemCollection JSON files under ``DIR`` are served as they are (relative asset hrefs point into
  ``/files/``). Landsat Collection 2 Level-2 scenes are in the collection ``landsat-c2-l2``, other
  layouts in one named after their profile.

The STAC API is a subset of STAC API 1.0 for local use, not a production server:

===================================  =============================================================
``GET /``                            landing page (``conformsTo``, links to the endpoints)
``GET /conformance``                 the conformance classes
``GET /collections``                 the collections, with their extents
``GET /collections/{id}``            one collection
``GET /collections/{id}/items``      its items (``limit``, ``bbox``, ``datetime``; paged)
``GET /collections/{id}/items/{i}``  one item
``GET|POST /search``                 item search: ``collections``, ``ids``, ``bbox`` (against the
                                     items' bboxes), ``datetime`` (an instant or an interval with
                                     ``..``), ``limit`` (10 by default, at most 1000), ``query``
                                     (``eq neq lt lte gt gte in``); paged by ``token``
``GET /files/{path}``                the files under ``DIR``, with byte ranges
===================================  =============================================================

``intersects`` and the other extensions are refused with HTTP 400. Everything is read once, when
the server starts; it listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from landcover.stac.filter import BadRequest, search

log = logging.getLogger(__name__)

STAC_VERSION = "1.0.0"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
LANDSAT_C2L2 = "landsat-c2-l2"
PLATFORMS = {"LC09": "landsat-9", "LC08": "landsat-8", "LE07": "landsat-7", "LT05": "landsat-5",
             "LT04": "landsat-4"}
GEOJSON = "application/geo+json"
EXTENSIONS = ("https://stac-extensions.github.io/eo/v1.1.0/schema.json",
              "https://stac-extensions.github.io/projection/v1.1.0/schema.json")


class Served:
    """What the server did: requests, bytes sent, and faults to inject per file name."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.bytes = 0
        self.fail: dict[str, int] = {}  # file name -> number of 500 answers still to give
        self.drop: set[str] = set()  # file names whose connections are closed without answer
        self.lock = threading.Lock()


class _Files(BaseHTTPRequestHandler):
    """Files under ``served.root`` with byte ranges; subclasses set ``served``."""

    served: Served

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._serve(self.path, body=False)

    def do_GET(self):
        self._serve(self.path, body=True)

    def _serve(self, url_path: str, body: bool):
        served = self.served
        name = urllib.parse.unquote(url_path.split("?")[0]).lstrip("/")
        with served.lock:
            served.requests.append(f"{self.command} {name} {self.headers.get('Range', '')}")
            failing = served.fail.get(Path(name).name, 0)
            if failing:
                served.fail[Path(name).name] = failing - 1
        if Path(name).name in served.drop:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if failing:
            self.send_error(500, "injected")
            return
        root = served.root.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        ranges = self.headers.get("Range")
        if not ranges:
            self._send(200, data, {"Content-Type": "application/octet-stream"}, body)
            return
        spans = []
        for part in ranges.removeprefix("bytes=").split(","):
            a, b = part.strip().split("-")
            a, b = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
            spans.append((a, b))
        if len(spans) == 1:
            a, b = spans[0]
            self._send(206, data[a:b + 1], {"Content-Type": "application/octet-stream",
                                            "Content-Range": f"bytes {a}-{b}/{len(data)}"},
                       body)
            return
        out = b""
        for a, b in spans:
            out += (b"--SPAN\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Range: bytes {a}-{b}/{len(data)}\r\n\r\n".encode()
                    + data[a:b + 1] + b"\r\n")
        out += b"--SPAN--\r\n"
        self._send(206, out, {"Content-Type": "multipart/byteranges; boundary=SPAN"}, body)

    def _send(self, code, payload, headers, body):
        self.send_response(code)
        for k, v in {**headers, "Content-Length": str(len(payload)),
                     "Accept-Ranges": "bytes"}.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(payload)
            with self.served.lock:
                self.served.bytes += len(payload)


def _handler(served: Served):
    return type("Handler", (_Files,), {"served": served})


def serve(root: Path):
    """Serve ``root`` on 127.0.0.1 (a free port) in a daemon thread; returns ``(served, server,
    base URL)``; stop with ``server.shutdown()``."""
    served = Served(Path(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return served, server, f"http://127.0.0.1:{server.server_address[1]}"


# ----------------------------------------------------------------------------------- the items
class Catalogue:
    """The items of a folder, by collection, with their asset hrefs relative to ``/files/``
    (made absolute for each answer with the server's base URL)."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.items: list[dict] = []
        self.skipped: list[str] = []
        self._scenes()
        self._documents()
        self.items.sort(key=lambda it: (it["properties"].get("datetime") or "", it["id"]))
        self.collections = sorted({it["collection"] for it in self.items})

    def _scenes(self) -> None:
        from landcover.errors import LandcoverError
        from landcover.scenes import find_scenes

        try:
            scenes = find_scenes([str(self.root)])
        except LandcoverError as exc:  # no scene folder at all (JSON documents only), or a bad one
            log.info("%s: %s", self.root, exc)
            return
        for scene in scenes:
            folder = Path(scene.source).resolve()
            if not folder.is_dir():
                self.skipped.append(f"{scene.source} (an archive: unpack it to serve its files)")
                continue
            self.items.append(self._scene_item(scene, folder))

    def _scene_item(self, scene, folder: Path) -> dict:
        from rasterio.warp import transform_bounds

        g = scene.grid
        w, s, e, n = transform_bounds(g.crs, "EPSG:4326", *g.bounds, densify_pts=21)
        ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
        band_files = {Path(p).name: band for band, p in scene.bands.items()}
        assets = {}
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            key = f.name.removeprefix(f"{scene.scene_id}_")
            key = key.rsplit(".", 1)[0] if f.suffix.lower() in (".tif", ".tiff") else \
                key.replace(".", "_")
            tif = f.suffix.lower() in (".tif", ".tiff")
            asset = {"href": f.relative_to(self.root).as_posix(),
                     "type": "image/tiff; application=geotiff" if tif else
                     ("text/plain" if f.suffix.lower() == ".txt" else "application/octet-stream"),
                     "roles": ["data"] if tif else ["metadata"]}
            if f.name in band_files:
                asset["title"] = band_files[f.name]
                asset["roles"] = ["data", "reflectance"]
            assets[key] = asset
        epsg = g.crs.split(":", 1)[1] if g.crs.upper().startswith("EPSG:") else None
        props = {"datetime": f"{scene.date.isoformat()}T00:00:00Z",
                 "platform": PLATFORMS.get(scene.sensor, scene.sensor),
                 "proj:shape": [g.height, g.width], "proj:transform": list(g.transform),
                 "landcover:profile": scene.profile}
        if epsg:
            props["proj:epsg"] = int(epsg)
        if scene.cloud_cover is not None:
            props["eo:cloud_cover"] = scene.cloud_cover
        if scene.path is not None:
            props["landsat:wrs_path"], props["landsat:wrs_row"] = \
                f"{scene.path:03d}", f"{scene.row:03d}"
        return {"type": "Feature", "stac_version": STAC_VERSION,
                "stac_extensions": list(EXTENSIONS),
                "id": scene.scene_id, "bbox": [w, s, e, n],
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": props, "assets": assets, "links": [],
                "collection": LANDSAT_C2L2 if scene.profile == "landsat_c2l2" else scene.profile}

    def _documents(self) -> None:
        """STAC Items and ItemCollections saved as JSON under the folder."""
        for f in sorted(self.root.rglob("*.json")):
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(doc, dict):
                continue
            found = doc.get("features") if doc.get("type") == "FeatureCollection" else \
                [doc] if doc.get("type") == "Feature" else []
            for item in found if isinstance(found, list) else []:
                if not isinstance(item, dict) or "id" not in item or \
                        not isinstance(item.get("assets"), dict):
                    self.skipped.append(f"{f} (an item without id or assets)")
                    continue
                item = json.loads(json.dumps(item))  # a copy
                item.setdefault("collection", "items")
                item["links"] = [link for link in item.get("links", [])
                                 if link.get("rel") not in ("self", "root", "parent",
                                                            "collection")]
                for asset in item["assets"].values():
                    href = str(asset.get("href", ""))
                    if href and "://" not in href and not href.startswith("/"):
                        local = (f.parent / href).resolve()
                        if local.is_relative_to(self.root):
                            asset["href"] = local.relative_to(self.root).as_posix()
                self.items.append(item)

    def collection(self, cid: str, base: str) -> dict:
        items = [it for it in self.items if it["collection"] == cid]
        boxes = [it["bbox"] for it in items if it.get("bbox")]
        times = sorted(it["properties"]["datetime"] for it in items
                       if it["properties"].get("datetime"))
        bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                max(b[3] for b in boxes)] if boxes else [-180, -90, 180, 90]
        return {"type": "Collection", "stac_version": STAC_VERSION, "id": cid,
                "description": f"{len(items)} item(s) served from {self.root}",
                "license": "other",
                "extent": {"spatial": {"bbox": [bbox]},
                           "temporal": {"interval": [[times[0] if times else None,
                                                      times[-1] if times else None]]}},
                "links": [{"rel": "self", "href": f"{base}/collections/{cid}",
                           "type": "application/json"},
                          {"rel": "root", "href": f"{base}/", "type": "application/json"},
                          {"rel": "items", "href": f"{base}/collections/{cid}/items",
                           "type": GEOJSON}]}

    def answer(self, item: dict, base: str) -> dict:
        """The item with absolute hrefs and its links."""
        out = json.loads(json.dumps(item))
        for asset in out["assets"].values():
            href = str(asset.get("href", ""))
            if href and "://" not in href and not href.startswith("/"):
                asset["href"] = f"{base}/files/{urllib.parse.quote(href)}"
        cid = out["collection"]
        out["links"] = [*out.get("links", []),
                        {"rel": "self", "href": f"{base}/collections/{cid}/items/{out['id']}",
                         "type": GEOJSON},
                        {"rel": "collection", "href": f"{base}/collections/{cid}",
                         "type": "application/json"},
                        {"rel": "root", "href": f"{base}/", "type": "application/json"}]
        return out


# ------------------------------------------------------------------------------------ the API
def _stac_handler(served: Served, catalogue: Catalogue):
    class Handler(_Files):
        def _base(self) -> str:
            host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
            return f"http://{host}"

        def do_HEAD(self):
            self._route(None, body=False)

        def do_GET(self):
            self._route(None, body=True)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                params = json.loads(raw or b"{}")
            except ValueError:
                params = None
            if not isinstance(params, dict):
                self._json(400, {"code": "BadRequest", "description": "the body is not a JSON "
                                 "object"})
                return
            self._route(params, body=True)

        def _route(self, body_params: dict | None, body: bool):
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
            if parts[:1] == ["files"]:
                self._serve("/" + "/".join(parts[1:]), body)
                return
            base = self._base()
            params = body_params if body_params is not None else \
                {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            try:
                if body_params is not None and parts != ["search"]:
                    self._json(405, {"code": "MethodNotAllowed",
                                     "description": "POST is for /search only"})
                elif not parts:
                    self._json(200, self._landing(base), body)
                elif parts == ["conformance"]:
                    self._json(200, {"conformsTo": CONFORMANCE}, body)
                elif parts == ["collections"]:
                    self._json(200, {"collections": [catalogue.collection(c, base)
                                                     for c in catalogue.collections],
                                     "links": [{"rel": "self", "href": f"{base}/collections"},
                                               {"rel": "root", "href": f"{base}/"}]}, body)
                elif parts[0] == "collections" and len(parts) >= 2 and \
                        parts[1] not in catalogue.collections:
                    self._json(404, {"code": "NotFound",
                                     "description": f"no collection {parts[1]!r}"})
                elif parts[0] == "collections" and len(parts) == 2:
                    self._json(200, catalogue.collection(parts[1], base), body)
                elif parts[0] == "collections" and len(parts) == 3 and parts[2] == "items":
                    self._page(base, f"{base}/collections/{parts[1]}/items",
                               {**params, "collections": [parts[1]]}, None, body)
                elif parts[0] == "collections" and len(parts) == 4 and parts[2] == "items":
                    hit = [it for it in catalogue.items
                           if it["collection"] == parts[1] and it["id"] == parts[3]]
                    if hit:
                        self._json(200, catalogue.answer(hit[0], base), body, GEOJSON)
                    else:
                        self._json(404, {"code": "NotFound",
                                         "description": f"no item {parts[3]!r}"})
                elif parts == ["search"]:
                    self._page(base, f"{base}/search", params, body_params, body)
                else:
                    self._json(404, {"code": "NotFound", "description": f"no {url.path}"})
            except BadRequest as exc:
                self._json(400, {"code": "BadRequest", "description": str(exc)})

        def _page(self, base, href, params, posted, body):
            found, page, after = search(catalogue.items, params)
            links = [{"rel": "root", "href": f"{base}/", "type": "application/json"}]
            if after >= 0:
                if posted is not None:
                    links.append({"rel": "next", "href": href, "method": "POST",
                                  "type": GEOJSON, "body": {**posted, "token": str(after)},
                                  "merge": False})
                else:  # the same query string, from the next offset
                    query = {k: v if isinstance(v, str) else ",".join(map(str, v))
                             for k, v in params.items()
                             if k != "collections" or href.endswith("/search")}
                    query["token"] = str(after)
                    links.append({"rel": "next", "type": GEOJSON, "method": "GET",
                                  "href": f"{href}?{urllib.parse.urlencode(query)}"})
            self._json(200, {"type": "FeatureCollection",
                             "features": [catalogue.answer(it, base) for it in page],
                             "links": links, "numberMatched": len(found),
                             "numberReturned": len(page)}, body, GEOJSON)

        def _landing(self, base):
            return {"type": "Catalog", "stac_version": STAC_VERSION, "id": "landcover-devserver",
                    "title": "landcover development STAC API",
                    "description": f"{len(catalogue.items)} item(s) from {catalogue.root}",
                    "conformsTo": CONFORMANCE,
                    "links": [
                        {"rel": "self", "href": f"{base}/", "type": "application/json"},
                        {"rel": "root", "href": f"{base}/", "type": "application/json"},
                        {"rel": "conformance", "href": f"{base}/conformance",
                         "type": "application/json"},
                        {"rel": "data", "href": f"{base}/collections",
                         "type": "application/json"},
                        {"rel": "search", "href": f"{base}/search", "type": GEOJSON,
                         "method": "GET"},
                        {"rel": "search", "href": f"{base}/search", "type": GEOJSON,
                         "method": "POST"},
                        *[{"rel": "child", "href": f"{base}/collections/{c}",
                           "type": "application/json"} for c in catalogue.collections]]}

        def _json(self, code, doc, body=True, kind="application/json"):
            payload = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

    Handler.served = served
    return Handler


def serve_stac(root: str | Path, host: str = "127.0.0.1", port: int = 0):
    """Serve the scenes and STAC documents under ``root`` as a STAC API (module docstring) in a
    daemon thread; returns ``(catalogue, server, base URL)``; stop with ``server.shutdown()``.

    Raises:
        UsageError: ``root`` is not a folder, or holds no scene or STAC item.
        OSError: the port cannot be had.
    """
    from landcover.errors import UsageError

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder; give a folder of scene folders or STAC items",
                         flag="--stac")
    catalogue = Catalogue(root)
    if not catalogue.items:
        raise UsageError(f"{root}: no scene folder that landcover reads and no STAC item JSON "
                         "found; give a folder of scenes such as data_samples/", flag="--stac")
    server = ThreadingHTTPServer((host, port), _stac_handler(Served(catalogue.root), catalogue))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return catalogue, server, f"http://{shown}:{server.server_address[1]}"


def main(argv=None) -> None:
    """``python -m landcover.devserver --stac DIR [--port 8000]``: serve until Ctrl-C."""
    import click

    from landcover.errors import LandcoverError

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--stac", "folder", required=True, metavar="DIR",
                  help="Folder of scene folders (as landcover reads them) and/or STAC Item or "
                       "ItemCollection JSON files to serve as a STAC API.")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on.")
    @click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
                  help="Port (0: a free one).")
    def command(folder, host, port):
        """Serve scenes as a small local STAC API for 'landcover search' (development only)."""
        import time

        try:
            catalogue, server, url = serve_stac(folder, host, port)
        except LandcoverError as exc:
            click.echo(f"Error: {exc.cli_message()}", err=True)
            raise SystemExit(exc.exit_code) from None
        except OSError as exc:
            click.echo(f"Error: {host}:{port}: cannot listen ({exc.strerror or exc}); choose "
                       "another --port", err=True)
            raise SystemExit(1) from None
        for line in catalogue.skipped:
            click.echo(f"skipped {line}", err=True)
        counts = ", ".join(f"{c} ({sum(it['collection'] == c for it in catalogue.items)})"
                           for c in catalogue.collections)
        click.echo(f"STAC API at {url} with {len(catalogue.items)} item(s): {counts}; "
                   "Ctrl-C to stop", err=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.shutdown()

    command.main(args=argv, prog_name="python -m landcover.devserver")


if __name__ == "__main__":
    main()
