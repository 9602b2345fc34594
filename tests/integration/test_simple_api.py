"""The simple API and uploads against the standards, on every deployment's adapters."""

from __future__ import annotations

import hashlib
import html.parser
import json

import httpx
import pytest

from tests.support.distributions import sdist_bytes, wheel_bytes

from .conftest import auth

JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"


def upload(client, built, user="alice", *, name=None, version=None, **fields):
    filename, data = built
    dist_name, dist_version = filename.split("-")[0], filename.split("-")[1]
    dist_version = dist_version.removesuffix(".tar.gz")
    form = {
        ":action": "file_upload",
        "name": name or dist_name,
        "version": version or dist_version,
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        **fields,
    }
    headers = auth(user) if user else {}
    return client.post("/", data=form, files={"content": (filename, data)}, headers=headers)


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[dict[str, str]] = []
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs)
        if tag == "meta":
            self.meta[attrs["name"]] = attrs["content"]


def parse_links(body: str) -> Links:
    parser = Links()
    parser.feed(body)
    return parser


@pytest.fixture
def published(client):
    wheel = wheel_bytes("Demo_App", "1.0", requires_python=">=3.8", requires_dist=("dep",))
    sdist = sdist_bytes("Demo_App", "1.0")
    old_sdist = sdist_bytes("Demo_App", "0.9", metadata_version="2.1")
    for built in (wheel, sdist, old_sdist):
        assert upload(client, built, name="Demo_App").status_code == 200
    return {"wheel": wheel, "sdist": sdist, "old": old_sdist}


def test_project_page_html(client, published):
    r = client.get("/simple/demo-app/", headers=auth("bob"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "Accept" in r.headers["vary"]
    assert r.headers["etag"] and "cache-control" in r.headers
    page = parse_links(r.text)
    assert page.meta["pypi:repository-version"] == "1.1"
    links = {a["href"].split("#")[0].rsplit("/", 1)[1]: a for a in page.links}
    wheel_name, wheel_data = published["wheel"]
    a = links[wheel_name]
    assert (
        a["href"]
        == f"../../files/demo-app/{wheel_name}#sha256=" + hashlib.sha256(wheel_data).hexdigest()
    )
    assert a["data-requires-python"] == ">=3.8"
    assert a["data-core-metadata"].startswith("sha256=")
    assert a["data-dist-info-metadata"] == a["data-core-metadata"]
    assert "data-yanked" not in a
    assert "data-core-metadata" in links[published["sdist"][0]]
    assert "data-core-metadata" not in links[published["old"][0]]  # Metadata-Version 2.1


def test_project_page_json(client, published):
    r = client.get("/simple/demo-app/", headers={**auth("bob"), "Accept": PIP_ACCEPT})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    doc = r.json()
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "demo-app"
    assert doc["versions"] == ["0.9", "1.0"]
    files = {f["filename"]: f for f in doc["files"]}
    wheel_name, wheel_data = published["wheel"]
    f = files[wheel_name]
    assert f["url"] == f"../../files/demo-app/{wheel_name}"
    assert f["hashes"] == {"sha256": hashlib.sha256(wheel_data).hexdigest()}
    assert f["requires-python"] == ">=3.8"
    assert f["yanked"] is False
    assert f["size"] == len(wheel_data)
    assert f["upload-time"].endswith("Z") and "T" in f["upload-time"]
    assert set(f["core-metadata"]) == {"sha256"}
    assert f["dist-info-metadata"] == f["core-metadata"]
    assert files[published["old"][0]]["core-metadata"] is False


def test_core_metadata_file_matches_hash(client, published):
    page = client.get("/simple/demo-app/", headers={**auth("bob"), "Accept": JSON}).json()
    wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
    r = client.get(f"/files/demo-app/{wheel['filename']}.metadata", headers=auth("bob"))
    body = fetch(client, r)
    assert hashlib.sha256(body).hexdigest() == wheel["core-metadata"]["sha256"]
    assert b"Requires-Dist: dep" in body


def fetch(client, response) -> bytes:
    """Follow a download: local mode streams, AWS mode redirects to a presigned S3 URL."""
    if response.status_code == 302:
        location = response.headers["location"]
        assert "X-Amz-Signature=" in location
        real = httpx.get(location)
        assert real.status_code == 200
        return real.content
    assert response.status_code == 200, response.text
    return response.content


def test_download_serves_the_exact_bytes(client, published):
    for filename, data in published.values():
        r = client.get(f"/files/demo-app/{filename}", headers=auth("bob"))
        assert fetch(client, r) == data


def test_index_pages_never_contain_presigned_urls(client, published):
    for accept in ("text/html", JSON):
        body = client.get("/simple/demo-app/", headers={**auth("bob"), "Accept": accept}).text
        assert "X-Amz" not in body and "Signature" not in body


def test_root_page_lists_only_readable_projects(client, published):
    assert upload(client, wheel_bytes("secret-lib", "1.0"), name="secret-lib").status_code == 200
    bob = client.get("/simple/", headers={**auth("bob"), "Accept": JSON}).json()
    assert [p["name"] for p in bob["projects"]] == ["Demo_App"]
    alice = client.get("/simple/", headers={**auth("alice"), "Accept": JSON}).json()
    assert sorted(p["name"] for p in alice["projects"]) == ["Demo_App", "secret-lib"]
    page = parse_links(client.get("/simple/", headers=auth("alice")).text)
    assert {a["href"] for a in page.links} == {"demo-app/", "secret-lib/"}
    assert client.get("/simple/secret-lib/", headers=auth("bob")).status_code == 404
    assert client.get("/simple/secret-lib/").status_code == 401


def test_406_for_unsupported_type(client, published):
    r = client.get("/simple/demo-app/", headers={**auth("bob"), "Accept": "application/xml"})
    assert r.status_code == 406
    assert (
        client.get("/simple/", headers={**auth("bob"), "Accept": "application/json"}).status_code
        == 406
    )


def test_etag_revalidation(client, published):
    r = client.get("/simple/demo-app/", headers=auth("bob"))
    again = client.get(
        "/simple/demo-app/", headers={**auth("bob"), "If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize("spelling", ["Demo_App", "DEMO.APP", "demo__app"])
def test_non_normalized_names_redirect(client, published, spelling):
    r = client.get(f"/simple/{spelling}/", headers=auth("bob"))
    assert r.status_code == 301
    assert r.headers["location"] == "../demo-app/"
    r = client.get("/simple/demo-app", headers=auth("bob"))
    assert r.status_code == 301 and r.headers["location"] == "demo-app/"


def test_unknown_project_404(client):
    assert client.get("/simple/nothing-here/", headers=auth("bob")).status_code == 404
    assert client.get("/simple/nothing-here/").status_code == 401  # anonymous: ask for auth


def test_duplicate_upload_409(client, published):
    r = upload(client, published["wheel"])
    assert r.status_code == 409
    assert "already exists" in r.text


def test_upload_auth(client):
    built = wheel_bytes("carol-lib", "1.0")
    r = upload(client, built, user=None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="pypi"'
    assert upload(client, built, user="bob").status_code == 403
    bad = client.post("/", headers={"Authorization": "Basic " + "YWxpY2U6d3Jvbmc="})
    assert bad.status_code == 401
    assert upload(client, built, user="carol").status_code == 200


def test_digest_mismatch_rejected_and_nothing_stored(client, services):
    built = wheel_bytes("demo-app", "2.0")
    for field in ("sha256_digest", "md5_digest", "blake2_256_digest"):
        r = upload(client, built, **{field: "0" * 64})
        assert r.status_code == 400, field
        assert "digest" in r.text
    assert services.catalog.list_files("demo-app") == []
    assert list(services.storage.list("packages/")) == []


@pytest.mark.parametrize(
    "filename",
    [
        "../demo_app-1.0.tar.gz",
        "/tmp/demo_app-1.0.tar.gz",
        "..\\demo_app-1.0.tar.gz",
        "a\\b-1.0.tar.gz",
    ],
)
def test_path_tricks_rejected_and_nothing_stored(client, services, filename):
    _, data = sdist_bytes("demo-app", "1.0")
    r = upload(client, (filename, data), name="demo-app", version="1.0")
    assert r.status_code == 400, r.text
    assert list(services.storage.list("")) == []
    assert services.catalog.list_projects() == []


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("other-app", "1.0", "project name"),
        ("demo-app", "2.0", "version"),
        ("bad name!", "1.0", "Invalid project name"),
    ],
)
def test_form_mismatch_rejected(client, name, version, message):
    r = upload(client, wheel_bytes("demo-app", "1.0"), name=name, version=version)
    assert r.status_code == 400
    assert message in r.text


def test_broken_archive_rejected(client, services):
    r = upload(
        client, ("demo_app-1.0-py3-none-any.whl", b"garbage"), name="demo-app", version="1.0"
    )
    assert r.status_code == 400
    assert "zip" in r.text
    assert services.catalog.list_projects() == []


def test_yank_unyank_and_delete(client, published):
    wheel_name = published["wheel"][0]
    r = client.post(
        f"/api/package/demo-app/{wheel_name}/yank", data={"reason": "broken"}, headers=auth("alice")
    )
    assert r.status_code == 200, r.text
    doc = client.get("/simple/demo-app/", headers={**auth("bob"), "Accept": JSON}).json()
    assert next(f for f in doc["files"] if f["filename"] == wheel_name)["yanked"] == "broken"
    links = parse_links(client.get("/simple/demo-app/", headers=auth("bob")).text).links
    assert next(a for a in links if wheel_name in a["href"])["data-yanked"] == "broken"
    assert (
        client.post(f"/api/package/demo-app/{wheel_name}/yank", headers=auth("bob")).status_code
        == 403
    )
    assert (
        client.post(f"/api/package/demo-app/{wheel_name}/unyank", headers=auth("alice")).status_code
        == 200
    )
    doc = client.get("/simple/demo-app/", headers={**auth("bob"), "Accept": JSON}).json()
    assert next(f for f in doc["files"] if f["filename"] == wheel_name)["yanked"] is False

    assert (
        client.delete(f"/api/package/demo-app/{wheel_name}", headers=auth("bob")).status_code == 403
    )
    assert (
        client.delete(f"/api/package/demo-app/{wheel_name}", headers=auth("alice")).status_code
        == 200
    )
    assert client.get(f"/files/demo-app/{wheel_name}", headers=auth("bob")).status_code == 404
    assert (
        client.delete(f"/api/package/demo-app/{wheel_name}", headers=auth("alice")).status_code
        == 404
    )


def test_package_api_and_pypi_json(client, published):
    names = client.get("/api/package/", headers=auth("bob")).json()
    assert names == {"packages": ["demo-app"]}
    verbose = client.get("/api/package/?verbose=true", headers=auth("bob")).json()["packages"][0]
    assert (
        verbose["name"] == "demo-app"
        and verbose["stable"] == "1.0"
        and verbose["unstable"] == "1.0"
    )
    detail = client.get("/api/package/demo-app/", headers=auth("bob")).json()
    assert detail["write"] is False
    assert {p["version"] for p in detail["packages"]} == {"0.9", "1.0"}
    assert client.get("/api/package/demo-app/", headers=auth("alice")).json()["write"] is True
    info = client.get("/pypi/demo-app/json", headers=auth("bob")).json()
    assert info["info"]["version"] == "1.0"
    assert info["info"]["requires_python"] in (">=3.8", None)
    assert set(info["releases"]) == {"0.9", "1.0"}
    assert all("sha256" in f["digests"] for f in info["urls"])


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}  # anonymous: status only (issue 10 item 19)
    r = client.get("/health", headers=auth("alice"))  # an admin sees each backend
    assert r.json()["checks"] == {"catalog": "ok", "storage": "ok", "access": "ok"}


def test_oversized_upload_413(services, tmp_path, request):
    from starlette.testclient import TestClient

    from stratus.web.app import create_app

    from .conftest import make_services

    small = make_services("local", request, tmp_path / "small", max_upload_bytes=1000)
    with TestClient(create_app(small)) as c:
        r = upload(c, wheel_bytes("demo-app", "1.0", module_body="x = 1\n" * 2000))
    assert r.status_code == 413
    assert list(small.storage.list("")) == []


def test_json_pages_are_valid_json(client, published):
    r = client.get("/simple/", headers={**auth("bob"), "Accept": JSON})
    json.loads(r.text)


def test_listings_ask_the_access_backend_once(client, published, services, monkeypatch):
    """No lookup per project when a non-admin lists /simple/ or /api/package/."""
    for name in ("lib-a", "lib-b", "lib-c"):
        assert upload(client, wheel_bytes(name, "1.0"), name=name).status_code == 200
    bulk_calls: list[list[str]] = []
    bulk = services.access.package_acls

    def one_by_one(project):
        raise AssertionError(f"package_acl({project!r}) while listing")

    def counted(projects):
        bulk_calls.append(list(projects))
        return bulk(projects)

    monkeypatch.setattr(services.access, "package_acl", one_by_one)
    monkeypatch.setattr(services.access, "package_acls", counted)
    for path in ("/simple/", "/api/package/"):
        bulk_calls.clear()
        r = client.get(path, headers={**auth("bob"), "Accept": JSON})
        assert r.status_code == 200, r.text
        assert len(bulk_calls) == 1 and len(bulk_calls[0]) == 4, (path, bulk_calls)


def test_aliases_answer_like_the_documented_route(client, published):
    for documented, alias in [
        ("/api/package/", "/api/package"),
        ("/api/package/demo-app/", "/api/package/demo-app"),
        ("/pypi/demo-app/json", "/pypi/demo-app/json/"),
    ]:
        one = client.get(documented, headers=auth("bob"))
        other = client.get(alias, headers=auth("bob"))
        assert one.status_code == other.status_code == 200, alias
        assert one.json() == other.json()
    assert client.get("/api/package", headers=auth("bob")).json()["packages"] == ["demo-app"]
    assert client.get("/api/package").status_code == 200  # anonymous: an empty list
    for path, version in (("/simple/", "1.0"), ("/legacy/", "2.0")):
        filename, data = wheel_bytes("alias-lib", version)
        form = {":action": "file_upload", "name": "alias-lib", "version": version}
        r = client.post(path, data=form, files={"content": (filename, data)}, headers=auth("alice"))
        assert r.status_code == 200, (path, r.text)
    page = client.get("/simple/alias-lib/", headers={**auth("bob"), "Accept": JSON}).json()
    assert page["versions"] == ["1.0", "2.0"]
