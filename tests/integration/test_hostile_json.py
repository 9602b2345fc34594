"""Hostile JSON bodies on every route that reads one: a few KB of ``[`` (under each
route's size limit) nest deeper than Python's JSON parser recurses. Each route answers
as to any body that is not JSON (400, or trusted publishing's ``invalid-payload``), never
a 500, and changes nothing. The app is ``stratus serve``'s (``services_local``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stratus.web.app import create_app
from stratus.web.bodies import parse_json
from stratus.wiring import services_local
from tests.integration.conftest import auth, config_options

DEEP = b"[" * 3500  # within every limit here (publishers: 4 KB); Python recurses ~1000 deep

# (method, path, user, status): every route whose body is JSON (or may be)
ROUTES = [
    ("POST", "/api/fetch", "alice", 400),
    ("POST", "/requirements.txt", "alice", 400),
    ("PUT", "/admin/package/demo/origin/", "alice", 400),
    ("POST", "/_/upload-sessions/", "carol", 400),
    ("POST", "/_/oidc/mint-token", "", 422),  # trusted publishing's invalid-payload
    ("POST", "/_/oidc/burn-token", "", 202),  # whatever the token, as PyPI answers
    ("POST", "/admin/package/carol-lib/publishers/", "carol", 400),
    ("POST", "/api/tokens/", "carol", 400),  # body(Model): the user and admin APIs
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    options = config_options() | {
        "pypi.fallback": "cache",
        "pypi.fallback_base_url": "http://127.0.0.1:9/simple/",  # never asked: bodies fail first
        "pypi.allow_register": "true",
        "oidc.github_issuer": "http://127.0.0.1:9/",
        "oidc.audience": "stratus.example",
    }
    config = tmp_path / "stratus.ini"
    config.write_text("[stratus]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
    services = services_local(tmp_path / "data", config)
    with TestClient(create_app(services), raise_server_exceptions=False) as c:
        c.services = services  # type: ignore[attr-defined]
        yield c


def test_parse_json_refuses_deep_nesting_as_not_json() -> None:
    with pytest.raises(ValueError):
        parse_json(DEEP)
    nested: list = []
    for _ in range(99):
        nested = [nested]
    assert parse_json(b"[" * 100 + b"]" * 100) == nested  # ordinary depths still parse


@pytest.mark.parametrize(("method", "path", "user", "status"), ROUTES)
def test_deeply_nested_json_is_refused_not_a_500(
    client: TestClient, method: str, path: str, user: str, status: int
) -> None:
    headers = {"Content-Type": "application/json", **(auth(user) if user else {})}
    response = client.request(method, path, content=DEEP, headers=headers)
    assert response.status_code == status, (response.status_code, response.text)
    if path.startswith("/_/oidc/mint"):
        assert response.json()["errors"][0]["code"] == "invalid-payload"
    services = client.services  # type: ignore[attr-defined]
    assert services.catalog.list_projects() == []
    assert services.fallback.origins.controls("demo") is None


# (method, path, user, a size over the route's limit, status)
OVERSIZED = [
    ("POST", "/api/fetch", "alice", 80_000, 400),  # app.fetch.MAX_TEXT + 4 KB
    ("PUT", "/admin/package/demo/origin/", "alice", 70_000, 413),  # bodies.MAX_FIELDS_BYTES
    ("POST", "/_/upload-sessions/", "carol", 10_000, 400),  # upload_sessions.MAX_BODY
    ("POST", "/_/oidc/mint-token", "", 20_000, 422),  # oidc.MAX_TOKEN_BODY
    ("POST", "/_/oidc/burn-token", "", 20_000, 202),
    ("POST", "/admin/package/carol-lib/publishers/", "carol", 5_000, 400),  # MAX_PUBLISHER_BODY
    ("POST", "/api/tokens/", "carol", 70_000, 413),  # bodies.MAX_FIELDS_BYTES
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path", "user", "size", "status"), OVERSIZED)
def test_oversized_json_is_refused_however_sent(
    client: TestClient, method: str, path: str, user: str, size: int, status: int, chunked: bool
) -> None:
    data = b'{"requirements": "' + b"x" * size + b'"}'
    content = iter([data[: size // 2], data[size // 2 :]]) if chunked else data
    headers = {"Content-Type": "application/json", **(auth(user) if user else {})}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == status, (response.status_code, response.text[:200])
    services = client.services  # type: ignore[attr-defined]
    assert services.catalog.list_projects() == []
    assert services.fallback.origins.controls("demo") is None
    assert services.tokens.list_tokens("carol") == []
