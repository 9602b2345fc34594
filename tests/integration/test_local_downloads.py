"""Large downloads from local storage (``stratus serve``): exact bytes, headers, ranges,
sent in large chunks (speed: ``benchmarks/bench_download.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import math

import pytest
from starlette.testclient import TestClient

from stratus.web.app import create_app
from stratus.web.files import DOWNLOAD_CHUNK
from tests.support.distributions import write_wheel_with_payload

from .conftest import auth, make_services

PAYLOAD = 3 * 1024 * 1024 + 12345  # more than three chunks, not a multiple of one


@pytest.fixture
def local_app(request, tmp_path):
    return create_app(make_services("local", request, tmp_path))


@pytest.fixture
def big_wheel(local_app, tmp_path) -> tuple[str, bytes]:
    path = write_wheel_with_payload(tmp_path / "dist", "big-lib", "1.0", PAYLOAD, seed=7)
    data = path.read_bytes()
    form = {
        ":action": "file_upload",
        "name": "big-lib",
        "version": "1.0",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    with TestClient(local_app) as client:
        r = client.post("/", data=form, files={"content": (path.name, data)}, headers=auth("alice"))
    assert r.status_code == 200, r.text
    return path.name, data


@pytest.fixture
def client(local_app):
    with TestClient(local_app, follow_redirects=False) as c:
        yield c


def test_a_large_file_arrives_whole_with_its_headers(client, big_wheel):
    filename, data = big_wheel
    r = client.get(f"/files/big-lib/{filename}", headers=auth("bob"))
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["cache-control"]
    assert r.headers["etag"] and r.headers["last-modified"]


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        # across a chunk boundary
        (
            f"bytes={DOWNLOAD_CHUNK - 10}-{DOWNLOAD_CHUNK + 9}",
            DOWNLOAD_CHUNK - 10,
            DOWNLOAD_CHUNK + 10,
        ),
        ("bytes=1000000-", 1000000, None),  # to the end, over several chunks
        ("bytes=-100", -100, None),  # the last 100 bytes
        ("bytes=0-0", 0, 1),
    ],
)
def test_range_requests_get_exactly_those_bytes(client, big_wheel, spec, start, stop):
    filename, data = big_wheel
    r = client.get(f"/files/big-lib/{filename}", headers={**auth("bob"), "Range": spec})
    assert r.status_code == 206
    expected = data[start:stop]
    assert r.content == expected
    first = start % len(data)
    assert r.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert r.headers["content-length"] == str(len(expected))


def test_an_unsatisfiable_range_answers_416(client, big_wheel):
    filename, data = big_wheel
    r = client.get(
        f"/files/big-lib/{filename}", headers={**auth("bob"), "Range": f"bytes={len(data)}-"}
    )
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"


def test_the_body_is_sent_in_large_chunks(local_app, big_wheel):
    """A few large ASGI body messages, not one per 64 KiB (Starlette's default)."""
    filename, data = big_wheel
    sizes: list[int] = []

    async def call() -> None:
        disconnect = asyncio.Event()

        async def receive() -> dict:
            if not sizes and not disconnect.is_set():
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
            elif message["type"] == "http.response.body":
                sizes.append(len(message.get("body", b"")))

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/files/big-lib/{filename}",
            "raw_path": f"/files/big-lib/{filename}".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                *((k.lower().encode(), v.encode()) for k, v in auth("bob").items()),
            ],
            "client": ("127.0.0.1", 1234),
            "server": ("testserver", 80),
            "state": {},
        }
        await local_app(scope, receive, send)
        disconnect.set()

    asyncio.run(call())
    assert sum(sizes) == len(data)
    assert DOWNLOAD_CHUNK >= 1024 * 1024
    assert len([s for s in sizes if s]) == math.ceil(len(data) / DOWNLOAD_CHUNK)
