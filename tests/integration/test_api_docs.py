"""``/openapi.json`` and ``/docs``: what they describe, served without a third-party host,
and both off with ``pypi.api_docs = false``."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from stratus.web.app import create_app

from .conftest import make_services


@pytest.fixture
def local(request, tmp_path):
    def build(**settings):
        return TestClient(create_app(make_services("local", request, tmp_path, **settings)))

    return build


def test_openapi_describes_admin_packages_users_and_upload(local):
    spec = local().get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, method in [
        ("/admin/user/", "get"),
        ("/admin/user/{username}/", "put"),
        ("/admin/package/{package}/{kind}/{name}/{perm}/", "put"),
        ("/admin/register/", "post"),
        ("/api/package/", "get"),
        ("/api/package/{project}/", "get"),
        ("/api/package/{project}/{filename}", "delete"),
        ("/api/user/{username}/", "put"),
        ("/api/tokens/", "post"),
        ("/pypi/{project}/json", "get"),
        ("/", "post"),
        ("/simple/{project}/", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not described"
    # pypicloud's field names (§1.10) in the response models
    schemas = spec["components"]["schemas"]
    assert set(schemas["UserDetail"]["properties"]) == {"username", "admin", "groups"}
    assert set(schemas["PackageAclBody"]["properties"]) == {"user", "group"}
    assert set(schemas["PackageSummary"]["properties"]) == {
        "name",
        "stable",
        "unstable",
        "last_modified",
    }
    # bodies: form fields or JSON, as pypicloud's views accept them
    create_user = paths["/admin/user/{username}/"]["put"]["requestBody"]["content"]
    assert set(create_user) == {"application/x-www-form-urlencoded", "application/json"}
    assert create_user["application/json"]["schema"]["required"] == ["password"]
    upload = paths["/"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["content"]["format"] == "binary"
    assert spec["components"]["securitySchemes"]["basic"]["scheme"] == "basic"
    # one spelling per route: the slash-less aliases stay out of the description
    assert "/admin/user" not in paths and "/simple/{project}" not in paths


def test_docs_page_loads_only_from_this_index(local):
    client = local()
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    referenced += re.findall(r"url: '([^']+)'", page.text)
    assert referenced, page.text
    assert not [u for u in referenced if "//" in u], "a URL pointing to another host"
    assert "validator.swagger.io" not in page.text and '"validatorUrl": null' in page.text
    for url in referenced:  # relative to /docs, so they work behind any path prefix
        r = client.get("/" + url)
        assert r.status_code == 200, url
        assert r.content
    assert "SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").text
    assert client.get("/docs/../../etc/passwd").status_code == 404
    assert client.get("/docs/core.py").status_code == 404


def test_api_docs_false_turns_both_off(local):
    client = local(api_docs="false")
    for path in ("/openapi.json", "/docs", "/docs/swagger-ui.css"):
        assert client.get(path).status_code == 404, path
    assert client.get("/health").status_code == 200
