"""`stratus migrate OLD NEW` (pypicloud's ppc-migrate): every file, its core metadata and
description and its index entry go to another deployment; a re-run skips what is there, a
different file of the same name is a conflict left alone (unless --overwrite), and the
destination serves what it got."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from urllib.parse import urljoin

import httpx
from starlette.testclient import TestClient

from stratus.app.migrate import Migration, Outcome, Side
from stratus.app.publish import Publisher
from stratus.app.services import Services
from stratus.domain.keys import description_key, file_key, metadata_key
from stratus.domain.objectmeta import to_object_metadata
from stratus.ports import Catalog, Storage
from stratus.web.app import create_app
from tests.e2e.conftest import SAMPLE_CONFIG
from tests.integration.test_cli_rebuild import index_of, publish_sample, stratus
from tests.support.distributions import wheel_bytes

JSON_V1 = "application/vnd.pypi.simple.v1+json"
BOB = {"Authorization": "Basic " + base64.b64encode(b"bob:bob-secret").decode()}


def upload(catalog: Catalog, storage: Storage, name: str, built: tuple[str, bytes]) -> None:
    filename, data = built
    Publisher(catalog, storage, allow_overwrite=False).upload(
        name=name, version="1.0", filename=filename, data=data, digests={}, uploader="al"
    )


def sidecars(storage: Storage, catalog: Catalog) -> dict[str, bytes]:
    """Every stored object of the listed files: distribution, metadata, description."""
    found = {}
    for p in catalog.list_projects():
        for r in catalog.list_files(p.name):
            for key in (file_key, metadata_key, description_key):
                k = key(r.project, r.filename)
                if storage.head(k) is not None:
                    found[k] = storage.read(k)
    return found


def served_hashes(services: Services, project: str) -> dict[str, str]:
    with TestClient(create_app(services)) as client:
        page = client.get(f"/simple/{project}/", headers={**BOB, "Accept": JSON_V1})
        assert page.status_code == 200, page.text
        hashes = {f["filename"]: f["hashes"]["sha256"] for f in page.json()["files"]}
        for f in page.json()["files"]:
            got = client.get(urljoin(str(page.url), f["url"]), headers=BOB, follow_redirects=False)
            if got.is_redirect:  # S3: a presigned URL of the bucket
                got = httpx.get(got.headers["location"])
            assert got.status_code == 200, (got.url, got.text[:300])
            assert hashlib.sha256(got.content).hexdigest() == hashes[f["filename"]]
    return hashes


def test_local_to_local(tmp_path: Path) -> None:
    from stratus.wiring import services_local

    src_dir, dst_dir = tmp_path / "src", tmp_path / "dst"
    src = services_local(src_dir)
    before = publish_sample(src.catalog, src.storage)
    src.catalog.set_yanked("beta-lib", "beta_lib-0.3-py3-none-any.whl", "broken")
    described = ("gamma", wheel_bytes("gamma", "1.0", description="# Gamma\n\nhello"))
    upload(src.catalog, src.storage, *described)
    src_objects = sidecars(src.storage, src.catalog)
    assert any(k.endswith(".description.html") for k in src_objects)

    dry = stratus("migrate", str(src_dir), str(dst_dir), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would copy ") == 4
    assert "4 files: 4 would copy, 0 skipped, 0 conflict, 0 failed" in dry.stdout
    assert index_of(services_local(dst_dir).catalog) == {}

    done = stratus("migrate", str(src_dir), str(dst_dir), "--progress-seconds", "0")
    assert done.returncode == 0, done.stderr
    assert "migrated 1/4 files" in done.stderr and "migrated 4/4 files" in done.stderr
    assert "4 files: 4 copied, 0 skipped, 0 conflict, 0 failed" in done.stdout
    dst = services_local(dst_dir, SAMPLE_CONFIG)
    assert index_of(dst.catalog) == index_of(src.catalog)
    assert set(before) <= set(index_of(dst.catalog))
    assert dst.catalog.get_file("beta-lib", "beta_lib-0.3-py3-none-any.whl").yanked == "broken"
    assert dst.catalog.get_file("alpha", "alpha-1.0.tar.gz").uploader == "al"
    assert sidecars(dst.storage, dst.catalog) == src_objects
    src_served = served_hashes(services_local(src_dir, SAMPLE_CONFIG), "alpha")
    assert served_hashes(dst, "alpha") == src_served

    again = stratus("migrate", str(src_dir), str(dst_dir), "-q")
    assert again.returncode == 0 and again.stderr == ""
    assert "4 files: 0 copied, 4 skipped, 0 conflict, 0 failed" in again.stdout

    # A different delta-1.0 wheel at each end: a conflict, left alone unless --overwrite.
    upload(src.catalog, src.storage, "delta", wheel_bytes("delta", "1.0", summary="ours"))
    upload(dst.catalog, dst.storage, "delta", wheel_bytes("delta", "1.0", summary="theirs"))
    theirs = dst.catalog.get_file("delta", "delta-1.0-py3-none-any.whl")
    clash = stratus("migrate", str(src_dir), str(dst_dir), "-q")
    assert clash.returncode == 1
    assert "conflict: delta/delta-1.0-py3-none-any.whl: the destination lists another" in (
        clash.stderr
    )
    assert "5 files: 0 copied, 4 skipped, 1 conflict, 0 failed" in clash.stdout
    assert dst.catalog.get_file("delta", theirs.filename) == theirs
    forced = stratus("migrate", str(src_dir), str(dst_dir), "-q", "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert "1 copied, 4 skipped" in forced.stdout
    ours = src.catalog.get_file("delta", theirs.filename)
    assert dst.catalog.get_file("delta", theirs.filename).sha256 == ours.sha256 != theirs.sha256
    assert dst.storage.read(file_key("delta", theirs.filename)) == src.storage.read(
        file_key("delta", theirs.filename)
    )


def test_interrupted_run_and_bad_source(tmp_path: Path) -> None:
    """Bytes that landed without their entry get the entry; a source whose bytes do not
    match its index fails that file (and only it)."""
    from stratus.wiring import services_local

    src, dst = services_local(tmp_path / "src"), services_local(tmp_path / "dst")
    publish_sample(src.catalog, src.storage)
    record = src.catalog.get_file("alpha", "alpha-1.0.tar.gz")
    key = file_key(record.project, record.filename)
    dst.storage.put(key, src.storage.read(key), metadata=to_object_metadata(record))
    wheel = src.catalog.get_file("beta-lib", "beta_lib-0.3-py3-none-any.whl")
    wheel_key = file_key(wheel.project, wheel.filename)
    data = bytearray(src.storage.read(wheel_key))
    data[-1] ^= 1
    src.storage.put(wheel_key, bytes(data), metadata=to_object_metadata(wheel))

    seen: dict[str, Outcome] = {}
    report = Migration(Side(src.catalog, src.storage), Side(dst.catalog, dst.storage)).run(
        each=lambda r, outcome, reason: seen.__setitem__(r.filename, outcome)
    )
    assert seen[record.filename] is Outcome.COPIED
    assert dst.catalog.get_file("alpha", record.filename) == record
    assert seen[wheel.filename] is Outcome.FAILED
    assert "sha256" in report.reasons[f"beta-lib/{wheel.filename}"]
    assert dst.catalog.get_file("beta-lib", wheel.filename) is None
    assert dst.storage.head(wheel_key) is None
    assert dst.storage.head(metadata_key(wheel.project, wheel.filename)) is None  # nothing
    assert not report.ok and report.count(Outcome.COPIED) == 2


def test_local_to_s3_and_dynamodb(tmp_path: Path, s3_bucket: str, dynamo_table: str) -> None:
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.s3_storage import S3Storage
    from stratus.cli.migrate import services_for
    from stratus.wiring import services_local

    src_dir = tmp_path / "src"
    src = services_local(src_dir)
    publish_sample(src.catalog, src.storage)
    old = tmp_path / "old.ini"
    old.write_text(f"[app:main]\npypi.storage = file\nstorage.dir = {src_dir}\n")
    new = tmp_path / "new.ini"
    new.write_text(
        SAMPLE_CONFIG.read_text()
        + f"pypi.storage = s3\nstorage.bucket = {s3_bucket}\n"
        + f"pypi.db = dynamo\ndb.table_name = {dynamo_table}\n"
    )
    done = stratus("migrate", str(old), str(new), "--progress-seconds", "0")
    assert done.returncode == 0, done.stderr
    assert "migrated 3/3 files" in done.stderr
    assert "3 files: 3 copied, 0 skipped, 0 conflict, 0 failed" in done.stdout
    catalog, storage = DynamoCatalog(dynamo_table), S3Storage(s3_bucket)
    assert index_of(catalog) == index_of(src.catalog)
    assert sidecars(storage, catalog) == sidecars(src.storage, src.catalog)
    dst = services_for(str(new))
    assert served_hashes(dst, "alpha") == {
        r.filename: r.sha256 for r in src.catalog.list_files("alpha")
    }

    again = stratus("migrate", str(old), str(new), "-q")
    assert again.returncode == 0, again.stderr
    assert "3 files: 0 copied, 3 skipped, 0 conflict, 0 failed" in again.stdout
