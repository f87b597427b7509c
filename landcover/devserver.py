"""A local HTTP server with byte ranges (single and multipart), for tests and benchmarks of remote
reads: it counts requests and bytes, and can answer 500 or drop connections for chosen files."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Served:
    """What the server did: requests, bytes sent, and faults to inject per file name."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.bytes = 0
        self.fail: dict[str, int] = {}  # file name -> number of 500 answers still to give
        self.drop: set[str] = set()  # file names whose connections are closed without answer
        self.lock = threading.Lock()


def _handler(served: Served):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, body: bool):
            name = self.path.split("?")[0].lstrip("/")
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
            path = served.root / name
            if not path.is_file():
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
                with served.lock:
                    served.bytes += len(payload)

    return Handler


def serve(root: Path):
    """Serve ``root`` on 127.0.0.1 (a free port) in a daemon thread; returns ``(served, server,
    base URL)``; stop with ``server.shutdown()``."""
    served = Served(Path(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return served, server, f"http://127.0.0.1:{server.server_address[1]}"
