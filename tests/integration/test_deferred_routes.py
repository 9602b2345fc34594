"""An app whose rare routes are deferred (an on-demand Lambda init) answers every request
exactly as the app built at once does, from its very first request on."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Match, Router
from starlette.testclient import TestClient

from stratus.web.app import create_app
from stratus.web.deferred import DeferredRoutes

from .conftest import auth, make_services

RARE = ("/admin/user", "/admin/group", "/user/", "/docs", "/login")


@pytest.fixture
def local_services(request, tmp_path):
    return make_services("local", request, tmp_path)


def deferred_client(services) -> TestClient:
    return TestClient(create_app(services, defer_rare_routes=True), follow_redirects=False)


def route_paths(app) -> list[str]:
    return [getattr(route, "path", "") for route in app.router.routes]


def requests_for(app) -> list[tuple[str, str]]:
    """(method, path) for every method of every route of ``app``, parameters filled in."""
    found = []
    for route in app.routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                found.append((method, concrete))
    return sorted(set(found))


def test_the_rare_routes_are_not_built_until_a_request_needs_them(local_services):
    client = deferred_client(local_services)
    app = client.app
    assert isinstance(app.router.routes[-1], DeferredRoutes)
    assert not [p for p in route_paths(app) if p.startswith(RARE)]
    assert client.get("/simple/", headers=auth("alice")).status_code == 200
    assert isinstance(app.router.routes[-1], DeferredRoutes)  # an install needs none of them
    assert client.get("/admin/user/", headers=auth("alice")).status_code == 200
    assert not any(isinstance(r, DeferredRoutes) for r in app.router.routes)
    assert [p for p in route_paths(app) if p.startswith(RARE)]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/admin/user/", auth("alice")),  # the admin API
        ("GET", "/admin/user/", auth("bob")),  # ... refused (403), not a 404
        ("GET", "/user/token/", auth("bob")),  # the token API
        ("GET", "/", {"Accept": "text/html"}),  # a UI page on "/", where uploads POST
        ("GET", "/login", {}),
        ("GET", "/docs", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/pypi/open-lib/json", auth("bob")),  # the JSON API
        ("GET", "/api/package/", auth("alice")),  # pypicloud's packages API
        ("POST", "/_/upload-sessions", auth("bob")),  # stratus upload (no body: 400)
        ("GET", "/_/oidc/audience", {}),  # trusted publishing
        ("GET", "/no/such/page", {}),  # still a 404
        ("GET", "/legacy/", auth("alice")),  # still a 405 (the upload endpoint takes POST)
    ],
)
def test_a_first_request_for_a_rare_route_answers_as_the_whole_app(
    local_services, method, path, headers
):
    with TestClient(create_app(local_services), follow_redirects=False) as whole:
        expected = whole.request(method, path, headers=headers)
    first = deferred_client(local_services).request(method, path, headers=headers)
    assert (first.status_code, first.headers.get("content-type")) == (
        expected.status_code,
        expected.headers.get("content-type"),
    )
    if path == "/openapi.json":
        assert first.json() == expected.json()  # the description covers every route
    elif "html" not in expected.headers.get("content-type", ""):  # pages carry fresh tokens
        assert first.text == expected.text  # e.g. the route's own 404, not "Not Found"


def test_once_added_every_route_answers_as_in_the_whole_app(local_services):
    whole_app = create_app(local_services)
    whole = TestClient(whole_app, follow_redirects=False)
    deferred = deferred_client(local_services)
    deferred.get("/no/such/page")  # adds the deferred routes
    assert route_paths(deferred.app) == route_paths(whole_app)  # same routes, same order
    checked = 0
    for method, path in requests_for(whole_app):
        if method not in ("GET", "DELETE"):  # bodies differ per route; GET/DELETE suffice
            continue
        ours = deferred.request(method, path, headers=auth("bob"))
        theirs = whole.request(method, path, headers=auth("bob"))
        assert ours.status_code == theirs.status_code, (method, path)
        checked += 1
    assert checked > 40


def test_a_failed_addition_leaves_nothing_half_added_and_is_tried_again():
    router = Router(routes=[])
    calls = []

    def add() -> None:
        calls.append(1)
        router.routes.append(object())  # type: ignore[arg-type]
        if len(calls) == 1:
            raise RuntimeError("import failed")

    deferred = DeferredRoutes(router, add)
    router.routes.append(deferred)
    assert deferred.matches({"type": "http"})[0] is Match.FULL
    with pytest.raises(RuntimeError):
        deferred.ensure_added()
    assert router.routes == [deferred]
    deferred.ensure_added()
    deferred.ensure_added()
    assert len(calls) == 2 and deferred not in router.routes and len(router.routes) == 1
    assert deferred.matches({"type": "http"})[0] is Match.NONE
