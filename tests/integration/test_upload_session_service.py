"""The upload session use case on each deployment's adapters: local (files + SQLite) and
AWS (S3 on the moto server + DynamoDB Local). Bytes go to the upload targets the way a
client sends them (``tests/support/upload_targets.py``)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from stratus.app.publish import Publisher
from stratus.app.ranged_reads import RangedReader, stream_sha256
from stratus.app.upload_sessions import UploadIncomplete, UploadSessionService, is_in_place
from stratus.domain.errors import Conflict, InvalidInput, NotFound
from stratus.domain.keys import file_key, metadata_key
from stratus.domain.models import Identity
from stratus.ports import Catalog, Storage, UploadSessions
from stratus.settings import Settings
from tests.support.concurrency import run_concurrently
from tests.support.distributions import sdist_bytes, wheel_bytes, write_wheel_with_payload
from tests.support.upload_targets import send

MIB = 1024 * 1024
ALICE = Identity("alice")
BOB = Identity("bob")
ADMIN = Identity("root", is_admin=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Deployment:
    kind: str
    catalog: Catalog
    storage: Storage
    sessions: UploadSessions
    clock: Clock

    def service(self, **settings: object) -> UploadSessionService:
        merged: dict[str, object] = {
            "upload_multipart_threshold": 8 * MIB,
            "upload_part_size": 5 * MIB,  # S3's smallest
        } | settings
        parsed = Settings.from_mapping(merged)
        publisher = Publisher(self.catalog, self.storage, allow_overwrite=parsed.allow_overwrite)
        return UploadSessionService(
            self.sessions, self.storage, self.catalog, publisher, parsed, clock=self.clock
        )

    def staged(self) -> list[str]:
        return [info.key for info in self.storage.list("uploads/")]


@pytest.fixture(params=["local", "aws"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    clock = Clock()
    if request.param == "local":
        from stratus.adapters.local_storage import LocalStorage
        from stratus.adapters.sqlite_catalog import SqliteCatalog
        from stratus.adapters.sqlite_upload_sessions import SqliteUploadSessions

        return Deployment(
            "local",
            SqliteCatalog(tmp_path / "index.sqlite3"),
            LocalStorage(tmp_path / "files"),
            SqliteUploadSessions(tmp_path / "uploads.sqlite3"),
            clock,
        )
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.dynamo_upload_sessions import DynamoUploadSessions
    from stratus.adapters.s3_storage import S3Storage

    table = request.getfixturevalue("dynamo_table")
    return Deployment(
        "aws",
        DynamoCatalog(table),
        S3Storage(request.getfixturevalue("s3_bucket")),
        DynamoUploadSessions(table),
        clock,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def big_wheel(tmp_path: Path, size_mib: int = 11, seed: int = 1, version: str = "1.0") -> bytes:
    path = write_wheel_with_payload(
        tmp_path / f"w{seed}",
        "Big-Pkg",
        version,
        size_mib * MIB,
        seed=seed,
        requires_python=">=3.9",
    )
    return path.read_bytes()


BIG = "big_pkg-1.0-py3-none-any.whl"


def upload_all(service: UploadSessionService, session, data: bytes, order=None) -> None:  # type: ignore[no-untyped-def]
    numbers = None if order is None else list(order)
    for number, target in service.targets(session, numbers):
        if number == 0:
            chunk = data
        else:
            start = (number - 1) * session.part_size
            chunk = data[start : start + session.part_size]
        assert send(service.storage, target, chunk) == 200


def create(service: UploadSessionService, data: bytes, filename: str = BIG, **kw: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "uploader": "alice",
        "name": "Big-Pkg",
        "version": "1.0",
        "filename": filename,
        "size": len(data),
        "sha256": sha(data),
    } | kw
    return service.create(**fields)  # type: ignore[arg-type]


def create_demo(service: UploadSessionService):  # type: ignore[no-untyped-def]
    """A one-target session for a small wheel: (filename, bytes, session)."""
    filename, data = wheel_bytes("Demo-Pkg", "2.0")
    session = create(
        service, data, filename=filename, name="Demo-Pkg", version="2.0", sha256=sha(data)
    )
    return filename, data, session


# --- the happy paths ---------------------------------------------------------------------


def test_one_target_upload_is_published(deployment: Deployment, tmp_path: Path) -> None:
    service = deployment.service()
    filename, data = wheel_bytes("Demo-Pkg", "2.0", requires_python=">=3.10")
    session = create(
        service, data, filename=filename, name="Demo-Pkg", version="2.0", sha256=sha(data).upper()
    )
    assert session.part_size == 0 and session.multipart_id is None
    key = file_key("demo-pkg", filename)
    # S3: one PUT straight to the file's key (in place); locally: staged, then copied.
    in_place = deployment.kind == "aws"
    assert is_in_place(session) is in_place
    assert session.staging_key == key if in_place else session.staging_key.startswith("uploads/")
    upload_all(service, session, data)
    assert deployment.catalog.get_file("demo-pkg", filename) is None  # not before completion

    done = service.complete(session.session_id, ALICE)
    assert done.status == "published"
    record = deployment.catalog.get_file("demo-pkg", filename)
    assert record is not None
    assert (record.sha256, record.size, record.version) == (sha(data), len(data), "2.0")
    assert (record.requires_python, record.uploader, record.display_name) == (
        ">=3.10",
        "alice",
        "Demo-Pkg",
    )
    assert deployment.storage.read(file_key("demo-pkg", filename)) == data
    stored_meta = deployment.storage.read(metadata_key("demo-pkg", filename))
    assert record.metadata_sha256 == sha(stored_meta)
    assert b"Requires-Python: >=3.10" in stored_meta
    info = deployment.storage.head(key)
    assert info is not None
    if in_place:  # the PUT's provenance and marker; the pending tag is gone
        assert info.metadata["stratus-uploader"] == "alice"
        assert info.metadata["stratus-session"] == session.session_id
        assert float(info.metadata["stratus-upload-time"]) == session.created
        assert not deployment.storage.upload_pending(key)
    else:
        assert info.metadata["stratus-sha256"] == sha(data)
    assert deployment.staged() == []  # the staged bytes are gone (in place: never there)
    assert service.complete(session.session_id, ALICE).status == "published"  # idempotent


def test_multipart_upload_is_verified_in_place(deployment: Deployment, tmp_path: Path) -> None:
    service = deployment.service()
    data = big_wheel(tmp_path)
    session = create(service, data)
    assert session.part_size == 5 * MIB and session.multipart_id
    upload_all(service, session, data, order=[3, 1, 2])
    assert [p.number for p in service.uploaded_parts(session)] == [1, 2, 3]

    assert service.complete(session.session_id, ALICE).status == "published"
    record = deployment.catalog.get_file("big-pkg", BIG)
    assert record is not None and record.sha256 == sha(data)
    assert record.requires_python == ">=3.9"
    assert deployment.storage.read(file_key("big-pkg", BIG)) == data
    assert deployment.staged() == []


def test_an_sdist_goes_through_too(deployment: Deployment) -> None:
    service = deployment.service()
    filename, data = sdist_bytes("Tar-Pkg", "0.3", requires_python=">=3.8")
    session = create(
        service, data, filename=filename, name="tar_pkg", version="0.3", sha256=sha(data)
    )
    upload_all(service, session, data)
    service.complete(session.session_id, ALICE)
    record = deployment.catalog.get_file("tar-pkg", filename)
    assert record is not None and record.requires_python == ">=3.8"
    assert record.metadata_sha256 is not None


# --- resuming ------------------------------------------------------------------------------


def test_an_interrupted_upload_is_resumed(deployment: Deployment, tmp_path: Path) -> None:
    service = deployment.service()
    data = big_wheel(tmp_path)
    session = create(service, data)
    upload_all(service, session, data, order=[2])  # the client stopped after one part
    with pytest.raises(UploadIncomplete, match=r"Parts missing: 1, 3 \(of 3\)"):
        service.complete(session.session_id, ALICE)
    again = service.get(session.session_id, ALICE)
    assert again.status == "pending" and "missing" in (again.message or "")

    # A new client run: asks what is there, sends the rest (fresh URLs), completes.
    have = {p.number for p in service.uploaded_parts(again)}
    assert have == {2}
    upload_all(service, again, data, order=[n for n in (1, 2, 3) if n not in have])
    assert service.complete(session.session_id, ALICE).status == "published"


def test_completion_before_any_byte_leaves_the_session_pending(deployment: Deployment) -> None:
    service = deployment.service()
    _, data, session = create_demo(service)
    with pytest.raises(UploadIncomplete):
        service.complete(session.session_id, ALICE)
    upload_all(service, session, data)
    assert service.complete(session.session_id, ALICE).status == "published"


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "bad name!"}, "Invalid project name"),
        ({"name": "other-pkg"}, "does not match the project name"),
        ({"version": "2.0"}, "does not match the version"),
        ({"version": "not a version"}, "Invalid version"),
        ({"filename": "../big_pkg-1.0-py3-none-any.whl"}, "Invalid filename"),
        ({"filename": "big_pkg-1.0.exe"}, "Invalid distribution filename"),
        ({"size": 0}, "positive"),
        ({"size": -5}, "positive"),
        ({"size": True}, "positive"),
        ({"size": "12"}, "positive"),
        ({"size": 10**12}, "at most"),
        ({"sha256": "abc"}, "64 hexadecimal"),
        ({"sha256": None}, "64 hexadecimal"),
        ({"sha256": "g" * 64}, "64 hexadecimal"),
    ],
)
def test_create_checks_up_front(deployment: Deployment, changes: dict, message: str) -> None:
    service = deployment.service(upload_session_max_bytes=10**9)
    with pytest.raises(InvalidInput, match=message):
        create(service, b"x" * 100, **changes)
    assert deployment.staged() == []


def test_create_refuses_a_file_already_in_the_index(deployment: Deployment) -> None:
    service = deployment.service()
    filename, data = wheel_bytes("Demo-Pkg", "2.0")
    service.publisher.upload(
        name="Demo-Pkg", version="2.0", filename=filename, data=data, digests={}, uploader="bob"
    )
    same_file = {"filename": filename, "name": "demo_pkg", "version": "2.0"}
    with pytest.raises(Conflict, match="already exists"):
        create(service, data, **same_file)
    overwriting = deployment.service(allow_overwrite="true")
    assert create(overwriting, data, **same_file).status == "pending"


def test_other_bytes_are_refused_by_a_one_target_upload(deployment: Deployment) -> None:
    service = deployment.service()
    _, data, session = create_demo(service)
    [(_, target)] = service.targets(session)
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    assert send(deployment.storage, target, tampered) == 400  # the store checks the SHA-256
    with pytest.raises(UploadIncomplete):
        service.complete(session.session_id, ALICE)
    assert deployment.catalog.list_files("demo-pkg") == []


def test_a_wrong_sha256_is_rejected_and_nothing_published(
    deployment: Deployment, tmp_path: Path
) -> None:
    service = deployment.service()
    data = big_wheel(tmp_path)
    session = create(service, data, sha256=sha(data + b"other"))  # declared digest is wrong
    upload_all(service, session, data)
    with pytest.raises(InvalidInput, match="sha256 digest"):
        service.complete(session.session_id, ALICE)
    assert deployment.catalog.list_files("big-pkg") == []
    assert deployment.storage.head(file_key("big-pkg", BIG)) is None
    assert deployment.staged() == []  # the bytes were removed
    failed = service.get(session.session_id, ALICE)
    assert (failed.status, failed.error_status) == ("error", 400)
    with pytest.raises(InvalidInput, match="sha256 digest"):  # asking again: same answer
        service.complete(session.session_id, ALICE)


def test_a_broken_archive_is_rejected(deployment: Deployment) -> None:
    service = deployment.service()
    data = b"PK\x03\x04 but not really a zip file" * 100
    session = create(service, data)
    upload_all(service, session, data)
    with pytest.raises(InvalidInput, match="not a valid zip"):
        service.complete(session.session_id, ALICE)
    assert deployment.catalog.list_files("big-pkg") == []
    assert deployment.storage.head(file_key("big-pkg", BIG)) is None


def test_a_file_published_meanwhile_is_a_conflict(deployment: Deployment, tmp_path: Path) -> None:
    service = deployment.service()
    data = big_wheel(tmp_path, seed=1)
    session = create(service, data)
    upload_all(service, session, data)
    other = big_wheel(tmp_path, seed=2)
    service.publisher.upload(
        name="Big-Pkg", version="1.0", filename=BIG, data=other, digests={}, uploader="bob"
    )
    with pytest.raises(Conflict, match="already exists"):
        service.complete(session.session_id, ALICE)
    assert service.get(session.session_id, ALICE).error_status == 409
    assert deployment.storage.read(file_key("big-pkg", BIG)) == other
    assert deployment.catalog.get_file("big-pkg", BIG).sha256 == sha(other)  # type: ignore[union-attr]


@pytest.mark.parametrize("round_", range(2))
def test_session_and_legacy_upload_race_for_one_file(
    deployment: Deployment, tmp_path: Path, round_: int
) -> None:
    service = deployment.service()
    version = f"1.{round_}"
    filename = f"big_pkg-{version}-py3-none-any.whl"
    staged = big_wheel(tmp_path, size_mib=6, seed=10 + round_, version=version)
    direct = big_wheel(tmp_path, size_mib=1, seed=20 + round_, version=version)
    session = create(service, staged, filename=filename, version=version)
    upload_all(service, session, staged)

    results = run_concurrently(
        [
            lambda: service.complete(session.session_id, ALICE),
            lambda: service.publisher.upload(
                name="Big-Pkg",
                version=version,
                filename=filename,
                data=direct,
                digests={},
                uploader="bob",
            ),
        ]
    )
    successes = [r for r in results if not isinstance(r, Exception)]
    assert len(successes) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception)), results
    record = deployment.catalog.get_file("big-pkg", filename)
    assert record is not None
    winner = staged if record.sha256 == sha(staged) else direct
    assert deployment.storage.read(file_key("big-pkg", filename)) == winner


# --- who, when, cancel --------------------------------------------------------------------


def test_sessions_belong_to_their_uploader(deployment: Deployment) -> None:
    service = deployment.service()
    session = create(service, b"x" * 100)
    with pytest.raises(NotFound):
        service.get(session.session_id, BOB)
    with pytest.raises(NotFound):
        service.complete(session.session_id, BOB)
    with pytest.raises(NotFound):
        service.cancel(session.session_id, Identity())
    assert service.get(session.session_id, ADMIN).session_id == session.session_id


def test_sessions_expire(deployment: Deployment) -> None:
    service = deployment.service(upload_session_ttl="60")
    session = create(service, b"x" * 100)
    deployment.clock.now += 61
    with pytest.raises(NotFound):
        service.get(session.session_id, ALICE)


def test_cancel_removes_the_bytes(deployment: Deployment, tmp_path: Path) -> None:
    service = deployment.service()
    data = big_wheel(tmp_path)
    session = create(service, data)
    upload_all(service, session, data, order=[1])
    assert service.cancel(session.session_id, ALICE).status == "canceled"
    with pytest.raises(Conflict):
        service.complete(session.session_id, ALICE)
    with pytest.raises(Conflict):
        service.targets(service.get(session.session_id, ALICE))
    with pytest.raises(NotFound):
        deployment.storage.list_parts(session.staging_key, session.multipart_id or "")
    assert deployment.catalog.list_files("big-pkg") == []


def test_a_stalled_completion_is_taken_over_after_its_lease(deployment: Deployment) -> None:
    service = deployment.service(upload_completion_lease="30")
    _, data, session = create_demo(service)
    upload_all(service, session, data)
    # A completer took the session and died (its Lambda timed out, say).
    deployment.sessions.update(
        replace(session, status="processing", lease_until=deployment.clock.now + 30)
    )
    assert service.complete(session.session_id, ALICE).status == "processing"
    with pytest.raises(Conflict):
        service.cancel(session.session_id, ALICE)
    deployment.clock.now += 31
    assert service.complete(session.session_id, ALICE).status == "published"


def test_part_targets_are_bounded(deployment: Deployment, tmp_path: Path) -> None:
    service = deployment.service()
    data = big_wheel(tmp_path)
    session = create(service, data)
    assert [n for n, _ in service.targets(session)] == [1, 2, 3]
    assert [n for n, _ in service.targets(session, [3, 3, 2])] == [2, 3]
    for wrong in ([0], [4], [1, 99]):
        with pytest.raises(InvalidInput):
            service.targets(session, wrong)


# --- reading in place -----------------------------------------------------------------------


def test_metadata_comes_from_a_few_ranged_reads(deployment: Deployment, tmp_path: Path) -> None:
    data = big_wheel(tmp_path, size_mib=20)
    deployment.storage.put("uploads/x/big.whl", data)
    reader = RangedReader(deployment.storage, "uploads/x/big.whl", len(data))
    with zipfile.ZipFile(reader) as zf:
        assert b"Name: Big-Pkg" in zf.read("big_pkg-1.0.dist-info/METADATA")
    assert reader.requests <= 3  # the end (directory) and the METADATA member
    assert stream_sha256(
        deployment.storage, "uploads/x/big.whl", len(data), chunk=3 * MIB, parallel=3
    ) == sha(data)
    with pytest.raises(ValueError):
        stream_sha256(deployment.storage, "uploads/x/big.whl", len(data) + 1, chunk=MIB)


def test_ranged_reader_is_a_seekable_file(deployment: Deployment) -> None:
    data = bytes(range(256)) * 1000
    deployment.storage.put("uploads/y/file", data)
    reader = RangedReader(deployment.storage, "uploads/y/file", len(data), block=1000, blocks=2)
    assert reader.read(10) == data[:10]
    reader.seek(-5, io.SEEK_END)
    assert reader.read() == data[-5:]
    reader.seek(2500)
    assert reader.read(2000) == data[2500:4500]
    assert reader.tell() == 4500
    reader.seek(100, io.SEEK_CUR)
    assert reader.read(1) == data[4600:4601]


def test_objects_the_store_cannot_checksum_are_read_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Past S3's 5 GiB copy limit (lowered here) completion streams the SHA-256 itself."""
    from stratus.adapters.s3_storage import S3Storage

    if isinstance(deployment.storage, S3Storage):
        deployment.storage.single_copy_limit = MIB
        deployment.storage.copy_part_size = 5 * MIB
    service = deployment.service()
    data = big_wheel(tmp_path)
    reads: list[tuple[int, int]] = []
    real_read = deployment.storage.read_range

    def counting(key: str, start: int, length: int) -> bytes:
        reads.append((start, length))
        return real_read(key, start, length)

    deployment.storage.read_range = counting  # type: ignore[method-assign]
    bad = create(service, data, sha256=sha(data + b"?"))
    upload_all(service, bad, data)
    with pytest.raises(InvalidInput, match="sha256 digest"):
        service.complete(bad.session_id, ALICE)
    assert sum(length for start, length in reads if start == 0 or length > MIB) >= len(data)

    good = create(service, data)
    upload_all(service, good, data)
    assert service.complete(good.session_id, ALICE).status == "published"
    assert deployment.storage.read(file_key("big-pkg", BIG)) == data


def test_local_mode_sweeps_abandoned_uploads(tmp_path: Path) -> None:
    import os
    import time

    from stratus.adapters.local_storage import LocalStorage
    from stratus.adapters.sqlite_catalog import SqliteCatalog
    from stratus.adapters.sqlite_upload_sessions import SqliteUploadSessions

    clock = Clock()
    clock.now = time.time()
    local = Deployment(
        "local",
        SqliteCatalog(tmp_path / "index.sqlite3"),
        LocalStorage(tmp_path / "files"),
        SqliteUploadSessions(tmp_path / "uploads.sqlite3"),
        clock,
    )
    service = local.service()
    data = big_wheel(tmp_path)
    old = create(service, data)
    upload_all(service, old, data, order=[1])  # abandoned after one part
    abandoned = create_demo(service)
    upload_all(service, abandoned[2], abandoned[1])  # abandoned before completion
    long_ago = clock.now - 3 * 24 * 3600
    for path in (tmp_path / "files").rglob("*"):
        os.utime(path, (long_ago, long_ago))
    fresh = create(local.service(), b"x" * 100)  # a new service: its first sweep
    assert local.staged() == []
    assert not any((tmp_path / "files" / ".stratus-multipart").iterdir())
    assert service.get(fresh.session_id, ALICE).status == "pending"


# --- the publish path of a legacy upload: lease, order, description, rollback ------------------


def test_a_staged_upload_stores_its_description(deployment: Deployment) -> None:
    from stratus.app.descriptions import read_description

    service = deployment.service()
    filename, data = wheel_bytes("Demo-Pkg", "2.0", description="# Big news\n\nIt *works*.")
    session = create(
        service, data, filename=filename, name="Demo-Pkg", version="2.0", sha256=sha(data)
    )
    upload_all(service, session, data)
    assert service.complete(session.session_id, ALICE).status == "published"
    record = deployment.catalog.get_file("demo-pkg", filename)
    assert record is not None
    html = read_description(deployment.storage, record)
    assert html is not None and "works" in html


def test_a_staged_upload_waits_for_no_lease_held_by_another_writer(
    deployment: Deployment,
) -> None:
    service = deployment.service()
    filename, data, session = create_demo(service)
    upload_all(service, session, data)
    key = file_key("demo-pkg", filename)
    assert deployment.catalog.acquire_lease(key, "another-writer", 60)
    with pytest.raises(Conflict, match="in progress"):
        service.complete(session.session_id, ALICE)
    assert deployment.catalog.get_file("demo-pkg", filename) is None
    if is_in_place(session):  # still pending (not indexed): left to the lifecycle rule
        assert deployment.storage.upload_pending(key)
    else:
        assert deployment.storage.head(key) is None


def test_a_staged_upload_that_cannot_commit_is_rolled_back(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratus.domain.keys import description_key

    service = deployment.service()
    filename, data = wheel_bytes("Demo-Pkg", "2.0", description="Some *words*.")
    session = create(
        service, data, filename=filename, name="Demo-Pkg", version="2.0", sha256=sha(data)
    )
    upload_all(service, session, data)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the catalog is down")

    monkeypatch.setattr(deployment.catalog, "add_file", broken)
    with pytest.raises(RuntimeError):
        service.complete(session.session_id, ALICE)
    for key in (metadata_key("demo-pkg", filename), description_key("demo-pkg", filename)):
        assert deployment.storage.head(key) is None, key
    key = file_key("demo-pkg", filename)
    if is_in_place(session):
        # Unmarked before the entry failed: a checked orphan (reconcile would index it),
        # never deleted once unmarked, never a listed file still pending.
        assert deployment.storage.read(key) == data
        assert not deployment.storage.upload_pending(key)
    else:
        assert deployment.storage.head(key) is None
    monkeypatch.undo()
    # the staged bytes stayed: the session is completed by a retry
    assert service.get(session.session_id, ALICE).status == "pending"
    assert service.complete(session.session_id, ALICE).status == "published"


# --- completion in the background (files above upload_async_complete_bytes) ---------------


class QueuedCompletions:
    """A runner that only records what it was asked to run (the test plays the worker)."""

    def __init__(self, fail: bool = False) -> None:
        self.queued: list[tuple[str, int]] = []
        self.fail = fail

    def start(self, service: UploadSessionService, session_id: str, revision: int) -> None:
        if self.fail:
            raise ConnectionError("the queue is unreachable")
        self.queued.append((session_id, revision))


def background(deployment: Deployment, runner: QueuedCompletions) -> UploadSessionService:
    service = deployment.service(upload_async_complete_bytes=str(MIB))
    service.completions = runner
    return service


def uploaded(deployment: Deployment, tmp_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    """(runner, service, bytes, session): an 11 MiB wheel sent, to complete in the background."""
    runner = QueuedCompletions(fail=bool(kw.pop("fail", False)))
    service = background(deployment, runner)
    data = big_wheel(tmp_path)
    session = create(service, data, **kw)
    upload_all(service, session, data)
    return runner, service, data, session


def test_a_large_file_completes_in_the_background(deployment: Deployment, tmp_path: Path) -> None:
    runner, service, data, session = uploaded(deployment, tmp_path)
    queued = service.complete(session.session_id, ALICE)
    assert queued.status == "processing"  # answered at once: nothing checked yet
    assert runner.queued == [(session.session_id, queued.revision)]
    assert deployment.catalog.list_files("big-pkg") == []
    # Completing again (the client polls) queues nothing more while the lease runs.
    assert service.complete(session.session_id, ALICE).status == "processing"
    assert len(runner.queued) == 1
    with pytest.raises(Conflict):
        service.cancel(session.session_id, ALICE)

    done = service.finish_queued(*runner.queued[0])
    assert done is not None and done.status == "published"
    assert deployment.catalog.get_file("big-pkg", BIG).sha256 == sha(data)  # type: ignore[union-attr]
    assert deployment.staged() == []
    # A duplicate delivery of the message changes nothing.
    assert service.finish_queued(*runner.queued[0]).status == "published"  # type: ignore[union-attr]
    assert service.complete(session.session_id, ALICE).status == "published"


def test_a_small_file_still_completes_in_the_request(deployment: Deployment) -> None:
    runner = QueuedCompletions()
    service = background(deployment, runner)
    _, data, session = create_demo(service)
    assert len(data) < MIB
    upload_all(service, session, data)
    assert service.complete(session.session_id, ALICE).status == "published"
    assert runner.queued == []


def test_a_wrong_sha256_in_the_background_is_recorded_and_nothing_published(
    deployment: Deployment, tmp_path: Path
) -> None:
    data = big_wheel(tmp_path)
    runner, service, _, session = uploaded(deployment, tmp_path, sha256=sha(data + b"other"))
    assert service.complete(session.session_id, ALICE).status == "processing"
    failed = service.finish_queued(*runner.queued[0])  # recorded, not raised
    assert failed is not None
    assert (failed.status, failed.error_status) == ("error", 400)
    assert "sha256 digest" in (failed.message or "")
    assert deployment.catalog.list_files("big-pkg") == []
    assert deployment.storage.head(file_key("big-pkg", BIG)) is None
    assert deployment.staged() == []
    with pytest.raises(InvalidInput, match="sha256 digest"):  # completing again: same answer
        service.complete(session.session_id, ALICE)


def test_missing_parts_found_in_the_background_leave_the_session_pending(
    deployment: Deployment, tmp_path: Path
) -> None:
    runner = QueuedCompletions()
    service = background(deployment, runner)
    data = big_wheel(tmp_path)
    session = create(service, data)
    upload_all(service, session, data, order=[1, 3])
    service.complete(session.session_id, ALICE)
    left = service.finish_queued(*runner.queued[0])
    assert left is not None and left.status == "pending"
    assert left.message == "Parts missing: 2 (of 3)."
    upload_all(service, service.get(session.session_id, ALICE), data, order=[2])
    service.complete(session.session_id, ALICE)
    assert service.finish_queued(*runner.queued[1]).status == "published"  # type: ignore[union-attr]


def test_a_dead_worker_leaves_the_session_to_the_next(
    deployment: Deployment, tmp_path: Path
) -> None:
    runner = QueuedCompletions()
    service = background(deployment, runner)
    lease = service.settings.upload_async_completion_lease
    data = big_wheel(tmp_path)
    session = create(service, data)
    upload_all(service, session, data)
    service.complete(session.session_id, ALICE)
    session_id, revision = runner.queued[0]
    # A worker took the message (claimed the session) and died: its Lambda timed out.
    taken = deployment.sessions.get(session_id)
    assert taken is not None
    deployment.sessions.update(replace(taken, lease_until=deployment.clock.now + lease))
    # The same message delivered twice while that worker holds it: left alone.
    assert service.finish_queued(session_id, revision).status == "processing"  # type: ignore[union-attr]
    assert deployment.catalog.list_files("big-pkg") == []
    # Redelivered once the queue's visibility timeout (>= the lease) has passed: taken over.
    deployment.clock.now += lease + 1
    assert service.finish_queued(session_id, revision).status == "published"  # type: ignore[union-attr]


def test_a_lost_message_is_queued_again_by_the_next_complete(
    deployment: Deployment, tmp_path: Path
) -> None:
    runner, service, _, session = uploaded(deployment, tmp_path)
    service.complete(session.session_id, ALICE)
    # The message went to the dead-letter queue; the lease runs out; the client completes again.
    deployment.clock.now += service.settings.upload_async_completion_lease + 1
    again = service.complete(session.session_id, ALICE)
    assert again.status == "processing" and len(runner.queued) == 2
    assert service.finish_queued(*runner.queued[0]) is not None  # the stale one: no harm
    assert service.finish_queued(*runner.queued[1]).status == "published"  # type: ignore[union-attr]


def test_a_queue_that_cannot_be_reached_leaves_the_session_pending(
    deployment: Deployment, tmp_path: Path
) -> None:
    _, service, _, session = uploaded(deployment, tmp_path, fail=True)
    with pytest.raises(ConnectionError):
        service.complete(session.session_id, ALICE)
    assert service.get(session.session_id, ALICE).status == "pending"


def test_a_background_completion_races_a_legacy_upload(
    deployment: Deployment, tmp_path: Path
) -> None:
    runner = QueuedCompletions()
    service = background(deployment, runner)
    staged = big_wheel(tmp_path, size_mib=6, seed=30)
    direct = big_wheel(tmp_path, size_mib=1, seed=31)
    session = create(service, staged)
    upload_all(service, session, staged)
    service.complete(session.session_id, ALICE)
    results = run_concurrently(
        [
            lambda: service.finish_queued(*runner.queued[0]),
            lambda: service.publisher.upload(
                name="Big-Pkg", version="1.0", filename=BIG, data=direct, digests={}, uploader="bob"
            ),
        ]
    )
    left = service.get(session.session_id, ALICE)
    legacy_won = not isinstance(results[1], Exception)
    assert legacy_won == (left.status == "error"), (results, left)
    if legacy_won:
        assert left.error_status == 409
    else:
        assert left.status == "published" and isinstance(results[1], Conflict)
    record = deployment.catalog.get_file("big-pkg", BIG)
    assert record is not None
    winner = direct if legacy_won else staged
    assert record.sha256 == sha(winner)
    assert deployment.storage.read(file_key("big-pkg", BIG)) == winner


def test_files_over_5_gib_go_in_parts_whatever_the_threshold(deployment: Deployment) -> None:
    service = deployment.service(upload_multipart_threshold=str(10 * 1024**3))
    session = create(service, b"", size=6 * 1024**3, sha256="a" * 64)
    assert session.multipart_id and session.part_size == 5 * MIB  # not one 6 GB PUT
    assert not create(service, b"", size=5 * 1024**3, sha256="b" * 64).multipart_id


class Died(BaseException):
    """The completer's process went away (a Lambda timeout, say)."""


def die_after_publishing(service: UploadSessionService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The completer publishes the file, then dies before it records that in the session."""
    real = service._settle

    def settle(session, **changes):  # type: ignore[no-untyped-def]
        if changes.get("status") == "published":
            monkeypatch.setattr(service, "_settle", real)  # once
            raise Died
        return real(session, **changes)

    monkeypatch.setattr(service, "_settle", settle)


def test_a_completer_that_died_after_publishing_is_published_on_retry(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = deployment.service(upload_completion_lease="30")
    filename, data, session = create_demo(service)
    upload_all(service, session, data)
    die_after_publishing(service, monkeypatch)
    with pytest.raises(Died):
        service.complete(session.session_id, ALICE)
    assert deployment.catalog.get_file("demo-pkg", filename) is not None  # published
    assert service.get(session.session_id, ALICE).status == "processing"  # unrecorded
    deployment.clock.now += 31  # its lease runs out; the client completes again
    assert service.complete(session.session_id, ALICE).status == "published"  # not a 409


def test_a_worker_that_died_after_publishing_is_published_on_redelivery(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, service, data, session = uploaded(deployment, tmp_path)
    service.complete(session.session_id, ALICE)
    die_after_publishing(service, monkeypatch)
    with pytest.raises(Died):
        service.finish_queued(*runner.queued[0])
    assert deployment.catalog.get_file("big-pkg", BIG).sha256 == sha(data)  # type: ignore[union-attr]
    deployment.clock.now += service.settings.upload_async_completion_lease + 1
    redelivered = service.finish_queued(*runner.queued[0])
    assert redelivered is not None and redelivered.status == "published"
    assert deployment.staged() == []


@pytest.mark.parametrize("in_background", [False, True])
def test_the_completion_workers_service_keeps_the_origin_controls(
    tmp_path: Path, in_background: bool
) -> None:
    """``session_service`` without the API's publisher (the completion worker's) refuses a
    name whose origin controls block publishing, as the API's does. The refusal is final:
    the session ends as an error with a 403 (not left pending for a retry that would be
    refused again), whether completed in the request or by the background worker."""
    from stratus.adapters.config_access import ConfigAccess
    from stratus.adapters.local_storage import LocalStorage
    from stratus.adapters.sqlite_catalog import SqliteCatalog
    from stratus.adapters.sqlite_origins import SqliteOrigins
    from stratus.adapters.sqlite_page_cache import SqlitePageCache
    from stratus.adapters.sqlite_upload_sessions import SqliteUploadSessions
    from stratus.app.upload_sessions import session_service
    from stratus.domain.errors import PermissionDenied
    from stratus.domain.origins import BLOCK, OriginControls
    from stratus.wiring import Services, build_fallback

    services = Services(
        SqliteCatalog(tmp_path / "index.sqlite3"),
        LocalStorage(tmp_path / "files"),
        ConfigAccess.from_options({}),
        Settings.from_mapping({"upload_async_complete_bytes": "1"} if in_background else {}),
        upload_sessions=SqliteUploadSessions(tmp_path / "uploads.sqlite3"),
    )
    services.fallback = build_fallback(
        services,
        page_cache=SqlitePageCache(tmp_path / "upstream.sqlite3", mirror="m"),
        origin_store=SqliteOrigins(tmp_path / "index.sqlite3"),
    )
    services.fallback.origins.set_controls("demo-pkg", OriginControls(publish=BLOCK))
    service = session_service(services)
    assert service is not None
    runner = QueuedCompletions()
    if in_background:
        service.completions = runner
    filename, data, session = create_demo(service)
    upload_all(service, session, data)
    if in_background:
        assert service.complete(session.session_id, ALICE).status == "processing"
        service.finish_queued(*runner.queued[0])  # recorded, not raised
    else:
        with pytest.raises(PermissionDenied, match="origin controls"):
            service.complete(session.session_id, ALICE)
    assert services.catalog.get_file("demo-pkg", filename) is None
    ended = service.get(session.session_id, ALICE)
    assert (ended.status, ended.error_status) == ("error", 403)
    with pytest.raises(PermissionDenied, match="origin controls"):  # the same answer again
        service.complete(session.session_id, ALICE)
