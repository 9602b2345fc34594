"""Regression tests of issue 10's consistency items (12, 13, 14, 15) on both adapter sets.

"local" is SQLite + files on disk (``stratus serve``), "aws" is DynamoDB Local + S3 on a
moto server. Crashes are simulated by wrappers that make one step of a port fail, then
the sync and reconcile use cases run as they would after the crash.
"""

from __future__ import annotations

import hashlib
import html.parser
import io
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from stratus.app.leases import LEASE_SECONDS
from stratus.app.publish import Publisher
from stratus.app.reconcile import reconcile
from stratus.app.sync import Outcome, S3Change, apply_change, describe_object
from stratus.domain.errors import Conflict, NotFound
from stratus.domain.keys import description_key, file_key, metadata_key
from stratus.domain.models import FileRecord
from stratus.domain.objectmeta import from_object_metadata, to_object_metadata
from stratus.ports import Catalog, Storage
from tests.support import hostile
from tests.support.concurrency import run_concurrently
from tests.support.distributions import core_metadata, wheel_bytes

from .conftest import auth
from .test_simple_api import JSON
from .test_simple_api import upload as http_upload


@pytest.fixture(params=["local", "aws"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Catalog, Storage]:
    if request.param == "local":
        from stratus.adapters.local_storage import LocalStorage
        from stratus.adapters.sqlite_catalog import SqliteCatalog

        return SqliteCatalog(tmp_path / "index.sqlite3"), LocalStorage(tmp_path / "files")
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.s3_storage import S3Storage

    return (
        DynamoCatalog(request.getfixturevalue("dynamo_table")),
        S3Storage(request.getfixturevalue("s3_bucket")),
    )


class Wrapper:
    """A port that behaves as ``inner`` except where a test overrides a method."""

    def __init__(self, inner: Any, **overrides: Callable[..., Any]) -> None:
        self.inner = inner
        for name, method in overrides.items():
            setattr(self, name, method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def upload(catalog: Any, storage: Any, built: tuple[str, bytes], *, overwrite: bool = False):
    filename, data = built
    name, version = filename.split("-")[:2]
    return Publisher(catalog, storage, allow_overwrite=overwrite).upload(
        name=name,
        version=version,
        filename=filename,
        data=data,
        digests={"sha256_digest": hashlib.sha256(data).hexdigest()},
        uploader="alice",
    )


def build(version: str = "1.0", body: str = "", **kwargs: Any) -> tuple[str, bytes]:
    return wheel_bytes("demo", version, module_body=body or f"V = {version!r}\n", **kwargs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_index_matches_bytes(catalog: Catalog, storage: Storage, filename: str) -> str:
    entry = catalog.get_file("demo", filename)
    assert entry is not None
    stored = storage.read(file_key("demo", filename))
    assert entry.sha256 == sha(stored)
    if entry.metadata_sha256:
        assert sha(storage.read(metadata_key("demo", filename))) == entry.metadata_sha256
    return entry.sha256


def temporaries(storage: Any) -> list[Path]:
    root = getattr(storage, "root", None)
    return [] if root is None else sorted(root.rglob(".stratus-tmp-*"))


# --- 12: non-ASCII metadata, stored and served on every backend --------------------------------


def test_h12_non_ascii_summary_is_stored_and_served(stores) -> None:
    catalog, storage = stores
    summary = "Résumé — 日本語のパッケージ ☃ 🐍"
    built = build(summary=summary)
    record = upload(catalog, storage, built)  # once a 500 with an orphan file
    assert record.summary == summary
    assert catalog.get_file("demo", built[0]).summary == summary
    assert [f.summary for f in catalog.list_files("demo")] == [summary]
    meta = storage.read(metadata_key("demo", built[0]))
    assert f"Summary: {summary}".encode() in meta  # PEP 658 file: the bytes as uploaded
    info = storage.head(file_key("demo", built[0]))
    assert info is not None
    assert from_object_metadata(built[0], info.size, info.metadata).summary == summary
    rebuilt, _ = describe_object(storage, info)  # what sync and reconcile index
    assert (rebuilt.summary, rebuilt.sha256) == (summary, record.sha256)


# --- 13: an upload is all-or-nothing ---------------------------------------------------------


def test_h13_failed_upload_leaves_nothing_behind(stores) -> None:
    catalog, storage = stores

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("catalog unreachable")

    built = build()
    with pytest.raises(RuntimeError):
        upload(Wrapper(catalog, add_file=crash), storage, built)
    assert storage.head(file_key("demo", built[0])) is None
    assert storage.head(metadata_key("demo", built[0])) is None
    assert temporaries(storage) == []
    assert catalog.acquire_lease(file_key("demo", built[0]), "next", 1)  # released
    catalog.release_lease(file_key("demo", built[0]), "next")
    assert upload(catalog, storage, built).sha256 == sha(built[1])  # the retry


def _leave_orphan(catalog: Catalog, storage: Storage, built: tuple[str, bytes]) -> None:
    """What a process killed between its storage writes and its catalog write leaves."""
    from stratus.app.indexing import describe_distribution

    described = describe_distribution(built[0], built[1], uploader="alice")
    storage.put(
        metadata_key("demo", built[0]),
        described.core_metadata,
        content_type="text/plain; charset=utf-8",
    )
    storage.put(file_key("demo", built[0]), built[1], metadata=to_object_metadata(described.record))


def test_h13_orphan_of_a_crashed_upload_does_not_block_a_retry(stores) -> None:
    catalog, storage = stores
    crashed, retried = build(body="A = 1\n"), build(body="A = 2  # rebuilt\n")
    key = file_key("demo", crashed[0])
    _leave_orphan(catalog, storage, crashed)
    assert catalog.acquire_lease(key, "killed-process", LEASE_SECONDS)  # outlives it a while
    with pytest.raises(Conflict, match="in progress"):
        upload(catalog, storage, retried)
    assert catalog.acquire_lease(key, "killed-process", -1)  # ... and then expires
    record = upload(catalog, storage, retried)  # was a 409 "already exists" forever
    assert record.sha256 == sha(retried[1])
    assert assert_index_matches_bytes(catalog, storage, crashed[0]) == sha(retried[1])


def test_h13_concurrent_uploads_over_an_orphan_have_one_winner(stores) -> None:
    catalog, storage = stores
    for trial in range(3):
        version = f"1.{trial}"
        _leave_orphan(catalog, storage, build(version, body="orphan = 1\n"))
        contenders = [build(version, body=f"writer = {i}\n") for i in range(4)]
        results = run_concurrently(
            [lambda b=b: upload(catalog, storage, b) for b in contenders]  # type: ignore[misc]
        )
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert all(isinstance(r, Conflict) for r in results if r not in winners), results
        filename = contenders[0][0]
        assert assert_index_matches_bytes(catalog, storage, filename) == winners[0].sha256


def test_h13_local_storage_leaves_no_temporary_files(tmp_path: Path, monkeypatch) -> None:
    from stratus.adapters import local_storage

    storage = local_storage.LocalStorage(tmp_path / "files")
    storage.put("packages/demo/a", b"a", metadata={"x": "1"})

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(local_storage.os, "fsync", disk_full)
        with pytest.raises(OSError):
            storage.put("packages/demo/b", b"b" * 100_000, metadata={"x": "2"})
    assert temporaries(storage) == []
    # A writer killed mid-write leaves its temporaries: the next writer of the folder
    # (which holds the folder's lock, so no live writer owns them) removes them.
    for leftover in (
        "packages/demo/.stratus-tmp-dead",
        "packages/demo/.stratus-meta/.stratus-tmp-x",
    ):
        (storage.root / leftover).write_bytes(b"partial")
    storage.put("packages/demo/c", b"c")
    assert temporaries(storage) == []
    assert storage.read("packages/demo/a") == b"a"


def test_h13_reconcile_indexes_an_orphan_once_its_lease_expired(stores) -> None:
    catalog, storage = stores
    built = build()
    key = file_key("demo", built[0])
    _leave_orphan(catalog, storage, built)
    assert catalog.acquire_lease(key, "killed-process", LEASE_SECONDS)
    first = reconcile(catalog, storage)
    assert first.added == [] and key in first.skipped  # maybe still uploading: left alone
    assert catalog.get_file("demo", built[0]) is None
    assert catalog.acquire_lease(key, "killed-process", -1)  # the lease expires
    second = reconcile(catalog, storage)
    assert second.added == [key]  # indexed (rolled forward), as the S3 event sync would
    assert assert_index_matches_bytes(catalog, storage, built[0]) == sha(built[1])
    assert catalog.get_file("demo", built[0]).uploader == "alice"
    assert LEASE_SECONDS >= 60  # far longer than a request may run (30 s on API Gateway)


# --- 14: concurrent overwrites -----------------------------------------------------------------


def test_h14_concurrent_overwrites_keep_index_and_bytes_in_step(stores) -> None:
    catalog, storage = stores
    first, second = build(body="first = 1\n"), build(body="second = 2  # longer\n")
    key = file_key("demo", first[0])
    first_stored, second_committed = threading.Event(), threading.Event()

    def put(k: str, data: bytes, **kwargs: Any) -> None:
        storage.put(k, data, **kwargs)
        if k == key and data == first[1]:
            first_stored.set()

    def add_file(record, *, overwrite: bool = False) -> None:
        if record.sha256 == sha(first[1]):
            # The window of the review: the first upload stored its bytes and is slow to
            # commit; unserialized, the second stores and commits in between.
            second_committed.wait(timeout=1.5)
        catalog.add_file(record, overwrite=overwrite)
        if record.sha256 == sha(second[1]):
            second_committed.set()

    slow_catalog, spy_storage = Wrapper(catalog, add_file=add_file), Wrapper(storage, put=put)

    def first_upload() -> object:
        return upload(slow_catalog, spy_storage, first, overwrite=True)

    def second_upload() -> object:
        assert first_stored.wait(timeout=30)  # starts once the first stored its bytes
        return upload(slow_catalog, spy_storage, second, overwrite=True)

    results = run_concurrently([first_upload, second_upload])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert assert_index_matches_bytes(catalog, storage, first[0]) == sha(second[1])

    for trial in range(3):  # and a free-for-all
        writers = [build(body=f"w = {trial * 10 + i}\n" + "#" * i) for i in range(4)]
        results = run_concurrently(
            [lambda b=b: upload(catalog, storage, b, overwrite=True) for b in writers]  # type: ignore[misc]
        )
        assert all(not isinstance(r, Exception) or isinstance(r, Conflict) for r in results)
        assert any(not isinstance(r, Exception) for r in results), results
        assert_index_matches_bytes(catalog, storage, first[0])


# --- 15: write ordering and crashes between steps ----------------------------------------------


def test_h15_metadata_is_stored_before_the_file_and_its_entry(stores) -> None:
    catalog, storage = stores
    built = build()
    key, meta_key = file_key("demo", built[0]), metadata_key("demo", built[0])
    checks: list[str] = []

    def put(k: str, data: bytes, **kwargs: Any) -> None:
        if k == key:  # the S3 event sync may list the file as soon as it lands
            assert storage.head(meta_key) is not None
            checks.append("file after metadata")
        storage.put(k, data, **kwargs)

    def add_file(record, *, overwrite: bool = False) -> None:
        assert storage.head(key) is not None and storage.head(meta_key) is not None
        checks.append("entry after both")
        catalog.add_file(record, overwrite=overwrite)

    upload(Wrapper(catalog, add_file=add_file), Wrapper(storage, put=put), built)
    assert checks == ["file after metadata", "entry after both"]


def _import(catalog: Any, storage: Any, built: tuple[str, bytes], tmp_path: Path) -> FileRecord:
    """A cache fill's store step (``Publisher.import_file``) of ``built``."""
    from stratus.app.indexing import Digests, describe_archive

    path = tmp_path / built[0]
    path.write_bytes(built[1])
    with open(path, "rb") as archive:
        described = describe_archive(built[0], archive, Digests.of(built[1]), strict=False)
    return Publisher(catalog, storage, allow_overwrite=False).import_file(described, path)


def test_h15_cache_fill_stores_in_the_upload_order_under_the_lease(stores, tmp_path) -> None:
    catalog, storage = stores
    built = build(description="# Demo\n\nFrom the upstream.\n")
    key, meta_key = file_key("demo", built[0]), metadata_key("demo", built[0])
    checks: list[str] = []

    def put_file(k: str, path: Path, **kwargs: Any) -> None:
        assert k == key and storage.head(meta_key) is not None
        assert storage.head(description_key("demo", built[0])) is not None
        assert not catalog.acquire_lease(key, "someone else", 60)  # the fill holds it
        checks.append("file after metadata and description")
        storage.put_file(k, path, **kwargs)

    def add_file(record, *, overwrite: bool = False) -> None:
        assert not overwrite and storage.head(key) is not None
        checks.append("entry last")
        catalog.add_file(record, overwrite=overwrite)

    stored = _import(
        Wrapper(catalog, add_file=add_file), Wrapper(storage, put_file=put_file), built, tmp_path
    )
    assert checks == ["file after metadata and description", "entry last"]
    assert assert_index_matches_bytes(catalog, storage, built[0]) == stored.sha256 == sha(built[1])
    with pytest.raises(Conflict):  # a fill never overwrites
        _import(catalog, storage, built, tmp_path)


def test_h13_failed_cache_fill_leaves_nothing_behind(stores, tmp_path) -> None:
    catalog, storage = stores

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("catalog unreachable")

    built = build(description="# Demo\n")
    with pytest.raises(RuntimeError):
        _import(Wrapper(catalog, add_file=crash), storage, built, tmp_path)
    for key in (file_key, metadata_key, description_key):
        assert storage.head(key("demo", built[0])) is None
    assert catalog.acquire_lease(file_key("demo", built[0]), "next", 1)  # released
    catalog.release_lease(file_key("demo", built[0]), "next")
    assert _import(catalog, storage, built, tmp_path).sha256 == sha(built[1])  # the retry


def test_h15_delete_removes_the_entry_before_the_bytes(stores) -> None:
    catalog, storage = stores
    built = build()
    upload(catalog, storage, built)
    order: list[str] = []

    def delete(k: str) -> None:
        assert catalog.get_file("demo", built[0]) is None  # nothing listed without bytes
        order.append(k)
        storage.delete(k)

    Publisher(catalog, Wrapper(storage, delete=delete), allow_overwrite=False).delete(
        "demo", built[0]
    )
    assert order == [  # the distribution first; its metadata and rendered README after
        file_key("demo", built[0]),
        metadata_key("demo", built[0]),
        description_key("demo", built[0]),
    ]


def test_h15_interrupted_delete_is_not_resurrected(stores) -> None:
    catalog, storage = stores
    built = build()
    upload(catalog, storage, built)
    key = file_key("demo", built[0])

    def crash(k: str) -> None:
        raise RuntimeError("killed before the object was deleted")

    with pytest.raises(RuntimeError):
        Publisher(catalog, Wrapper(storage, delete=crash), allow_overwrite=False).delete(
            "demo", built[0]
        )
    assert catalog.get_file("demo", built[0]) is None
    assert storage.head(key) is not None  # the object survived the crash

    # An S3 event for the key replayed (at least once, out of order): not listed again.
    replay = S3Change("ObjectCreated:Put", "bucket", key, sequencer="0FFFFFFFFFFFFFFF")
    assert apply_change(catalog, storage, replay) is Outcome.UNCHANGED
    assert catalog.get_file("demo", built[0]) is None

    report = reconcile(catalog, storage)  # does not list it again either
    assert report.added == [] and "interrupted" in report.skipped[key]
    assert catalog.list_files("demo") == []
    assert catalog.list_projects() == []

    # Retrying the delete (its client saw a 500) finishes it, instead of a 404.
    publisher = Publisher(catalog, storage, allow_overwrite=False)
    assert publisher.delete("demo", built[0]).sha256 == sha(built[1])
    assert storage.head(key) is None
    assert storage.head(metadata_key("demo", built[0])) is None
    with pytest.raises(NotFound):
        publisher.delete("demo", built[0])

    assert upload(catalog, storage, built).sha256 == sha(built[1])  # uploading again works
    assert reconcile(catalog, storage).repairs == 0


# --- through HTTP: the app on both adapter sets (``client`` / ``services`` of conftest) --------


def _nothing_stored(services) -> None:
    assert services.catalog.list_projects() == []
    assert [info.key for info in services.storage.list("packages/")] == []


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_h08_http_zip_bomb_is_a_400(client, services, method: int) -> None:
    built = hostile.zip_bomb_wheel("demo", "1.0", method)
    r = http_upload(client, built)
    assert r.status_code == 400, r.text
    assert "METADATA is larger than 1048576 bytes" in r.text
    _nothing_stored(services)


@pytest.mark.parametrize("name", ["demo\r\nX-Injected: yes", "demo\n", "\u212aelvin"])
def test_h12_http_crlf_or_lookalike_project_name_is_a_400(client, services, name: str) -> None:
    r = http_upload(client, build(), name=name)
    assert r.status_code == 400, r.text
    assert "Invalid project name" in r.text
    assert "\r" not in r.text and "X-Injected" not in r.headers
    _nothing_stored(services)


def test_h12_http_huge_version_is_a_400(client, services) -> None:
    r = http_upload(client, build(), version="1" * 1_000_000)
    assert r.status_code == 400 and "longer than 128" in r.text
    _nothing_stored(services)


def test_h12_http_non_ascii_summary_is_a_200_and_served_intact(client, services) -> None:
    summary = "Résumé — 日本語のパッケージ ☃ 🐍"
    built = build(summary=summary)
    r = http_upload(client, built)
    assert r.status_code == 200, r.text
    info = client.get("/pypi/demo/json", headers=auth("bob")).json()["info"]
    assert info["summary"] == summary
    r = client.get(f"/files/demo/{built[0]}.metadata", headers=auth("bob"))
    if r.status_code == 302:  # AWS: a presigned storage URL
        r = httpx.get(r.headers["location"])
    assert r.status_code == 200
    expected = zipfile.ZipFile(io.BytesIO(built[1])).read("demo-1.0.dist-info/METADATA")
    assert r.content == expected  # PEP 658: the bytes as uploaded
    assert f"Summary: {summary}" in r.content.decode()


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0-py3-none-any.whl#frag",
        "demo-1.0%2F..-py3-none-any.whl",
        "DEMO-1.0-py3-none-any.whl",
    ],
)
def test_h16_http_bad_filename_is_a_400(client, services, filename: str) -> None:
    r = http_upload(client, (filename, build()[1]), name="demo", version="1.0")
    assert r.status_code == 400, r.text
    assert "Invalid" in r.text and ("character" in r.text or "canonical" in r.text)
    _nothing_stored(services)


def test_h17_http_metadata_disagreeing_with_the_filename_is_a_400(client, services) -> None:
    lying = wheel_bytes("demo", "1.0", metadata=core_metadata("other", "1.0").encode())
    r = http_upload(client, lying)
    assert r.status_code == 400
    assert "METADATA field Name 'other' does not match" in r.text
    _nothing_stored(services)


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_h16_simple_pages_escape_every_url_and_attribute(client, services) -> None:
    # An entry no upload accepts any more, as an older version or the bucket may hold it.
    hostile_name = 'demo-1.0+x"><img src=x onerror=alert(1)>#?%&.tar.gz'
    record = FileRecord(
        project="demo",
        filename=hostile_name,
        version="1.0",
        sha256="a" * 64,
        size=1,
        upload_time=1_700_000_000.0,
        requires_python='>=3"><script>alert(1)</script>',
        yanked="<b>\"broken\"</b> & 'bad'",
        metadata_sha256="b" * 64,
    )
    services.catalog.add_file(record)
    page = _Page()
    page.feed(client.get("/simple/demo/", headers=auth("bob")).text)
    assert [
        tag
        for tag, _ in page.tags
        if tag not in ("html", "head", "meta", "title", "body", "h1", "br")
    ] == ["a"]
    (attrs,) = [a for tag, a in page.tags if tag == "a"]
    quoted = quote(hostile_name, safe="")
    assert attrs["href"] == f"../../files/demo/{quoted}#sha256={'a' * 64}"
    assert attrs["data-requires-python"] == record.requires_python
    assert attrs["data-yanked"] == record.yanked
    assert attrs["data-core-metadata"] == f"sha256={'b' * 64}"
    as_json = client.get("/simple/demo/", headers={**auth("bob"), "Accept": JSON}).json()
    assert as_json["files"][0]["url"] == f"../../files/demo/{quoted}"
    pypi = client.get("/pypi/demo/json", headers=auth("bob")).json()
    assert pypi["urls"][0]["url"].endswith(f"/files/demo/{quoted}")
    listing = client.get("/api/package/demo/", headers=auth("bob")).json()
    assert listing["packages"][0]["url"].endswith(f"/files/demo/{quoted}")
    root = _Page()
    root.feed(client.get("/simple/", headers=auth("bob")).text)
    assert [a["href"] for tag, a in root.tags if tag == "a"] == ["demo/"]
    # and the encoded URL leads to the entry: the path is decoded back to the filename
    r = client.get(f"/files/demo/{quoted}", headers=auth("bob"))
    assert r.status_code in (302, 404)  # found in the catalog (no bytes stored for it here)
    assert "indexed but missing" in r.text or r.status_code == 302
