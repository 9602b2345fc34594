"""The upload session API over HTTP, on both deployments' adapters (in-process app).

Locally the upload URLs are the app's own (``PUT /_/storage/upload/<token>``), sent
through the same test client; on AWS they are presigned S3 URLs on the moto server.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from stratus.web.app import create_app
from stratus.wiring import Services
from tests.support.concurrency import run_concurrently
from tests.support.distributions import wheel_bytes, write_wheel_with_payload

from .conftest import auth, make_services

MIB = 1024 * 1024
SESSIONS = "/_/upload-sessions/"


def with_sessions(services: Services, kind: str, request, tmp_path: Path) -> Services:  # type: ignore[no-untyped-def]
    if kind == "local":
        from stratus.adapters.sqlite_upload_sessions import SqliteUploadSessions

        services.upload_sessions = SqliteUploadSessions(tmp_path / "uploads.sqlite3")
    else:
        from stratus.adapters.dynamo_upload_sessions import DynamoUploadSessions

        services.upload_sessions = DynamoUploadSessions(request.getfixturevalue("dynamo_table"))
    return services


@pytest.fixture(params=["local", "aws"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    services = make_services(
        request.param,
        request,
        tmp_path,
        upload_multipart_threshold=str(8 * MIB),
        upload_part_size=str(5 * MIB),
        max_upload_bytes="100000",
    )
    with_sessions(services, request.param, request, tmp_path)
    with TestClient(create_app(services), follow_redirects=False) as client:
        client.kind = request.param  # type: ignore[attr-defined]
        yield client


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def send(client: TestClient, target: dict[str, Any], data: bytes) -> int:
    """PUT to an upload URL: the app's own through the client, S3's over HTTP."""
    if target["url"].startswith("http://testserver/"):
        response = client.put(target["url"], content=data, headers=target["headers"])
    else:
        response = httpx.request(
            target["method"], target["url"], content=data, headers=target["headers"]
        )
    return response.status_code


def big(tmp_path: Path, mib: int = 11, seed: int = 1) -> bytes:
    folder = tmp_path / f"s{seed}"
    return write_wheel_with_payload(folder, "carol-lib", "1.0", mib * MIB, seed=seed).read_bytes()


BIG = "carol_lib-1.0-py3-none-any.whl"


def create(client: TestClient, data: bytes, user: str = "carol", **changes: Any):  # type: ignore[no-untyped-def]
    body = {
        "meta": {"api-version": "2.0"},
        "name": "carol-lib",
        "version": "1.0",
        "filename": BIG,
        "size": len(data),
        "hashes": {"sha256": sha(data)},
    } | changes
    return client.post(SESSIONS, json=body, headers=auth(user) if user else {})


def upload_parts(client: TestClient, doc: dict[str, Any], data: bytes, numbers=None) -> None:  # type: ignore[no-untyped-def]
    parts = doc["parts"]
    wanted = numbers or list(range(1, parts["count"] + 1))
    response = client.post(doc["urls"]["part-urls"], json={"parts": wanted}, headers=auth("carol"))
    assert response.status_code == 200, response.text
    for target in response.json()["parts"]:
        start = (target["number"] - 1) * parts["size"]
        chunk = data[start : start + target["size"]]
        assert send(client, target, chunk) == 200


# --- the flows ------------------------------------------------------------------------------


def test_one_request_upload_and_completion(api: TestClient) -> None:
    filename, data = wheel_bytes("carol-lib", "2.0", requires_python=">=3.9")
    response = create(api, data, filename=filename, version="2.0")
    assert response.status_code == 201, response.text
    doc = response.json()
    assert response.headers["location"] == doc["urls"]["session"]
    assert doc["urls"]["session"].startswith("http://testserver/_/upload-sessions/")
    assert (doc["status"], doc["mechanism"], doc["size"]) == (
        "pending",
        "stratus-presigned-put",
        len(data),
    )
    assert doc["meta"] == {"api-version": "2.0"} and doc["valid-for"] > 3000
    if api.kind == "local":  # type: ignore[attr-defined]
        assert doc["upload"]["url"].startswith("http://testserver/_/storage/upload/")
    else:
        assert "X-Amz-Signature=" in doc["upload"]["url"]
    assert send(api, doc["upload"], data) == 200

    done = api.post(doc["urls"]["complete"], headers=auth("carol"))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "published"
    assert done.json()["file-url"] == f"http://testserver/files/carol-lib/{filename}"
    page = api.get(
        "/simple/carol-lib/",
        headers={**auth("carol"), "Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    (entry,) = page["files"]
    assert entry["filename"] == filename and entry["hashes"] == {"sha256": sha(data)}
    assert entry["requires-python"] == ">=3.9"
    again = api.get(doc["urls"]["session"], headers=auth("carol")).json()
    assert again["status"] == "published" and "upload" not in again


def test_multipart_upload_and_completion(api: TestClient, tmp_path: Path) -> None:
    data = big(tmp_path)
    doc = create(api, data).json()
    assert doc["mechanism"] == "stratus-presigned-multipart"
    assert doc["parts"] == {"count": 3, "size": 5 * MIB, "uploaded": []}
    upload_parts(api, doc, data, [3, 1])
    status = api.get(doc["urls"]["session"], headers=auth("carol")).json()
    assert status["parts"]["uploaded"] == [1, 3]

    missing = api.post(doc["urls"]["complete"], headers=auth("carol"))
    assert missing.status_code == 400 and "Parts missing: 2 (of 3)" in missing.text
    assert api.get(doc["urls"]["session"], headers=auth("carol")).json()["status"] == "pending"

    upload_parts(api, doc, data, [2])
    done = api.post(doc["urls"]["complete"], headers=auth("carol"))
    assert done.status_code == 200, done.text
    listed = api.get("/simple/carol-lib/", headers=auth("carol"))
    assert BIG in listed.text


def test_a_wrong_sha256_is_rejected_and_nothing_published(api: TestClient, tmp_path: Path) -> None:
    data = big(tmp_path)
    doc = create(api, data, hashes={"sha256": sha(data + b"!")}).json()
    upload_parts(api, doc, data)
    done = api.post(doc["urls"]["complete"], headers=auth("carol"))
    assert done.status_code == 400 and "sha256 digest" in done.text
    assert api.get("/simple/carol-lib/", headers=auth("carol")).status_code == 404
    status = api.get(doc["urls"]["session"], headers=auth("carol")).json()
    assert (status["status"], status["error-status"]) == ("error", 400)
    assert "sha256" in status["message"]


def test_cancel(api: TestClient, tmp_path: Path) -> None:
    data = big(tmp_path)
    doc = create(api, data).json()
    upload_parts(api, doc, data, [1])
    canceled = api.delete(doc["urls"]["session"], headers=auth("carol"))
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert api.post(doc["urls"]["complete"], headers=auth("carol")).status_code == 409
    more = api.post(doc["urls"]["part-urls"], json={"parts": [2]}, headers=auth("carol"))
    assert more.status_code == 409


# --- refusals -------------------------------------------------------------------------------


def test_creation_checks_credentials_permission_and_the_file(api: TestClient) -> None:
    data = b"x" * 1000
    assert create(api, data, user="").status_code == 401
    denied = create(api, data, user="bob")
    assert denied.status_code == 403 and "may not upload" in denied.text
    assert create(api, data, filename="carol_lib-2.0-py3-none-any.whl").status_code == 400
    assert create(api, data, name="bad name!").status_code == 400
    assert create(api, data, size=-1).status_code == 400
    assert create(api, data, hashes={"md5": "x"}).status_code == 400
    assert create(api, data, name=None).status_code == 400
    not_json = api.post(SESSIONS, content=b"name=x", headers=auth("carol"))
    assert not_json.status_code == 400
    huge = api.post(
        SESSIONS,
        content=b'{"pad": "' + b"x" * 10_000 + b'"}',
        headers={**auth("carol"), "Content-Type": "application/json"},
    )
    assert huge.status_code == 400


def test_a_file_in_the_index_is_refused_up_front(api: TestClient) -> None:
    filename, data = wheel_bytes("carol-lib", "1.5")
    legacy = api.post(
        "/",
        data={":action": "file_upload", "name": "carol-lib", "version": "1.5"},
        files={"content": (filename, data)},
        headers=auth("carol"),
    )
    assert legacy.status_code == 200
    again = create(api, data, filename=filename, version="1.5")
    assert again.status_code == 409 and "already exists" in again.text


def test_sessions_are_private_to_their_uploader(api: TestClient) -> None:
    doc = create(api, b"x" * 1000).json()
    url = doc["urls"]["session"]
    assert api.get(url, headers=auth("bob")).status_code == 404
    assert api.get(url).status_code == 404  # anonymous: no such session either
    assert api.post(doc["urls"]["complete"], headers=auth("bob")).status_code == 404
    assert api.delete(url, headers=auth("bob")).status_code == 404
    assert api.get(url, headers=auth("alice")).status_code == 200  # an admin


def test_part_urls_are_bounded(api: TestClient, tmp_path: Path) -> None:
    doc = create(api, big(tmp_path)).json()
    for body in ({"parts": [0]}, {"parts": [4]}, {"parts": "1"}, {"parts": [True]}, {}):
        response = api.post(doc["urls"]["part-urls"], json=body, headers=auth("carol"))
        assert response.status_code == 400, body
    single = create(api, b"y" * 1000).json()
    refused = api.post(single["urls"]["part-urls"], json={"parts": [1]}, headers=auth("carol"))
    assert refused.status_code == 400


def test_legacy_uploads_over_the_limit_name_stratus_upload(api: TestClient) -> None:
    response = api.post(
        "/",
        data={":action": "file_upload", "name": "carol-lib", "version": "1.0"},
        files={"content": (BIG, b"x" * 150_000)},
        headers=auth("carol"),
    )
    assert response.status_code == 413
    assert "stratus upload" in response.text


def test_a_session_and_a_legacy_upload_race_for_one_file(api: TestClient, tmp_path: Path) -> None:
    data = big(tmp_path, mib=6, seed=3)
    doc = create(api, data).json()
    assert send(api, doc["upload"], data) == 200
    direct = big(tmp_path, mib=0, seed=4)  # the same filename, other bytes, under the limit
    assert len(direct) < 100_000

    def legacy() -> int:
        return api.post(
            "/",
            data={":action": "file_upload", "name": "carol-lib", "version": "1.0"},
            files={"content": (BIG, direct)},
            headers=auth("carol"),
        ).status_code

    def complete() -> int:
        return api.post(doc["urls"]["complete"], headers=auth("carol")).status_code

    statuses = sorted(run_concurrently([legacy, complete]))  # type: ignore[type-var]
    assert statuses == [200, 409], statuses
    page = api.get(
        "/simple/carol-lib/",
        headers={**auth("carol"), "Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    (entry,) = page["files"]
    assert entry["hashes"]["sha256"] in (sha(data), sha(direct))


# --- the local store's upload route ---------------------------------------------------------


def test_local_upload_urls(api: TestClient) -> None:
    filename, data = wheel_bytes("carol-lib", "3.0")
    doc = create(api, data, filename=filename, version="3.0").json()
    target = doc["upload"]
    if api.kind == "aws":  # type: ignore[attr-defined]
        token = "x.y"
        assert api.put(f"/_/storage/upload/{token}", content=b"z").status_code == 404
        return
    assert api.put(target["url"], content=data[:-1]).status_code == 400  # wrong length
    assert api.put(target["url"], content=data + b"!").status_code == 400
    assert api.put(target["url"] + "x", content=data).status_code == 404  # forged token
    assert api.put(target["url"], content=b"y" * len(data)).status_code == 400  # wrong sha256
    assert api.put(target["url"], content=data).status_code == 200
    assert api.put(target["url"], content=data).status_code == 412  # one time only
    done = api.post(doc["urls"]["complete"], headers=auth("carol"))
    assert done.status_code == 200, done.text


# --- completion in the background (a thread, as in `stratus serve`) -------------------------


@pytest.mark.parametrize("kind", ["local"])
def test_a_large_session_completes_in_a_thread_of_the_server(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from stratus.app.upload_completion import ThreadCompletions

    services = make_services(
        kind,
        request,
        tmp_path,
        upload_multipart_threshold=str(8 * MIB),
        upload_part_size=str(5 * MIB),
        upload_async_complete_bytes=str(MIB),
    )
    with_sessions(services, kind, request, tmp_path)
    services.upload_completions = ThreadCompletions()
    with TestClient(create_app(services), follow_redirects=False) as client:
        data = big(tmp_path)
        doc = create(client, data).json()
        upload_parts(client, doc, data)
        queued = client.post(doc["urls"]["complete"], headers=auth("carol"))
        assert queued.status_code == 202, queued.text
        assert queued.headers["location"] == doc["urls"]["session"]
        assert queued.headers["retry-after"] == "2"
        status = queued.json()
        for _ in range(300):
            if status["status"] != "processing":
                break
            time.sleep(0.05)
            status = client.get(queued.headers["location"], headers=auth("carol")).json()
        assert status["status"] == "published", status
        assert BIG in client.get("/simple/carol-lib/", headers=auth("carol")).text


def test_create_checks_permission_off_the_event_loop(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy may ask a remote backend (LDAP, an HTTP service): never on the loop."""
    from stratus.app.policy import AccessPolicy

    where: list[str] = []
    real = AccessPolicy.can_upload

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            where.append("worker")
        else:
            where.append("EVENT LOOP")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AccessPolicy, "can_upload", spy)
    assert create(api, b"x" * 1000).status_code == 201
    assert where and set(where) == {"worker"}, where


# --- hostile bodies (each bound proven over HTTP) ------------------------------------------


def test_at_most_100_part_urls_a_request(api: TestClient, tmp_path: Path) -> None:
    doc = create(api, big(tmp_path)).json()
    many = api.post(
        doc["urls"]["part-urls"], json={"parts": list(range(1, 102))}, headers=auth("carol")
    )
    assert many.status_code == 400 and "at most 100" in many.text


@pytest.mark.parametrize("api", ["local"], indirect=True)  # S3 bounds its own URLs
def test_a_local_upload_url_cuts_a_chunked_body_at_its_size(api: TestClient) -> None:
    filename, data = wheel_bytes("carol-lib", "3.1")
    doc = create(api, data, filename=filename, version="3.1").json()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield data
        yield b"!" * 1024

    assert api.put(doc["upload"]["url"], content=chunks()).status_code == 400
    assert api.put(doc["upload"]["url"], content=data).status_code == 200  # still usable
    assert api.post(doc["urls"]["complete"], headers=auth("carol")).status_code == 200
