"""Contract of the Storage port's transfer methods (upload sessions), on every adapter.

Upload targets are exercised as a client uses them: S3's presigned URLs over HTTP
against the moto server; the local store's through ``open_upload`` with the URL's
token, which is what the web layer's upload route does with a request's body.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest

from stratus.adapters.local_storage import LocalStorage
from stratus.adapters.s3_storage import S3Storage
from stratus.domain.errors import Conflict, InvalidInput, NotFound
from stratus.ports import LOCAL_UPLOAD_PATH, Storage, UploadTarget
from tests.contract.test_storage import storage  # noqa: F401 - the adapters fixture
from tests.support.concurrency import run_concurrently
from tests.support.upload_targets import send

MIB = 1024 * 1024
KEY = "uploads/s1/demo-1.0-py3-none-any.whl"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- ranged reads ------------------------------------------------------------------------


def test_read_range(storage: Storage) -> None:  # noqa: F811
    data = bytes(range(256)) * 40
    storage.put(KEY, data)
    assert storage.read_range(KEY, 0, 10) == data[:10]
    assert storage.read_range(KEY, 1000, 500) == data[1000:1500]
    assert storage.read_range(KEY, len(data) - 5, 100) == data[-5:]
    assert storage.read_range(KEY, len(data), 10) == b""
    assert storage.read_range(KEY, 3, 0) == b""
    with pytest.raises(NotFound):
        storage.read_range("uploads/none/x.whl", 0, 10)


# --- one-time whole-object targets -------------------------------------------------------


def test_presigned_put_stores_the_bytes_once_with_their_sha256(storage: Storage) -> None:  # noqa: F811
    data = b"wheel bytes " * 5000
    target = storage.presign_put(KEY, size=len(data), sha256=sha(data), expires=300)
    assert storage.head(KEY) is None  # presigning stores nothing

    assert send(storage, target, data) == 200
    assert storage.read(KEY) == data
    info = storage.head(KEY)
    assert info is not None
    assert (info.size, info.sha256) == (len(data), sha(data))

    # The target writes once: a second request (other bytes, same digest claim) is refused.
    assert send(storage, target, data) in (409, 412)
    assert storage.read(KEY) == data


def test_presigned_put_refuses_other_bytes(storage: Storage) -> None:  # noqa: F811
    data = b"the real bytes" * 1000
    target = storage.presign_put(KEY, size=len(data), sha256=sha(data), expires=300)
    tampered = b"X" + data[1:]
    assert send(storage, target, tampered) == 400
    assert storage.head(KEY) is None
    assert send(storage, target, data) == 200  # the refusal left nothing behind


def test_presigned_put_signs_what_it_asks_for() -> None:
    target = S3Storage("bucket").presign_put(KEY, size=10, sha256="ab" * 32, expires=60)
    signed = httpx.URL(target.url).params["X-Amz-SignedHeaders"].split(";")
    assert {"content-length", "if-none-match", "x-amz-checksum-sha256"} <= set(signed)
    assert target.headers["If-None-Match"] == "*"


def test_an_in_place_target_signs_its_tag_and_metadata() -> None:
    target = S3Storage("bucket").presign_put(
        KEY, size=10, sha256="ab" * 32, expires=60, metadata={"stratus-session": "s1"}, pending=True
    )
    signed = httpx.URL(target.url).params["X-Amz-SignedHeaders"].split(";")
    assert {"x-amz-tagging", "x-amz-meta-stratus-session", "if-none-match"} <= set(signed)
    assert target.headers["x-amz-tagging"] == "stratus-upload=pending"
    assert target.headers["x-amz-meta-stratus-session"] == "s1"
    # Every signed header the client must send is in the target's headers.
    sent = {name.lower() for name in target.headers} | {"host", "content-length"}
    assert set(signed) <= sent
    assert httpx.URL(target.url).params["X-Amz-Expires"] == "60"


def test_presigned_put_stores_its_metadata(storage: Storage) -> None:  # noqa: F811
    data = b"in place " * 100
    meta = {"stratus-uploader": "alice", "stratus-session": "s1"}
    target = storage.presign_put(KEY, size=len(data), sha256=sha(data), expires=300, metadata=meta)
    assert send(storage, target, data) == 200
    info = storage.head(KEY)
    assert info is not None and info.metadata == meta
    assert not storage.upload_pending(KEY)  # not asked for


def test_in_place_uploads_are_marked_pending_until_cleared(storage: Storage) -> None:  # noqa: F811
    key = "packages/demo/demo-1.0-py3-none-any.whl"
    data = b"pending " * 100
    assert not storage.upload_pending(key)  # absent
    with pytest.raises(NotFound):
        storage.clear_upload_pending(key)
    if not storage.supports_in_place_uploads:
        with pytest.raises(ValueError):
            storage.presign_put(key, size=len(data), sha256=sha(data), expires=300, pending=True)
        storage.put(key, data)
        assert not storage.upload_pending(key)
        storage.clear_upload_pending(key)  # nothing to clear
        return
    target = storage.presign_put(key, size=len(data), sha256=sha(data), expires=300, pending=True)
    assert send(storage, target, data) == 200
    assert storage.upload_pending(key)
    before = storage.head(key)
    storage.clear_upload_pending(key)
    assert not storage.upload_pending(key)
    after = storage.head(key)
    assert before is not None and after is not None
    assert (after.sha256, after.last_modified) == (before.sha256, before.last_modified)
    storage.clear_upload_pending(key)  # again: nothing to clear
    # A pending object replaced by a plain write is not pending any more.
    again = storage.presign_put(key, size=len(data), sha256=sha(data), expires=300, pending=True)
    storage.delete(key)
    assert send(storage, again, data) == 200 and storage.upload_pending(key)
    storage.put(key, b"replaced")
    assert not storage.upload_pending(key)


def test_objects_written_otherwise_report_no_sha256(storage: Storage) -> None:  # noqa: F811
    storage.put(KEY, b"plain put")
    info = storage.head(KEY)
    assert info is not None and info.sha256 is None


# --- multipart uploads -------------------------------------------------------------------


def parts_of(data: bytes, part_size: int) -> list[bytes]:
    return [data[i : i + part_size] for i in range(0, len(data), part_size)]


def test_multipart_upload_round_trip(storage: Storage) -> None:  # noqa: F811
    data = bytes(range(251)) * (44 * 1024)  # ~10.8 MiB: two 5 MiB parts and a short one
    chunks = parts_of(data, 5 * MIB)
    upload_id = storage.create_multipart(KEY)
    assert storage.list_parts(KEY, upload_id) == []
    # Parts arrive in any order; a part sent twice keeps its last bytes.
    for number in (3, 1, 2):
        chunk = chunks[number - 1]
        target = storage.presign_part(KEY, upload_id, number, size=len(chunk), expires=300)
        assert send(storage, target, chunk) == 200
    target = storage.presign_part(KEY, upload_id, 2, size=len(chunks[1]), expires=300)
    assert send(storage, target, chunks[1]) == 200

    parts = storage.list_parts(KEY, upload_id)
    assert [(p.number, p.size) for p in parts] == [(i + 1, len(c)) for i, c in enumerate(chunks)]
    assert storage.head(KEY) is None  # nothing is visible before completion

    storage.complete_multipart(KEY, upload_id, parts)
    assert storage.read(KEY) == data
    info = storage.head(KEY)
    assert info is not None and info.size == len(data)
    assert info.sha256 is None  # no whole-object checksum for a multipart object
    with pytest.raises(NotFound):
        storage.list_parts(KEY, upload_id)


def test_multipart_completion_is_refused_when_the_key_exists(storage: Storage) -> None:  # noqa: F811
    storage.put(KEY, b"already here")
    upload_id = storage.create_multipart(KEY)
    chunk = b"p" * 1000
    target = storage.presign_part(KEY, upload_id, 1, size=len(chunk), expires=300)
    assert send(storage, target, chunk) == 200
    with pytest.raises(Conflict):
        storage.complete_multipart(KEY, upload_id, storage.list_parts(KEY, upload_id))
    assert storage.read(KEY) == b"already here"
    storage.abort_multipart(KEY, upload_id)


def test_multipart_completion_needs_the_listed_parts(storage: Storage) -> None:  # noqa: F811
    upload_id = storage.create_multipart(KEY)
    chunk = b"q" * 1000
    target = storage.presign_part(KEY, upload_id, 1, size=len(chunk), expires=300)
    assert send(storage, target, chunk) == 200
    (listed,) = storage.list_parts(KEY, upload_id)
    assert send(storage, target, b"r" * 1000) == 200  # changed since it was listed
    with pytest.raises(ValueError):
        storage.complete_multipart(KEY, upload_id, [listed])
    assert storage.head(KEY) is None
    storage.complete_multipart(KEY, upload_id, storage.list_parts(KEY, upload_id))
    assert storage.read(KEY) == b"r" * 1000


def test_abort_drops_the_upload(storage: Storage) -> None:  # noqa: F811
    upload_id = storage.create_multipart(KEY)
    chunk = b"z" * 100
    target = storage.presign_part(KEY, upload_id, 1, size=len(chunk), expires=300)
    assert send(storage, target, chunk) == 200
    storage.abort_multipart(KEY, upload_id)
    with pytest.raises(NotFound):
        storage.list_parts(KEY, upload_id)
    storage.abort_multipart(KEY, upload_id)  # unknown by now: no error
    assert storage.head(KEY) is None


def test_unknown_upload(storage: Storage) -> None:  # noqa: F811
    with pytest.raises(NotFound):
        storage.list_parts(KEY, "nosuchupload")


# --- copies ------------------------------------------------------------------------------


DEST = "packages/demo/demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize("parts", [False, True])
def test_copy_replaces_metadata_and_honours_if_absent(storage: Storage, parts: bool) -> None:  # noqa: F811
    if isinstance(storage, S3Storage) and parts:  # a multipart copy of several parts
        storage.single_copy_limit = 0
        storage.copy_part_size = 5 * MIB
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB
    storage.put(KEY, data, metadata={"old": "1"})
    storage.copy(KEY, DEST, metadata={"stratus-sha256": sha(data)}, if_absent=True)
    assert storage.read(DEST) == data
    info = storage.head(DEST)
    assert info is not None
    assert (info.size, info.metadata) == (len(data), {"stratus-sha256": sha(data)})

    with pytest.raises(Conflict):
        storage.copy(KEY, DEST, metadata={"x": "2"}, if_absent=True)
    assert storage.head(DEST).metadata == {"stratus-sha256": sha(data)}  # type: ignore[union-attr]

    storage.put(KEY, b"new source")
    storage.copy(KEY, DEST, metadata={"x": "3"})  # not if_absent: replaces
    assert storage.read(DEST) == b"new source"
    storage.delete(KEY)
    assert storage.read(DEST) == b"new source"  # the copy is independent of its source


def test_copy_of_a_missing_object(storage: Storage) -> None:  # noqa: F811
    with pytest.raises(NotFound):
        storage.copy("uploads/none/x.whl", DEST, if_absent=True)
    assert storage.head(DEST) is None
    if isinstance(storage, S3Storage):  # and no multipart upload left behind
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []


@pytest.mark.parametrize("round_", range(4))
def test_copy_and_put_race_for_one_key(storage: Storage, round_: int) -> None:  # noqa: F811
    if isinstance(storage, S3Storage) and round_ % 2:  # the multipart copy races too
        storage.single_copy_limit = 0
    storage.put(KEY, b"staged bytes", metadata={"writer": "copy"})
    dest = f"packages/race/race-{round_}.whl"
    results = run_concurrently(
        [
            lambda: storage.copy(KEY, dest, metadata={"writer": "copy"}, if_absent=True),
            lambda: storage.put(dest, b"direct bytes", metadata={"writer": "put"}, if_absent=True),
            lambda: storage.copy(KEY, dest, metadata={"writer": "copy"}, if_absent=True),
        ]
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception)), results
    info = storage.head(dest)
    assert info is not None
    expected = b"staged bytes" if info.metadata == {"writer": "copy"} else b"direct bytes"
    assert storage.read(dest) == expected


# --- local specifics ---------------------------------------------------------------------


def local_token(target: UploadTarget) -> str:
    return target.url[len(LOCAL_UPLOAD_PATH) :]


def test_local_tokens_are_signed_and_expire(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "files")
    target = store.presign_put(KEY, size=3, sha256=sha(b"abc"), expires=300)
    token = local_token(target)
    payload, _, mac = token.partition(".")
    for forged in (f"{payload}.{mac[:-2]}AA", f"{payload[:-2]}AA.{mac}", "x.y", "", "nodot"):
        with pytest.raises(NotFound):
            store.open_upload(forged)
    expired = local_token(store.presign_put(KEY, size=3, sha256=sha(b"abc"), expires=-1))
    with pytest.raises(NotFound):
        store.open_upload(expired)
    # Another store (another key file) does not accept this one's tokens.
    with pytest.raises(NotFound):
        LocalStorage(tmp_path / "other").open_upload(token)
    # The key survives a restart: a new instance on the same folder accepts the token.
    sink = LocalStorage(tmp_path / "files").open_upload(token)
    sink.write(b"abc")
    sink.commit()
    assert store.read(KEY) == b"abc"
    assert (tmp_path / "files" / ".stratus-upload-key").stat().st_mode & 0o777 == 0o600


def test_local_sink_enforces_the_size(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "files")
    target = store.presign_put(KEY, size=3, sha256="0" * 64, expires=9)
    sink = store.open_upload(local_token(target))
    with pytest.raises(InvalidInput):
        sink.write(b"abcd")
    sink.abort()
    target = store.presign_put(KEY, size=3, sha256=sha(b"ab"), expires=9)
    sink = store.open_upload(local_token(target))
    sink.write(b"ab")
    with pytest.raises(InvalidInput):
        sink.commit()
    assert store.head(KEY) is None
    assert not list((tmp_path / "files").rglob(".stratus-tmp-*"))


def test_local_part_targets_die_with_their_upload(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "files")
    upload_id = store.create_multipart(KEY)
    target = store.presign_part(KEY, upload_id, 1, size=2, expires=300)
    store.abort_multipart(KEY, upload_id)
    with pytest.raises(NotFound):
        store.open_upload(local_token(target))
    assert [i.key for i in store.list()] == []  # multipart folders are never listed


def test_local_upload_url_expiry_is_a_timestamp(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "files")
    before = int(time.time())
    import base64
    import json

    payload = local_token(store.presign_put(KEY, size=1, sha256="0" * 64, expires=120))
    payload = payload.partition(".")[0]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert before + 120 <= claims["e"] <= int(time.time()) + 120


# --- store-side checksums ------------------------------------------------------------------


def test_checksum_of_a_joined_multipart_object(storage: Storage) -> None:  # noqa: F811
    data = bytes(range(251)) * (24 * 1024)  # ~5.9 MiB: a 5 MiB part and a short one
    upload_id = storage.create_multipart(KEY)
    for number, start in ((1, 0), (2, 5 * MIB)):
        chunk = data[start : start + 5 * MIB]
        target = storage.presign_part(KEY, upload_id, number, size=len(chunk), expires=300)
        assert send(storage, target, chunk) == 200
    storage.complete_multipart(KEY, upload_id, storage.list_parts(KEY, upload_id))
    found = storage.checksum_sha256(KEY)
    if isinstance(storage, S3Storage):
        assert found == sha(data)  # computed by S3, not by reading the object here
        assert storage.read(KEY) == data  # the in-place copy kept the bytes
        assert storage.head(KEY).sha256 == sha(data)  # type: ignore[union-attr]
        storage.single_copy_limit = 1024  # past CopyObject's limit: S3 cannot say
        storage.put("uploads/s2/big.whl", data)
        assert storage.checksum_sha256("uploads/s2/big.whl") is None
    else:
        assert found is None  # local: the caller reads the file
    with pytest.raises(NotFound):
        storage.checksum_sha256("uploads/none/x.whl")


def test_checksum_of_a_checked_upload_is_the_checked_one(storage: Storage) -> None:  # noqa: F811
    data = b"checked" * 1000
    target = storage.presign_put(KEY, size=len(data), sha256=sha(data), expires=60)
    assert send(storage, target, data) == 200
    assert storage.checksum_sha256(KEY) == sha(data)
