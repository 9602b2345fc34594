"""One-PUT upload sessions on S3 publish in place: the client PUTs straight to
``packages/<project>/<file>`` (tagged ``stratus-upload=pending``, with the session's
marker), the completion checks the object there and removes the tag instead of copying.

Real S3 semantics on the moto server (conditional PUT, checksum, tags) and DynamoDB
Local: what the staging prefix guaranteed still holds (nothing unchecked is indexed,
nothing lost, abandoned bytes cleaned, one winner against a concurrent upload)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stratus.app.publish import Publisher
from stratus.app.reconcile import reconcile
from stratus.app.sync import PENDING, Outcome, S3Change, apply_change
from stratus.app.upload_sessions import UploadSessionService, is_in_place
from stratus.domain.errors import Conflict, InvalidInput
from stratus.domain.keys import file_key, metadata_key
from stratus.domain.models import Identity
from stratus.settings import Settings
from tests.support.distributions import wheel_bytes, write_wheel_with_payload
from tests.support.memory import heap_peak
from tests.support.upload_targets import send

MIB = 1024 * 1024
ALICE = Identity("alice")
BOB = Identity("bob")
FILENAME = "demo_pkg-2.0-py3-none-any.whl"
KEY = file_key("demo-pkg", FILENAME)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class AwsDeployment:
    def __init__(self, table: str, bucket: str) -> None:
        from stratus.adapters.dynamo_catalog import DynamoCatalog
        from stratus.adapters.dynamo_upload_sessions import DynamoUploadSessions
        from stratus.adapters.s3_storage import S3Storage

        self.catalog = DynamoCatalog(table)
        self.storage = S3Storage(bucket)
        self.sessions = DynamoUploadSessions(table)
        self.bucket = bucket

    def service(self, **settings: object) -> UploadSessionService:
        parsed = Settings.from_mapping({"upload_multipart_threshold": 8 * MIB} | settings)
        publisher = Publisher(self.catalog, self.storage, allow_overwrite=parsed.allow_overwrite)
        return UploadSessionService(self.sessions, self.storage, self.catalog, publisher, parsed)

    def tags(self, key: str) -> dict[str, str]:
        found = self.storage.client.get_object_tagging(Bucket=self.bucket, Key=key)["TagSet"]
        return {t["Key"]: t["Value"] for t in found}

    def created(self, key: str, sequencer: str = "0A") -> S3Change:
        return S3Change("ObjectCreated:Put", self.bucket, key, sequencer)


@pytest.fixture
def aws(dynamo_table: str, s3_bucket: str) -> AwsDeployment:
    return AwsDeployment(dynamo_table, s3_bucket)


def demo(**kw: object) -> bytes:
    filename, data = wheel_bytes("Demo-Pkg", "2.0", **kw)  # type: ignore[arg-type]
    assert filename == FILENAME
    return data


def create(service: UploadSessionService, data: bytes, who: str = "alice"):  # type: ignore[no-untyped-def]
    return service.create(
        uploader=who,
        name="Demo-Pkg",
        version="2.0",
        filename=FILENAME,
        size=len(data),
        sha256=sha(data),
    )


def put(service: UploadSessionService, session, data: bytes) -> int:  # type: ignore[no-untyped-def]
    [(number, target)] = service.targets(session)
    assert number == 0
    return send(service.storage, target, data)


# --- the path ----------------------------------------------------------------------------


def test_the_put_lands_at_the_final_key_pending_and_completion_only_untags(
    aws: AwsDeployment,
) -> None:
    service = aws.service()
    data = demo(requires_python=">=3.10")
    session = create(service, data)
    assert is_in_place(session) and session.staging_key == KEY
    [(_, target)] = service.targets(session)
    assert target.headers["x-amz-tagging"] == "stratus-upload=pending"
    assert target.headers["x-amz-meta-stratus-session"] == session.session_id
    assert send(aws.storage, target, data) == 200

    info = aws.storage.head(KEY)
    assert info is not None and info.sha256 == sha(data)
    assert aws.tags(KEY) == {"stratus-upload": "pending"}
    assert aws.storage.upload_pending(KEY)
    assert aws.catalog.get_file("demo-pkg", FILENAME) is None
    before = info.last_modified

    assert service.complete(session.session_id, ALICE).status == "published"
    assert aws.tags(KEY) == {}
    after = aws.storage.head(KEY)
    assert after is not None and after.last_modified == before  # no copy: the PUT's object
    assert list(aws.storage.list("uploads/")) == []
    record = aws.catalog.get_file("demo-pkg", FILENAME)
    assert record is not None
    assert (record.sha256, record.uploader, record.requires_python) == (
        sha(data),
        "alice",
        ">=3.10",
    )
    assert record.upload_time >= before  # the completion's time, not the PUT's
    assert aws.storage.read(metadata_key("demo-pkg", FILENAME)).startswith(b"Metadata-Version")
    # The copy-less object does not look changed to reconcile; nothing to repair.
    report = reconcile(aws.catalog, aws.storage)
    assert report.repairs == 0 and report.skipped == {}


def test_overwrite_allowed_or_an_occupied_key_stages_instead(aws: AwsDeployment) -> None:
    data = demo()
    assert not is_in_place(create(aws.service(allow_overwrite="true"), data))
    # An abandoned session's pending object holds the key: the next session stages, and
    # its publication's copy replaces the leftover.
    service = aws.service()
    abandoned = create(service, data)
    assert put(service, abandoned, data) == 200
    other = demo(summary="again")
    session = create(service, other, who="bob")
    assert not is_in_place(session) and session.staging_key.startswith("uploads/")
    assert put(service, session, other) == 200
    assert service.complete(session.session_id, BOB).status == "published"
    assert aws.storage.read(KEY) == other
    assert not aws.storage.upload_pending(KEY)
    assert aws.catalog.get_file("demo-pkg", FILENAME).sha256 == sha(other)  # type: ignore[union-attr]


# --- sync and reconcile leave pending objects alone ---------------------------------------


def test_sync_skips_a_pending_object_and_then_finds_the_sessions_entry(
    aws: AwsDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    service = aws.service()
    data = demo()
    session = create(service, data)
    assert put(service, session, data) == 200
    with caplog.at_level("INFO", logger="stratus.app.sync"):
        assert apply_change(aws.catalog, aws.storage, aws.created(KEY)) == Outcome.SKIPPED
    assert PENDING in caplog.text
    assert aws.catalog.get_file("demo-pkg", FILENAME) is None

    assert service.complete(session.session_id, ALICE).status == "published"
    published = aws.catalog.get_file("demo-pkg", FILENAME)
    # The event delivered again (at least once) after completion: same bytes, no change.
    assert apply_change(aws.catalog, aws.storage, aws.created(KEY, "0B")) == Outcome.UNCHANGED
    record = aws.catalog.get_file("demo-pkg", FILENAME)
    assert record is not None and published is not None
    assert (record.sha256, record.uploader) == (published.sha256, "alice")


def test_reconcile_leaves_a_pending_object_alone_and_indexes_an_unmarked_orphan(
    aws: AwsDeployment,
) -> None:
    service = aws.service()
    data = demo()
    session = create(service, data)
    assert put(service, session, data) == 200
    report = reconcile(aws.catalog, aws.storage)
    assert report.skipped == {KEY: PENDING} and report.repairs == 0
    assert aws.storage.upload_pending(KEY)  # nothing removed either
    assert aws.catalog.get_file("demo-pkg", FILENAME) is None

    # A completion that stopped after removing the tag (before the entry): an orphan,
    # checked already, which reconcile indexes from its bytes and provenance.
    aws.storage.clear_upload_pending(KEY)
    report = reconcile(aws.catalog, aws.storage)
    assert report.added == [KEY]
    record = aws.catalog.get_file("demo-pkg", FILENAME)
    assert record is not None
    assert (record.sha256, record.uploader, record.upload_time) == (
        sha(data),
        "alice",
        session.created,
    )
    # The session completed again afterwards: it finds its own file published.
    assert service.complete(session.session_id, ALICE).status == "published"


def test_a_large_in_place_object_is_reindexed_with_ranged_reads(
    aws: AwsDeployment, tmp_path: Path
) -> None:
    """Rebuilding from an empty catalog: the object carries only provenance, so it is
    described from its bytes; 50 MiB are not read into memory (S3 gave the SHA-256)."""
    service = aws.service(upload_multipart_threshold=str(64 * MIB))
    path = write_wheel_with_payload(tmp_path, "Demo-Pkg", "2.0", 50 * MIB, seed=3)
    data = path.read_bytes()
    session = create(service, data)
    assert is_in_place(session)
    assert put(service, session, data) == 200
    aws.storage.clear_upload_pending(KEY)  # as a completion that stopped before its entry
    del data
    report, peak = heap_peak(lambda: reconcile(aws.catalog, aws.storage))
    assert report.added == [KEY]
    assert peak < 20 * MIB, peak  # read whole, the file alone would take 50 MiB
    record = aws.catalog.get_file("demo-pkg", FILENAME)
    assert record is not None and record.sha256 == session.sha256


def test_a_missing_metadata_file_of_a_large_file_is_rewritten_with_ranged_reads(
    aws: AwsDeployment, tmp_path: Path
) -> None:
    """Reconcile writes a lost PEP 658 file again from the distribution, as sync describes
    large objects: with ranged reads (the catalog gives the size and SHA-256), never
    reading 50 MiB into memory."""
    path = write_wheel_with_payload(tmp_path, "Demo-Pkg", "2.0", 50 * MIB, seed=4)
    data = path.read_bytes()
    publisher = Publisher(aws.catalog, aws.storage, allow_overwrite=False)
    publisher.upload(
        name="Demo-Pkg", version="2.0", filename=FILENAME, data=data, digests={}, uploader="a"
    )
    del data
    meta_key = metadata_key("demo-pkg", FILENAME)
    core_metadata = aws.storage.read(meta_key)
    aws.storage.delete(meta_key)
    report, peak = heap_peak(lambda: reconcile(aws.catalog, aws.storage))
    assert report.metadata_written == [meta_key]
    assert aws.storage.read(meta_key) == core_metadata
    assert peak < 20 * MIB, peak  # read whole, the file alone would take 50 MiB


# --- refused bytes -------------------------------------------------------------------------


def test_a_wrong_sha256_is_refused_by_s3_and_nothing_lands(aws: AwsDeployment) -> None:
    service = aws.service()
    data = demo()
    session = create(service, data)
    assert put(service, session, b"X" + data[1:]) == 400
    assert aws.storage.head(KEY) is None
    with pytest.raises(InvalidInput, match="Nothing has been uploaded"):
        service.complete(session.session_id, ALICE)
    assert service.get(session.session_id, ALICE).status == "pending"


def test_bad_metadata_is_an_error_and_the_object_is_removed(aws: AwsDeployment) -> None:
    service = aws.service()
    data = demo(summary="ok")
    # The core metadata names another version than the filename: refused at completion.
    wrong = demo(metadata=b"Metadata-Version: 2.1\nName: Demo-Pkg\nVersion: 3.0\n")
    session = create(service, wrong)
    assert put(service, session, wrong) == 200
    with pytest.raises(InvalidInput):
        service.complete(session.session_id, ALICE)
    assert service.get(session.session_id, ALICE).error_status == 400
    assert aws.storage.head(KEY) is None
    assert aws.catalog.get_file("demo-pkg", FILENAME) is None
    # The key is free again for a good upload.
    session = create(service, data)
    assert is_in_place(session) and put(service, session, data) == 200
    assert service.complete(session.session_id, ALICE).status == "published"


def test_a_zip_bomb_put_in_place_is_refused_and_removed(aws: AwsDeployment) -> None:
    """The completion reads the METADATA of the object where it lies (ranged reads): one
    that inflates far past the cap while its header claims 200 bytes is refused as the
    legacy upload refuses it, and nothing stays."""
    import zipfile

    from tests.support.hostile import zip_bomb_wheel

    filename, bomb = zip_bomb_wheel("demo-pkg", "2.0", zipfile.ZIP_DEFLATED)
    assert filename == FILENAME
    service = aws.service()
    session = create(service, bomb)
    assert is_in_place(session) and put(service, session, bomb) == 200
    with pytest.raises(InvalidInput, match="METADATA is larger than"):
        service.complete(session.session_id, ALICE)
    assert aws.storage.head(KEY) is None
    assert aws.catalog.get_file("demo-pkg", FILENAME) is None


def test_cancel_removes_the_pending_object(aws: AwsDeployment) -> None:
    service = aws.service()
    data = demo()
    session = create(service, data)
    assert put(service, session, data) == 200
    assert service.cancel(session.session_id, ALICE).status == "canceled"
    assert aws.storage.head(KEY) is None


# --- concurrency ----------------------------------------------------------------------------


def test_two_sessions_for_one_file_the_second_put_is_refused(aws: AwsDeployment) -> None:
    service = aws.service()
    first_bytes, second_bytes = demo(summary="first"), demo(summary="second")
    first = create(service, first_bytes)
    second = create(service, second_bytes, who="bob")
    assert is_in_place(first) and is_in_place(second)
    assert put(service, first, first_bytes) == 200
    assert put(service, second, second_bytes) == 412  # If-None-Match: the key is taken
    with pytest.raises(Conflict, match="already exists"):
        service.complete(second.session_id, BOB)
    assert service.get(second.session_id, BOB).error_status == 409
    # The failed session removed nothing of the first's.
    assert aws.storage.read(KEY) == first_bytes and aws.storage.upload_pending(KEY)
    assert service.complete(first.session_id, ALICE).status == "published"
    assert aws.catalog.get_file("demo-pkg", FILENAME).sha256 == sha(first_bytes)  # type: ignore[union-attr]


def test_the_same_session_sent_again_after_an_interruption_completes(aws: AwsDeployment) -> None:
    service = aws.service()
    data = demo()
    session = create(service, data)
    assert put(service, session, data) == 200
    assert put(service, session, data) == 412  # the answer was lost; the client sends again
    assert service.complete(session.session_id, ALICE).status == "published"


@pytest.mark.parametrize("same_bytes", [False, True])
def test_a_twine_upload_after_the_put_wins_and_stays(aws: AwsDeployment, same_bytes: bool) -> None:
    service = aws.service()
    data = demo(summary="session")
    twine = data if same_bytes else demo(summary="twine")
    session = create(service, data)
    assert put(service, session, data) == 200
    service.publisher.upload(
        name="Demo-Pkg", version="2.0", filename=FILENAME, data=twine, digests={}, uploader="bob"
    )
    with pytest.raises(Conflict, match="already exists"):
        service.complete(session.session_id, ALICE)
    assert aws.storage.read(KEY) == twine
    info = aws.storage.head(KEY)
    assert info is not None and info.metadata["stratus-uploader"] == "bob"
    record = aws.catalog.get_file("demo-pkg", FILENAME)
    assert record is not None and (record.sha256, record.uploader) == (sha(twine), "bob")
    assert apply_change(aws.catalog, aws.storage, aws.created(KEY)) == Outcome.UNCHANGED


def test_a_twine_upload_first_means_no_session(aws: AwsDeployment) -> None:
    service = aws.service()
    data = demo()
    service.publisher.upload(
        name="Demo-Pkg", version="2.0", filename=FILENAME, data=data, digests={}, uploader="bob"
    )
    with pytest.raises(Conflict, match="already exists"):
        create(service, data)


def test_a_replaced_object_is_never_published_or_removed_by_the_session(
    aws: AwsDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object replaced between the check and the publication (a twine upload that
    stopped after storing its bytes): the session's write step finds it is not its own."""
    service = aws.service()
    data = demo(summary="session")
    other = demo(summary="other")
    session = create(service, data)
    assert put(service, session, data) == 200
    publish = service.publisher.publish_in_place

    def replaced_first(described, *, ours):  # type: ignore[no-untyped-def]
        aws.storage.put(KEY, other, metadata={"stratus-uploader": "bob"})
        return publish(described, ours=ours)

    monkeypatch.setattr(service.publisher, "publish_in_place", replaced_first)
    with pytest.raises(Conflict, match="already exists"):
        service.complete(session.session_id, ALICE)
    assert aws.storage.read(KEY) == other
    assert aws.catalog.get_file("demo-pkg", FILENAME) is None


def test_the_provenance_metadata_is_the_records_encoding() -> None:
    from stratus.domain.models import FileRecord
    from stratus.domain.objectmeta import provenance, provenance_metadata, to_object_metadata

    record = FileRecord(
        project="p",
        filename="p-1.tar.gz",
        version="1",
        sha256="0" * 64,
        size=1,
        upload_time=1.5,
        uploader="zoë o'brien",
    )
    encoded = provenance_metadata("zoë o'brien", 1.5)
    full = to_object_metadata(record)
    assert encoded == {k: full[k] for k in encoded}
    assert provenance(encoded) == ("zoë o'brien", 1.5)
    assert json.dumps(encoded).isascii()
