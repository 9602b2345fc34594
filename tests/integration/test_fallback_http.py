"""The fallback over HTTP: every cell of pypicloud's table on ``/simple/<p>/`` and
``/pypi/<p>/json``, downloads of files that are not stored (fill, 401/403/404), PEP 658
metadata of upstream files, ``/api/fetch`` and ``/requirements.txt``, origin controls,
and an upstream that is down. A real upstream server on 127.0.0.1; the app in-process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from stratus.adapters.config_access import ConfigAccess
from stratus.app.publish import Publisher
from stratus.app.services import Services
from stratus.domain.fallback import Answer
from stratus.settings import Settings
from stratus.web.app import create_app
from stratus.wiring import fallback_local
from tests.integration.conftest import auth, config_options
from tests.support.distributions import wheel_bytes
from tests.support.upstream_server import UpstreamServer
from tests.unit.test_fallback_table import MEANING, ROWS, SEED

READABLE = "open-proj"  # everyone may read it (anonymous included)
UNREADABLE = "closed-proj"  # only carol may read it: bob and anonymous may not
LOCAL_BODY = "BUILT_HERE = True\n"  # a local 1.0 with other bytes than the upstream's


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[UpstreamServer]:
    with UpstreamServer.running(tmp_path / "upstream") as server:
        for project in (READABLE, UNREADABLE, "demo", "acme-secret"):
            server.add_wheel(project, "1.0", requires_python=">=3.8")
            server.add_wheel(project, "2.0", requires_python=">=3.9")
        yield server


def make_client(
    tmp_path: Path, upstream: UpstreamServer, *, acl: dict[str, str] | None = None, **options: str
) -> TestClient:
    """The app on local adapters with ``pypi.<option>`` settings (fresh data dir)."""
    from stratus.adapters.local_storage import LocalStorage
    from stratus.adapters.sqlite_catalog import SqliteCatalog

    data = tmp_path / f"data-{len(list(tmp_path.glob('data-*')))}"
    access_options = config_options() | {
        f"package.{READABLE}.group.everyone": "r",
        f"package.{UNREADABLE}.user.carol": "rw",
        "group.cachers": "carol",
        **(acl or {}),
    }
    values = {k[5:]: v for k, v in access_options.items() if k.startswith("pypi.")}
    values |= {"fallback_base_url": upstream.url, **options}
    services = Services(
        SqliteCatalog(data / "index.sqlite3"),
        LocalStorage(data / "files"),
        ConfigAccess.from_options(access_options),
        Settings.from_mapping(values),
    )
    services.fallback = fallback_local(services, data)
    client = TestClient(create_app(services), follow_redirects=False)
    client.services = services  # type: ignore[attr-defined]
    return client


def store_locally(client: TestClient, project: str, version: str = "1.0") -> str:
    services: Services = client.services  # type: ignore[attr-defined]
    filename, data = wheel_bytes(project, version, module_body=LOCAL_BODY)
    Publisher(services.catalog, services.storage, allow_overwrite=False).upload(
        name=project, version=version, filename=filename, data=data, digests={}, uploader="carol"
    )
    return filename


# --- every cell of the table, over HTTP -------------------------------------------------------

MODES = [
    ("none", False),
    ("redirect", False),
    ("redirect", True),
    ("cache", False),
    ("cache", True),
]
# (stored here?, may bob and anonymous read it?) → project name
TABLE_PROJECTS = {
    (True, True): "open-stored",
    (True, False): "closed-stored",
    (False, True): "open-absent",
    (False, False): "closed-absent",
}
TABLE_ACL = {
    **{f"package.{p}.group.everyone": "r" for p in ("open-stored", "open-absent")},
    **{f"package.{p}.user.carol": "rw" for p in ("closed-stored", "closed-absent")},
}


def table_cells() -> Iterator[Any]:
    for mode, asu in MODES:
        answers = SEED[(mode, None if mode == "none" else asu)]
        for row, words in zip(ROWS, answers, strict=True):
            stored, read, cu, logged_in = row
            label = f"{mode}-asu={asu}-{'stored' if stored else 'absent'}-r={read}-cu={cu}-" + (
                "user" if logged_in else "anon"
            )
            yield pytest.param(mode, asu, row, MEANING[words], id=label)


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One app per (mode, always_show_upstream, cache_update for everyone?), one upstream."""
    tmp = tmp_path_factory.mktemp("fallback-table")
    with UpstreamServer.running(tmp / "upstream") as server:
        for project in TABLE_PROJECTS.values():
            server.add_wheel(project, "1.0")
            server.add_wheel(project, "2.0")
        built = {}
        for mode, asu in MODES:
            for cu in (False, True):
                client = make_client(
                    tmp,
                    server,
                    acl=TABLE_ACL,
                    fallback=mode,
                    always_show_upstream=str(asu).lower(),
                    cache_update="everyone" if cu else "nobody-group",
                )
                store_locally(client, "open-stored")
                store_locally(client, "closed-stored")
                built[(mode, asu, cu)] = client
        yield {"clients": built, "upstream": server}


def check_answer(response, expected: Answer, upstream_url: str, path: str) -> None:
    if expected is Answer.LOGIN:
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    elif expected is Answer.NOT_FOUND:
        assert response.status_code == 404, response.text
    elif expected is Answer.REDIRECT:
        assert response.status_code == 302, response.text
        assert response.headers["Location"] == upstream_url + path
    else:
        assert response.status_code == 200, response.text


def page_files(response) -> dict[str, str]:
    """filename → url of a PEP 691 page."""
    return {f["filename"]: f["url"] for f in response.json()["files"]}


@pytest.mark.parametrize(("mode", "asu", "row", "expected"), list(table_cells()))
def test_every_cell_over_http(apps, mode, asu, row, expected) -> None:
    stored, read, cu, logged_in = row
    client = apps["clients"][(mode, asu, cu)]
    upstream_url = apps["upstream"].url
    project = TABLE_PROJECTS[(stored, read)]
    headers = {"Accept": "application/vnd.pypi.simple.v1+json"} | (auth("bob") if logged_in else {})
    path = f"/simple/{project}/"
    response = client.get(path, headers=headers)
    check_answer(response, expected, upstream_url, path)
    json_path = f"/pypi/{project}/json"
    check_answer(client.get(json_path, headers=headers), expected, upstream_url, json_path)
    if response.status_code != 200:
        return
    dist = project.replace("-", "_")
    one, two = f"{dist}-1.0-py3-none-any.whl", f"{dist}-2.0-py3-none-any.whl"
    here = f"../../files/{project}/"
    expected_links = {
        Answer.PAGE: {one: here + one},
        Answer.PAGE_UPSTREAM_DIRECT: {one: here + one, two: f"{upstream_url}/files/{two}"},
        Answer.PAGE_UPSTREAM_CACHED: {one: here + one, two: here + two},
    }[expected]
    assert page_files(response) == expected_links
    html = client.get(path, headers=headers | {"Accept": "text/html"}).text
    assert all(f'href="{url}#sha256=' in html for url in expected_links.values())


def test_json_api_links_upstream_files_through_this_index(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache")
    doc = client.get("/pypi/demo/json", headers=auth("bob")).json()
    urls = {f["filename"]: f["url"] for files in doc["releases"].values() for f in files}
    assert urls == {
        f"demo-{v}-py3-none-any.whl": f"http://testserver/files/demo/demo-{v}-py3-none-any.whl"
        for v in ("1.0", "2.0")
    }


# --- downloads of files that are not stored ---------------------------------------------------


@pytest.mark.parametrize("route", ["/files/demo/{f}", "/api/package/demo/{f}"])
def test_download_fills_the_cache_and_streams(tmp_path, upstream, route) -> None:
    client = make_client(tmp_path, upstream, fallback="cache")
    wanted = upstream.files["demo"]["demo-2.0-py3-none-any.whl"]
    path = route.format(f=wanted.filename)
    response = client.get(path, headers=auth("bob"))
    assert response.status_code == 200, response.text
    assert response.content == wanted.path.read_bytes()
    record = client.services.catalog.get_file("demo", wanted.filename)
    assert record is not None and record.sha256 == wanted.sha256
    before = upstream.count("/files/")
    again = client.get(path, headers=auth("bob"))  # from storage now
    assert again.content == wanted.path.read_bytes() and upstream.count("/files/") == before
    # the project is stored now: /simple/ lists it, its page is the local one
    root = client.get(
        "/simple/", headers=auth("bob") | {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert [p["name"] for p in root.json()["projects"]] == ["demo"]


def test_download_refusals(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache", cache_update="cachers")
    name = "demo-2.0-py3-none-any.whl"
    assert client.get(f"/files/demo/{name}").status_code == 401  # default_read: anonymous
    forbidden = client.get(f"/files/demo/{name}", headers=auth("bob"))  # no cache_update
    assert forbidden.status_code == 403 and "cache_update" in forbidden.text
    assert client.get("/files/demo/demo-9.9.tar.gz", headers=auth("carol")).status_code == 404
    unreadable = f"{UNREADABLE.replace('-', '_')}-2.0-py3-none-any.whl"
    assert client.get(f"/files/{UNREADABLE}/{unreadable}", headers=auth("bob")).status_code == 404
    assert client.get(f"/files/{UNREADABLE}/{unreadable}").status_code == 401
    assert client.get(f"/files/demo/{name}", headers=auth("carol")).status_code == 200
    redirect = make_client(tmp_path, upstream, fallback="redirect")
    assert redirect.get(f"/files/demo/{name}", headers=auth("bob")).status_code == 404


def test_a_file_larger_than_the_cache_takes_is_refused_before_any_byte(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache")
    client.services.fallback.filler.max_bytes = 100  # the wheels here are ~1 KB
    got = client.get("/files/demo/demo-2.0-py3-none-any.whl", headers=auth("carol"))
    assert got.status_code == 502 and "larger than this index caches" in got.text
    assert upstream.count("/files/") == 0  # refused on the size the page announced
    assert client.services.catalog.list_projects() == []


def test_upstream_metadata_is_served_for_cache_links(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache")
    page = client.get(
        "/simple/demo/", headers=auth("bob") | {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    entry = next(f for f in page.json()["files"] if f["filename"] == "demo-2.0-py3-none-any.whl")
    assert entry["requires-python"] == ">=3.9" and entry["core-metadata"]["sha256"]
    assert entry["upload-time"] == "2024-01-01T00:00:00.000000Z"  # the upstream's, as given
    store_locally(client, "demo", "3.0")  # a stored file's time, formatted by the page
    page = client.get(
        "/simple/demo/", headers=auth("bob") | {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    stored = next(f for f in page.json()["files"] if f["filename"].startswith("demo-3.0"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stored["upload-time"])
    meta = client.get("/files/demo/demo-2.0-py3-none-any.whl.metadata", headers=auth("bob"))
    assert meta.status_code == 200 and "Requires-Python: >=3.9" in meta.text
    assert client.services.catalog.get_file("demo", "demo-2.0-py3-none-any.whl") is None


def test_private_projects_never_fall_back(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="redirect", private_projects="acme-*")
    assert client.get("/simple/acme-secret/", headers=auth("bob")).status_code == 404
    assert client.get("/simple/demo/", headers=auth("bob")).status_code == 302
    cache = make_client(tmp_path, upstream, fallback="cache", private_projects="acme-*")
    name = "acme_secret-2.0-py3-none-any.whl"
    assert cache.get(f"/files/acme-secret/{name}", headers=auth("bob")).status_code == 404


def test_upstream_down(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache", always_show_upstream="true")
    store_locally(client, "demo")
    upstream.down = True
    page = client.get(
        "/simple/demo/", headers=auth("bob") | {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert page.status_code == 200
    assert list(page_files(page)) == ["demo-1.0-py3-none-any.whl"]  # the local file only
    down = client.get("/simple/open-proj/", headers=auth("bob"))
    assert down.status_code == 502 and "does not answer" in down.text


# --- /api/fetch and /requirements.txt ---------------------------------------------------------


def test_api_fetch_form_and_json(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache")
    form = client.post(
        "/api/fetch",
        data={"requirements": "demo<2\nnope-nothing\n", "wheel": "true", "prerelease": "false"},
        headers=auth("bob"),
    )
    assert form.status_code == 200, form.text
    body = form.json()
    assert [(f["filename"], f["status"]) for f in body["fetched"]] == [
        ("demo-1.0-py3-none-any.whl", "fetched")
    ]
    assert body["failed"][0]["requirement"] == "nope-nothing"
    as_json = client.post("/api/fetch", json={"requirements": "demo"}, headers=auth("bob"))
    assert as_json.json()["fetched"][0]["filename"] == "demo-2.0-py3-none-any.whl"
    assert client.services.catalog.get_file("demo", "demo-2.0-py3-none-any.whl") is not None


def test_fetch_reads_its_flags_as_pypicloud_does(tmp_path, upstream) -> None:
    """``wheel`` and ``prerelease`` take pyramid's ``asbool`` words ("t", "y", "on"...), as
    every boolean option does; any other word is a 400 and nothing is fetched."""
    upstream.add_wheel("demo", "3.0a1")
    upstream.add_sdist("demo", "2.0")
    client = make_client(tmp_path, upstream, fallback="cache")
    for word in ("maybe", "2"):
        refused = client.post(
            "/api/fetch", data={"requirements": "demo", "prerelease": word}, headers=auth("bob")
        )
        assert refused.status_code == 400 and "prerelease" in refused.text
    assert client.services.catalog.list_projects() == []
    pre = client.post(
        "/api/fetch", data={"requirements": "demo", "prerelease": "t"}, headers=auth("bob")
    )
    assert [f["filename"] for f in pre.json()["fetched"]] == ["demo-3.0a1-py3-none-any.whl"]
    sdist = client.post(
        "/api/fetch", json={"requirements": "demo<3", "wheel": "off"}, headers=auth("bob")
    )
    assert [f["filename"] for f in sdist.json()["fetched"]] == ["demo-2.0.tar.gz"]


def test_requirements_txt_multipart(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache")
    response = client.post(
        "/requirements.txt",
        files={"requirements": ("requirements.txt", b"open-proj==1.0\n", "text/plain")},
        headers=auth("bob"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["fetched"][0]["filename"] == "open_proj-1.0-py3-none-any.whl"


def test_fetch_refusals(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache", cache_update="cachers")
    assert client.post("/api/fetch", data={"requirements": "demo"}).status_code == 401
    assert (
        client.post("/api/fetch", data={"requirements": "demo"}, headers=auth("bob")).status_code
        == 403
    )
    assert client.post("/api/fetch", data={}, headers=auth("carol")).status_code == 400
    too_big = client.post("/api/fetch", data={"requirements": "x" * 70_000}, headers=auth("carol"))
    assert too_big.status_code == 400
    none = make_client(tmp_path, upstream)
    assert (
        none.post("/api/fetch", data={"requirements": "demo"}, headers=auth("bob")).status_code
        == 400
    )
    assert client.services.catalog.list_projects() == []


def test_fetch_bodies_are_bounded_however_sent(tmp_path, upstream) -> None:
    """Over the limit as a multipart file, chunked (no Content-Length) or as too many
    requirements or parts: a 400 before anything is fetched."""
    client = make_client(tmp_path, upstream, fallback="cache")
    big = b"demo\n" * 20_000  # 100 KB
    as_file = client.post(
        "/requirements.txt",
        files={"requirements": ("requirements.txt", big, "text/plain")},
        headers=auth("bob"),
    )
    assert as_file.status_code == 400 and "larger than" in as_file.text

    def chunks():
        for _ in range(20):
            yield b"requirements=" + b"x" * 5000

    chunked = client.post(
        "/api/fetch",
        content=chunks(),
        headers={**auth("bob"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert chunked.status_code == 400 and "larger than" in chunked.text
    many = client.post("/api/fetch", data={"requirements": "demo\n" * 201}, headers=auth("bob"))
    assert many.status_code == 400 and "at most 200" in many.text
    two_files = client.post(
        "/requirements.txt",
        files=[("requirements", ("a.txt", b"demo\n")), ("requirements", ("b.txt", b"demo\n"))],
        headers=auth("bob"),
    )
    assert two_files.status_code == 400
    assert client.services.catalog.list_projects() == []


# --- origin controls --------------------------------------------------------------------------


def test_origin_controls_admin_api(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache", private_projects="acme-*")
    url = "/admin/package/Demo/origin/"
    assert client.get(url, headers=auth("bob")).status_code == 403
    assert client.get(url).status_code == 401
    state = client.get(url, headers=auth("alice")).json()
    assert state == {
        "project": "demo",
        "upstream": "allow",
        "publish": "allow",
        "set_by": None,
        "private": False,
    }
    changed = client.put(url, json={"upstream": "block"}, headers=auth("alice"))
    assert changed.status_code == 200 and changed.json()["upstream"] == "block"
    assert changed.json()["set_by"] == "admin"
    assert client.get("/simple/demo/", headers=auth("bob")).status_code == 404  # blocked
    bad = client.put(url, json={"upstream": "maybe"}, headers=auth("alice"))
    assert bad.status_code == 400
    assert client.get("/admin/package/acme-x/origin", headers=auth("alice")).json()["private"]


def test_origin_lock_blocks_publishing_a_cached_name(tmp_path, upstream) -> None:
    client = make_client(tmp_path, upstream, fallback="cache", origin_lock="true")
    assert (
        client.get("/files/demo/demo-1.0-py3-none-any.whl", headers=auth("bob")).status_code == 200
    )
    filename, data = wheel_bytes("demo", "3.0")

    def upload():
        return client.post(
            "/",
            data={":action": "file_upload", "name": "demo", "version": "3.0"},
            files={"content": (filename, data, "application/octet-stream")},
            headers=auth("alice"),
        )

    refused = upload()
    assert refused.status_code == 403, refused.text
    assert 'PUT /admin/package/demo/origin/ {"publish": "allow"}' in refused.text
    client.put("/admin/package/demo/origin/", json={"publish": "allow"}, headers=auth("alice"))
    assert upload().status_code == 200
