"""Contract of the Storage port, run against every adapter: local files and S3 (moto server).

The S3 adapter talks to moto over real HTTP (``tests/support/moto_server.py``), and its
presigned download URLs are fetched over HTTP too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from stratus.adapters.local_storage import LocalStorage
from stratus.adapters.s3_storage import S3Storage, content_disposition
from stratus.domain.errors import BackendUnavailable, Conflict, NotFound
from stratus.ports import Storage

KEY = "packages/demo/demo-1.0.tar.gz"
META = {"stratus-sha256": "ab12", "stratus-project": "demo"}


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    s3 = S3Storage(request.getfixturevalue("s3_bucket"), presign_expiry=120)
    s3._page_size = 2  # every listing below spans several ListObjectsV2 pages
    return s3


def keys_of(storage: Storage, prefix: str = "") -> list[str]:
    return [info.key for info in storage.list(prefix)]


# --- basic operations ----------------------------------------------------------------------


def test_implements_the_port(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_put_read_head_delete_round_trip(storage: Storage) -> None:
    data = b"\x00binary\xffpayload" * 100
    before = time.time()
    storage.put(KEY, data, metadata=META, content_type="application/x-tar")

    assert storage.read(KEY) == data
    info = storage.head(KEY)
    assert info is not None
    assert info.key == KEY
    assert info.size == len(data)
    assert info.metadata == META
    assert before - 5 <= info.last_modified <= time.time() + 5

    storage.delete(KEY)
    assert storage.head(KEY) is None
    with pytest.raises(NotFound):
        storage.read(KEY)
    storage.delete(KEY)  # absent: no error


def test_missing_object(storage: Storage) -> None:
    with pytest.raises(NotFound):
        storage.read("packages/nope/nope-1.0.tar.gz")
    assert storage.head("packages/nope/nope-1.0.tar.gz") is None
    storage.delete("packages/nope/nope-1.0.tar.gz")


def test_empty_object_and_no_metadata(storage: Storage) -> None:
    storage.put("packages/demo/empty", b"")
    assert storage.read("packages/demo/empty") == b""
    info = storage.head("packages/demo/empty")
    assert info is not None
    assert (info.size, info.metadata) == (0, {})


def test_unicode_key(storage: Storage) -> None:
    key = "packages/déjà vu/ünïcode file+1.0.tar.gz"
    storage.put(key, b"u")
    assert storage.read(key) == b"u"
    assert keys_of(storage, "packages/déjà") == [key]


def test_metadata_names_are_lower_cased(storage: Storage) -> None:
    storage.put(KEY, b"x", metadata={"Stratus-SHA256": "ab12"})
    info = storage.head(KEY)
    assert info is not None
    assert info.metadata == {"stratus-sha256": "ab12"}


@pytest.mark.parametrize(
    "metadata",
    [{"stratus-name": "déjà"}, {"bad name": "x"}, {"stratus-x": "line\nbreak"}, {"a": "x" * 2048}],
)
def test_metadata_s3_would_refuse_is_refused(storage: Storage, metadata: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        storage.put(KEY, b"x", metadata=metadata)
    assert storage.head(KEY) is None


# --- conditional and unconditional writes --------------------------------------------------


def test_if_absent_conflict_keeps_the_first_object(storage: Storage) -> None:
    storage.put(KEY, b"first", metadata={"writer": "1"}, if_absent=True)
    with pytest.raises(Conflict):
        storage.put(KEY, b"second", metadata={"writer": "2"}, if_absent=True)
    assert storage.read(KEY) == b"first"
    info = storage.head(KEY)
    assert info is not None
    assert info.metadata == {"writer": "1"}


def test_if_absent_after_delete_succeeds(storage: Storage) -> None:
    storage.put(KEY, b"first", if_absent=True)
    storage.delete(KEY)
    storage.put(KEY, b"again", if_absent=True)
    assert storage.read(KEY) == b"again"


def test_overwrite_without_if_absent(storage: Storage) -> None:
    storage.put(KEY, b"old bytes", metadata={"writer": "old", "extra": "1"})
    storage.put(KEY, b"new", metadata={"writer": "new"})
    assert storage.read(KEY) == b"new"
    info = storage.head(KEY)
    assert info is not None
    assert (info.size, info.metadata) == (3, {"writer": "new"})


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_if_absent_has_exactly_one_winner(storage: Storage, round_: int) -> None:
    writers = 8
    key = f"packages/race/race-{round_}.whl"
    payloads = [bytes([i]) * (64 * 1024 + i) for i in range(writers)]
    barrier = threading.Barrier(writers)
    winners: list[int] = []
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            storage.put(key, payloads[i], metadata={"writer": str(i)}, if_absent=True)
            winners.append(i)
        except Conflict:
            conflicts.append(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(winners) == 1, winners
    assert len(conflicts) == writers - 1
    (winner,) = winners
    assert storage.read(key) == payloads[winner]
    info = storage.head(key)
    assert info is not None
    assert (info.size, info.metadata) == (len(payloads[winner]), {"writer": str(winner)})


# --- put_file ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 11 * 1024 * 1024 + 7])  # the last: S3 multipart
def test_put_file_round_trip(storage: Storage, tmp_path: Path, size: int) -> None:
    source = tmp_path / "source.whl"
    source.write_bytes(os.urandom(size))
    storage.put_file(KEY, source, metadata=META, content_type="application/zip")
    assert storage.read(KEY) == source.read_bytes()
    info = storage.head(KEY)
    assert info is not None and (info.size, info.metadata) == (size, META)
    assert source.exists()  # the caller's file is left alone


@pytest.mark.parametrize("size", [1000, 9 * 1024 * 1024])
def test_put_file_if_absent_conflict_keeps_the_first(
    storage: Storage, tmp_path: Path, size: int
) -> None:
    storage.put(KEY, b"first", metadata={"writer": "1"}, if_absent=True)
    source = tmp_path / "second.whl"
    source.write_bytes(b"2" * size)
    with pytest.raises(Conflict):
        storage.put_file(KEY, source, metadata={"writer": "2"}, if_absent=True)
    assert storage.read(KEY) == b"first"
    if isinstance(storage, S3Storage):  # the refused multipart upload was aborted
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []


# --- listing -------------------------------------------------------------------------------


def test_list_with_prefix(storage: Storage) -> None:
    keys = [
        "packages/a/a-1.0.tar.gz",
        "packages/a/a-1.0.tar.gz.metadata",
        "packages/a/a-2.0-py3-none-any.whl",
        "packages/ab/ab-1.0.tar.gz",
        "packages/b/b-1.0.tar.gz",
        "other/x",
    ]
    for i, key in enumerate(keys):
        storage.put(key, b"x" * i, metadata={"n": str(i)})

    assert keys_of(storage) == sorted(keys)
    assert keys_of(storage, "packages/") == sorted(keys[:5])
    assert keys_of(storage, "packages/a") == sorted(keys[:4])
    assert keys_of(storage, "packages/a/") == keys[:3]
    assert keys_of(storage, "packages/zzz/") == []
    assert keys_of(storage, "nothing") == []
    infos = {info.key: info for info in storage.list("packages/")}
    assert infos["packages/a/a-2.0-py3-none-any.whl"].size == 2
    assert all(info.metadata == {} for info in infos.values())  # listing does not HEAD
    assert all(info.last_modified > 0 for info in infos.values())


def test_list_starts_after_a_key(storage: Storage) -> None:
    keys = [
        "packages/a-b/a_b-1.0.tar.gz",
        "packages/a/a-1.0.tar.gz",
        "packages/a/a-2.0.tar.gz",
        "packages/a0/a0-1.0.tar.gz",
        "packages/b/b-1.0.tar.gz",
    ]
    for key in keys:
        storage.put(key, b"x")
    listed = [i.key for i in storage.list("packages/", start_after="packages/a/a-1.0.tar.gz")]
    assert listed == keys[2:]
    # reconcile's resume key: past every key of project "a", before project "a0"
    listed = [i.key for i in storage.list("packages/", start_after="packages/a0")]
    assert listed == keys[3:]
    assert list(storage.list("packages/", start_after="packages/zzz")) == []


def test_list_spans_pages(storage: Storage) -> None:
    keys = [f"packages/many/many-{i}.0.tar.gz" for i in range(7)]
    for key in keys:
        storage.put(key, b"x")
    calls: list[str] = []
    if isinstance(storage, S3Storage):
        storage.client.meta.events.register(
            "after-call.s3.ListObjectsV2", lambda **kwargs: calls.append("page")
        )
    assert keys_of(storage, "packages/many/") == sorted(keys)
    if isinstance(storage, S3Storage):
        assert len(calls) == 4  # 7 keys, 2 per page


# --- downloads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "filename"),
    [
        (KEY, "demo-1.0.tar.gz"),
        ("packages/déjà/déjà-1.0.tar.gz", "déjà-1.0.tar.gz"),
        ("packages/demo/demo-1.0.tar.gz.metadata", "demo-1.0.tar.gz.metadata"),
    ],
)
def test_download(storage: Storage, key: str, filename: str) -> None:
    data = b"the distribution bytes" * 50
    storage.put(key, data)
    target = storage.download(key, filename)
    if isinstance(storage, S3Storage):
        assert target.path is None and target.url is not None
        parts = urlsplit(target.url)
        assert parts.netloc.startswith("127.0.0.1:")  # path style against the emulator
        query = parse_qs(parts.query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Expires"] == ["120"]
        response = httpx.get(target.url)
        assert response.status_code == 200, response.text
        assert response.content == data
        assert response.headers["content-disposition"] == content_disposition(filename)
    else:
        assert target.url is None and target.path is not None
        assert target.path.read_bytes() == data


def test_download_url_does_not_check_existence(storage: Storage) -> None:
    target = storage.download("packages/nope/nope-1.0.tar.gz", "nope-1.0.tar.gz")
    if isinstance(storage, S3Storage):
        assert target.url is not None
        # S3 answers 404, or 403 to a role without s3:ListBucket. moto 5.2.5 answers 403
        # SignatureDoesNotMatch: for a missing key it wants each ``content-…=`` query value
        # (its regex also matches ``response-content-disposition``) sent as a header.
        assert httpx.get(target.url).status_code in (403, 404)
    else:
        assert target.path is not None and not target.path.exists()


def test_content_disposition() -> None:
    assert content_disposition("demo-1.0.tar.gz") == 'attachment; filename="demo-1.0.tar.gz"'
    assert content_disposition('a"b.whl') == (
        "attachment; filename=\"a_b.whl\"; filename*=UTF-8''a%22b.whl"
    )
    assert content_disposition("déjà.whl") == (
        "attachment; filename=\"d_j_.whl\"; filename*=UTF-8''d%C3%A9j%C3%A0.whl"
    )


# --- health --------------------------------------------------------------------------------


def test_health(storage: Storage) -> None:
    storage.health()


def test_health_fails_for_a_missing_backend(storage: Storage, tmp_path: Path) -> None:
    if isinstance(storage, S3Storage):
        broken: Storage = S3Storage("stratus-no-such-bucket")
    else:
        broken = LocalStorage(tmp_path / "gone")
        (tmp_path / "gone").rmdir()
    with pytest.raises(BackendUnavailable):
        broken.health()


# --- S3 specifics --------------------------------------------------------------------------


def test_s3_objects_are_encrypted_and_typed(s3_bucket: str) -> None:
    storage = S3Storage(s3_bucket)
    storage.put(KEY, b"x", content_type="application/x-tar")
    response = storage.client.head_object(Bucket=s3_bucket, Key=KEY)
    assert response["ServerSideEncryption"] == "AES256"
    assert response["ContentType"] == "application/x-tar"


@pytest.mark.parametrize(
    ("status", "code"), [(412, "PreconditionFailed"), (409, "ConditionalRequestConflict")]
)
def test_s3_conditional_write_errors_are_conflicts(status: int, code: str) -> None:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    storage = S3Storage("bucket", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        with pytest.raises(Conflict):
            storage.put(KEY, b"x", if_absent=True)


def test_s3_module_does_not_import_boto3() -> None:
    code = (
        "import sys, stratus.adapters.s3_storage as m;"
        "m.S3Storage('bucket');"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- local specifics -----------------------------------------------------------------------


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "../../etc/passwd",
        "/abs/x",
        "/",
        "",
        "a/../../x",
        "a/../b",
        "./a",
        "a//b",
        "a/",
        "a\\..\\..\\x",
        "a\x00b",
        ".stratus-meta/x",
        "a/.stratus-lock",
        "a/.stratus-tmp-123",
    ],
)
def test_local_refuses_keys_outside_its_tree(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "files")
    before = tree(tmp_path)
    for call in (
        lambda: storage.put(key, b"evil"),
        lambda: storage.put(key, b"evil", if_absent=True),
        lambda: storage.read(key),
        lambda: storage.head(key),
        lambda: storage.delete(key),
        lambda: storage.download(key, "x"),
    ):
        with pytest.raises(ValueError):
            call()
    assert tree(tmp_path) == before


def test_local_refuses_symlinks_out_of_its_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage = LocalStorage(tmp_path / "files")
    (tmp_path / "files" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError):
        storage.put("link/x", b"evil")
    assert list(outside.iterdir()) == []


def test_local_leaves_no_temporary_files_and_lists_only_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    storage.put(KEY, b"one", metadata=META, if_absent=True)
    with pytest.raises(Conflict):
        storage.put(KEY, b"two", if_absent=True)
    storage.put(KEY, b"three")
    storage.health()
    leftovers = [p for p in (tmp_path / "files").rglob(".stratus-tmp-*")]
    assert leftovers == []
    assert keys_of(storage) == [KEY]
    assert (tmp_path / "files" / KEY).read_bytes() == b"three"


def test_local_ignores_a_sidecar_that_does_not_match_the_bytes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    storage.put(KEY, b"original", metadata=META)
    path = tmp_path / "files" / KEY
    path.write_bytes(b"replaced outside Stratus")  # as after a crash between two steps
    info = storage.head(KEY)
    assert info is not None
    assert (info.size, info.metadata) == (len(b"replaced outside Stratus"), {})


def test_local_metadata_survives_a_copy_that_keeps_mtimes(tmp_path: Path) -> None:
    import shutil

    storage = LocalStorage(tmp_path / "files")
    storage.put(KEY, b"bytes", metadata=META)
    shutil.copytree(tmp_path / "files", tmp_path / "restored")  # copy2: keeps mtimes
    info = LocalStorage(tmp_path / "restored").head(KEY)
    assert info is not None
    assert info.metadata == META


def test_local_conflict_with_a_file_created_outside_stratus(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    path = tmp_path / "files" / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(b"dropped in by hand")
    with pytest.raises(Conflict):
        storage.put(KEY, b"mine", metadata=META, if_absent=True)
    assert path.read_bytes() == b"dropped in by hand"
    info = storage.head(KEY)
    assert info is not None and info.metadata == {}


def test_local_object_and_folder_of_one_name_cannot_coexist(tmp_path: Path) -> None:
    # S3 allows keys "a" and "a/b" together; a file system does not: refused, not mangled.
    storage = LocalStorage(tmp_path / "files")
    storage.put("a", b"file")
    with pytest.raises(ValueError):
        storage.put("a/b", b"nested")
    storage.put("c/d", b"nested")
    with pytest.raises(ValueError):
        storage.put("c", b"file")
    assert keys_of(storage) == ["a", "c/d"]


def test_local_creates_its_root(tmp_path: Path) -> None:
    LocalStorage(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    assert os.access(tmp_path / "a" / "b", os.W_OK)
