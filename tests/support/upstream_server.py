"""A small upstream index for the fallback tests: PEP 691 JSON (and PEP 503 HTML) pages,
files and their PEP 658 metadata, on 127.0.0.1 — never the internet.

It can be told to go down (connections reset), to be slow (answers after a delay), to
serve big pages (thousands of synthetic files) and huge files (generated on disk and
streamed, so a 300 MB wheel costs no memory). It counts the requests it answers and
honours ``If-None-Match`` with 304.

In tests: ``with UpstreamServer.running(tmp_path) as up: up.add_wheel("demo", "1.0")``.
Standalone (benchmarks): ``python -m tests.support.upstream_server DIR PORT``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from tests.support.distributions import core_metadata, sdist_bytes, wheel_bytes

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@dataclass
class Hosted:
    project: str
    filename: str
    path: Path
    sha256: str
    size: int
    metadata: bytes | None  # PEP 658 file, served at <file>.metadata
    requires_python: str | None = None
    yanked: str | None = None


class UpstreamServer:
    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, dict[str, Hosted]] = {}
        self.big_pages: dict[str, int] = {}  # project → number of synthetic files
        self.down = False
        self.delay = 0.0  # seconds before every answer
        self.html_only = False  # answer pages as PEP 503 HTML whatever the Accept header
        self.redirects: dict[str, str] = {}  # path → Location of a 302
        self.requests: Counter[str] = Counter()  # path → count
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> UpstreamServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path) -> Iterator[UpstreamServer]:
        server = cls(root).start()
        try:
            yield server
        finally:
            server.stop()

    # --- content ------------------------------------------------------------------------

    def _host(self, project: str, filename: str, data_path: Path, metadata: bytes | None, **kw):
        sha = hashlib.sha256()
        with open(data_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        hosted = Hosted(
            project, filename, data_path, sha.hexdigest(), data_path.stat().st_size, metadata, **kw
        )
        with self._lock:
            self.files.setdefault(project, {})[filename] = hosted
        return hosted

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        requires_dist: tuple[str, ...] = (),
        requires_python: str | None = None,
        yanked: str | None = None,
        with_metadata: bool = True,
    ) -> Hosted:
        filename, data = wheel_bytes(
            name, version, requires_dist=requires_dist, requires_python=requires_python
        )
        path = self.root / filename
        path.write_bytes(data)
        meta = core_metadata(
            name, version, requires_dist=requires_dist, requires_python=requires_python
        ).encode()
        return self._host(
            canonicalize_name(name),
            filename,
            path,
            meta if with_metadata else None,
            requires_python=requires_python,
            yanked=yanked,
        )

    def add_sdist(self, name: str, version: str, **kwargs) -> Hosted:
        filename, data = sdist_bytes(name, version, **kwargs)
        path = self.root / filename
        path.write_bytes(data)
        return self._host(canonicalize_name(name), filename, path, None)

    def add_huge_wheel(self, name: str, version: str, size: int) -> Hosted:
        """A valid wheel of about ``size`` bytes (one stored, incompressible member),
        written to disk in 1 MB blocks."""
        dist = canonicalize_name(name).replace("-", "_")
        filename = f"{dist}-{version}-py3-none-any.whl"
        path = self.root / filename
        meta = core_metadata(name, version).encode()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(f"{dist}-{version}.dist-info/METADATA", meta)
            zf.writestr(
                f"{dist}-{version}.dist-info/WHEEL",
                "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            )
            with zf.open(zipfile.ZipInfo(f"{dist}/blob.bin"), "w", force_zip64=True) as out:
                block = os.urandom(1 << 20)
                for _ in range(max(1, size // len(block))):
                    out.write(block)
            zf.writestr(f"{dist}-{version}.dist-info/RECORD", "")
        return self._host(canonicalize_name(name), filename, path, meta)

    def add_big_page(self, project: str, files: int) -> None:
        """A page listing ``files`` synthetic wheels (listed only; downloads are 404)."""
        self.big_pages[canonicalize_name(project)] = files

    def corrupt(self, project: str, filename: str) -> None:
        """Change the file's bytes, keeping the sha256 the page announces."""
        hosted = self.files[project][filename]
        data = bytearray(hosted.path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        hosted.path.write_bytes(bytes(data))

    def count(self, prefix: str = "/") -> int:
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.startswith(prefix))

    # --- pages --------------------------------------------------------------------------

    def _entries(self, project: str) -> list[dict]:
        if project in self.big_pages:
            dist = project.replace("-", "_")
            return [
                {
                    "filename": f"{dist}-1.{i}.0-py3-none-any.whl",
                    "url": f"/files/{dist}-1.{i}.0-py3-none-any.whl",
                    "hashes": {"sha256": hashlib.sha256(str(i).encode()).hexdigest()},
                    "requires-python": ">=3.8",
                    "core-metadata": {"sha256": hashlib.sha256(b"m%d" % i).hexdigest()},
                    "yanked": False,
                    "size": 1000 + i,
                    "upload-time": "2024-01-01T00:00:00.000000Z",
                }
                for i in range(self.big_pages[project])
            ]
        out = []
        for hosted in sorted(self.files.get(project, {}).values(), key=lambda h: h.filename):
            meta = (
                {"sha256": hashlib.sha256(hosted.metadata).hexdigest()}
                if hosted.metadata
                else False
            )
            out.append(
                {
                    "filename": hosted.filename,
                    "url": f"/files/{hosted.filename}",
                    "hashes": {"sha256": hosted.sha256},
                    "requires-python": hosted.requires_python,
                    "core-metadata": meta,
                    "yanked": hosted.yanked if hosted.yanked else (hosted.yanked == ""),
                    "size": hosted.size,
                    "upload-time": "2024-01-01T00:00:00.000000Z",
                }
            )
        return out

    def _page(self, project: str, as_json: bool) -> bytes:
        entries = self._entries(project)
        if as_json:
            return json.dumps(
                {"meta": {"api-version": "1.1"}, "name": project, "files": entries}
            ).encode()
        links = []
        for e in entries:
            attrs = f'href="../../files/{e["filename"]}#sha256={e["hashes"]["sha256"]}"'
            if e["requires-python"]:
                attrs += f' data-requires-python="{e["requires-python"].replace(">", "&gt;")}"'
            if e["core-metadata"]:
                attrs += f' data-core-metadata="sha256={e["core-metadata"]["sha256"]}"'
            if e["yanked"] is not False:
                attrs += f' data-yanked="{e["yanked"] if e["yanked"] is not True else ""}"'
            links.append(f"<a {attrs}>{e['filename']}</a><br/>")
        return ("<!DOCTYPE html><html><body>" + "\n".join(links) + "</body></html>").encode()

    # --- HTTP ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                if server.down:
                    # A server that is down: the connection is cut without an answer.
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                with server._lock:
                    server.requests[path] += 1
                if server.delay:
                    time.sleep(server.delay)
                if path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                parts = path.strip("/").split("/")
                if len(parts) == 2 and parts[0] == "simple":
                    return self._project(parts[1])
                if len(parts) == 2 and parts[0] == "files":
                    return self._file(parts[1])
                self._send(404, b"not found", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str, headers=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _project(self, name: str) -> None:
                project = canonicalize_name(name)
                if project not in server.files and project not in server.big_pages:
                    return self._send(404, b"no such project", "text/plain")
                as_json = not server.html_only and JSON_V1 in self.headers.get("Accept", "")
                body = server._page(project, as_json)
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                ctype = JSON_V1 if as_json else "text/html; charset=utf-8"
                return self._send(200, body, ctype, {"ETag": etag})

            def _file(self, filename: str) -> None:
                is_meta = filename.endswith(".metadata")
                name = filename.removesuffix(".metadata")
                hosted = next((f[name] for f in server.files.values() if name in f), None)
                if hosted is None or (is_meta and hosted.metadata is None):
                    return self._send(404, b"no such file", "text/plain")
                if is_meta:
                    return self._send(200, hosted.metadata, "text/plain")  # type: ignore[arg-type]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(hosted.path.stat().st_size))
                self.end_headers()
                with open(hosted.path, "rb") as fh, contextlib.suppress(OSError):
                    shutil.copyfileobj(fh, self.wfile, 1 << 20)
                return None

        return Handler


def main() -> None:  # pragma: no cover - benchmarks
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    server = UpstreamServer(root, port)
    print(f"upstream on {server.url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
