"""Storage port on a local folder (``stratus serve``).

Layout: the object ``a/b/name`` is the file ``<root>/a/b/name``, so the tree can be
browsed, backed up and served as is. Next to it, in the same folder:

- ``.stratus-meta/name``: a JSON sidecar with the user metadata, the content type and the
  data file's size and mtime (in ns). ``head`` trusts a sidecar only when they match the
  data file, so a sidecar left by a crash is never attributed to other bytes.
- ``.stratus-tmp-<random>``: files being written; never listed. They exist only while
  their writer holds the folder's lock, so the next writer of the folder removes any it
  finds (left by a process that was killed mid-write).
- ``.stratus-recv-<random>``: bytes an upload target is receiving (see below).
- ``.stratus-lock``: the folder's write lock (``flock``; a process-wide lock where
  ``fcntl`` does not exist).

Upload targets (upload sessions) are URLs of the app itself, ``LOCAL_UPLOAD_PATH`` +
a token: the target (key, upload id and part, exact size, SHA-256, expiry) as JSON,
signed with HMAC-SHA256 under ``.stratus-upload-key`` (random, made on first use, kept
across restarts so outstanding targets survive one). The web layer hands the bytes of
such a request to ``open_upload``. Like S3: a whole-object target writes its key once
and only with the SHA-256 it names (``head`` then reports it); the parts of a multipart
upload live in ``.stratus-multipart/<upload id>/`` until ``complete_multipart`` joins them.

Key components starting with ``.stratus`` are reserved for these; keys that are empty,
absolute, contain ``..``, ``.``, empty components, backslashes or NUL, or that resolve
outside the root are refused with ``ValueError`` before anything is written.

Writes: the bytes go to a temporary file in the destination folder (fsynced), the sidecar
is written (temporary file, then ``os.replace``), then the data is published in one step:
``os.link`` for ``if_absent`` (it fails when the name exists, so of concurrent writers
exactly one wins, even against a writer outside Stratus) and ``os.replace`` otherwise.
Readers never see a partial file. Writers of one folder hold its lock, so a sidecar is
always the one of the published bytes; ``head`` takes the lock shared, so it never pairs
old bytes with new metadata.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from ..domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from ..domain.keys import UPLOAD_PREFIX
from ..ports import LOCAL_UPLOAD_PATH, Download, ObjectInfo, PartInfo, UploadTarget
from .s3_storage import check_user_metadata

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RESERVED_PREFIX = ".stratus"
META_DIR = ".stratus-meta"
TMP_PREFIX = ".stratus-tmp-"
# Bytes an upload target is receiving: written without the folder's lock (for as long as
# the client sends), so not a TMP_PREFIX file, which the folder's next writer removes.
# One left by a killed process goes with its session's folder (``sweep_staged``).
RECEIVE_PREFIX = ".stratus-recv-"
LOCK_NAME = ".stratus-lock"
UPLOAD_KEY_NAME = ".stratus-upload-key"
MULTIPART_DIR = ".stratus-multipart"
COPY_CHUNK = 1024 * 1024

_process_lock = threading.RLock()  # stands in for flock where fcntl is missing


def _fsync_write(path: Path, data: bytes) -> os.stat_result:
    """Create ``path`` (must not exist), write ``data``, fsync; return its stat."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def _fsync_copy(path: Path, source: Path) -> os.stat_result:
    """Create ``path`` (must not exist) with the bytes of ``source``, 1 MB at a time; fsync."""
    with open(source, "rb") as src, open(path, "xb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
        dst.flush()
        os.fsync(dst.fileno())
        return os.fstat(dst.fileno())


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


_HEALTH_PROBE = f"{TMP_PREFIX}health-"


def _sweep_temporaries(folder: Path) -> None:
    """Remove the temporary files of dead writers (call with the folder's lock held)."""
    for directory in (folder, folder / META_DIR):
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith(TMP_PREFIX) and not name.startswith(_HEALTH_PROBE):
                _unlink(directory / name)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


class LocalStorage:
    """Objects as files under ``root`` (created if missing)."""

    supports_in_place_uploads = False  # upload sessions stage their bytes (``uploads/``)

    def __init__(self, root: Path | str, *, upload_path: str = LOCAL_UPLOAD_PATH) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.upload_path = upload_path
        self._upload_key: bytes | None = None

    # --- keys and paths -------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file of ``key``; ``ValueError`` unless it lies strictly inside the root."""
        if not isinstance(key, str) or not key or "\x00" in key or "\\" in key:
            raise ValueError(f"invalid storage key {key!r}")
        parts = key.split("/")
        if key.startswith("/") or any(
            part in ("", ".", "..") or part.startswith(RESERVED_PREFIX) for part in parts
        ):
            raise ValueError(f"invalid storage key {key!r}")
        path = self.root.joinpath(*parts)
        resolved = path.resolve()  # also catches drive letters and symlinks out of the tree
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise ValueError(f"storage key {key!r} leads outside {self.root}")
        return path

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.parent / META_DIR / path.name

    @contextlib.contextmanager
    def _locked(self, folder: Path, *, exclusive: bool) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows: one process only
            with _process_lock:
                yield
            return
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- Storage port ---------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        self._store(
            key,
            lambda tmp: _fsync_write(tmp, bytes(data)),
            metadata=check_user_metadata(metadata),
            content_type=content_type,
            if_absent=if_absent,
        )

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        self._store(
            key,
            lambda tmp: _fsync_copy(tmp, Path(path)),
            metadata=check_user_metadata(metadata),
            content_type=content_type,
            if_absent=if_absent,
        )

    def _folder_of(self, key: str) -> Path:
        """The file of ``key``, its folder (and sidecar folder) created."""
        path = self._path(key)
        try:
            (path.parent / META_DIR).mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"storage key {key!r}: a parent is an object, not a folder") from None
        if path.is_dir():
            raise ValueError(f"storage key {key!r} names a folder of other objects")
        return path

    def _store(
        self,
        key: str,
        fill: Callable[[Path], os.stat_result],
        *,
        metadata: dict[str, str],
        content_type: str,
        if_absent: bool,
        sha256: str | None = None,
    ) -> None:
        """Publish the file ``fill(tmp)`` creates (next to the key) as ``key``, whole."""
        path = self._folder_of(key)
        folder = path.parent
        tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        with self._locked(folder, exclusive=True):
            _sweep_temporaries(folder)
            try:
                if if_absent and os.path.lexists(path):
                    raise Conflict(f"Object {key!r} already exists.")
                st = fill(tmp)
                if metadata or sha256:
                    self._write_sidecar(path, st, metadata, content_type, sha256)
                else:  # no metadata to keep (core metadata files): spare the second write
                    _unlink(self._sidecar(path))
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        # Created outside Stratus since the check: its sidecar (ours) is wrong.
                        _unlink(self._sidecar(path))
                        raise Conflict(f"Object {key!r} already exists.") from None
                else:
                    os.replace(tmp, path)
            finally:
                _unlink(tmp)

    def _write_sidecar(
        self,
        path: Path,
        st: os.stat_result,
        metadata: dict[str, str],
        content_type: str,
        sha256: str | None = None,
    ) -> None:
        sidecar = self._sidecar(path)
        body: dict[str, object] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "content_type": content_type,
            "metadata": metadata,
        }
        if sha256:
            body["sha256"] = sha256
        tmp = sidecar.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            _fsync_write(tmp, json.dumps(body, sort_keys=True).encode())
            os.replace(tmp, sidecar)
        finally:
            _unlink(tmp)

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"No object {key!r}.") from None

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        with self._locked(path.parent, exclusive=False):
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            try:
                side = json.loads(self._sidecar(path).read_text())
            except (FileNotFoundError, ValueError):
                side = {}
        metadata: dict[str, str] = {}
        sha256 = None
        if side.get("size") == st.st_size and side.get("mtime_ns") == st.st_mtime_ns:
            metadata = dict(side.get("metadata") or {})
            sha256 = side.get("sha256") or None
        return ObjectInfo(
            key=key, size=st.st_size, metadata=metadata, last_modified=st.st_mtime, sha256=sha256
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not path.parent.is_dir() or path.is_dir():
            return
        with self._locked(path.parent, exclusive=True):
            _unlink(path)
            _unlink(self._sidecar(path))

    def download(self, key: str, filename: str) -> Download:
        return Download(path=self._path(key))

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key (as S3 lists them)."""
        folder = self.root
        head, _, _ = prefix.rpartition("/")
        if head:
            try:
                folder = self._path(head)
            except ValueError:
                return
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
            base = Path(dirpath)
            for name in filenames:
                if name.startswith(RESERVED_PREFIX):
                    continue
                path = base / name
                key = self._key(path)
                if not key.startswith(prefix) or (start_after is not None and key <= start_after):
                    continue
                try:
                    st = path.lstat()
                except FileNotFoundError:  # deleted meanwhile
                    continue
                if not stat.S_ISREG(st.st_mode):  # no symlinks, sockets, ...
                    continue
                found.append(ObjectInfo(key=key, size=st.st_size, last_modified=st.st_mtime))
        found.sort(key=lambda info: info.key.encode())
        yield from found

    # --- bytes that do not pass through the app ----------------------------------------

    def read_range(self, key: str, start: int, length: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                return fh.read(max(length, 0))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"No object {key!r}.") from None

    def copy(
        self,
        source: str,
        key: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> None:
        """A hard link: no bytes are copied, and later writes of ``source`` (always a new
        file, never in place) leave the copy alone."""
        src = self._path(source)
        meta = check_user_metadata(metadata)
        if not src.is_file():
            raise NotFound(f"No object {source!r}.")

        def link(tmp: Path) -> os.stat_result:
            try:
                os.link(src, tmp)
            except FileNotFoundError:
                raise NotFound(f"No object {source!r}.") from None
            return os.stat(tmp)

        self._store(key, link, metadata=meta, content_type=content_type, if_absent=if_absent)

    def checksum_sha256(self, key: str) -> str | None:
        """The one a checked upload recorded; otherwise None (the caller reads the file,
        which is what this store would do too)."""
        info = self.head(key)
        if info is None:
            raise NotFound(f"No object {key!r}.")
        return info.sha256

    def _signing_key(self) -> bytes:
        if self._upload_key is None:
            path = self.root / UPLOAD_KEY_NAME
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(os.urandom(32))
                    fh.flush()
                    os.fsync(fh.fileno())
            key = path.read_bytes()
            if len(key) != 32:
                raise BackendUnavailable(f"{path} is not a 32-byte key; delete it")
            self._upload_key = key
        return self._upload_key

    def _target(self, claims: dict[str, object], expires: int) -> UploadTarget:
        claims = {**claims, "e": int(time.time()) + expires}
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._signing_key(), payload.encode(), hashlib.sha256).digest()
        return UploadTarget(url=f"{self.upload_path}{payload}.{_b64(mac)}", method="PUT")

    def presign_put(
        self,
        key: str,
        *,
        size: int,
        sha256: str,
        expires: int,
        metadata: dict[str, str] | None = None,
        pending: bool = False,
    ) -> UploadTarget:
        if pending:
            raise ValueError("the local store has no in-place uploads (nothing marks them)")
        self._path(key)
        claims: dict[str, object] = {"k": key, "s": size, "h": sha256.lower()}
        if metadata:
            claims["m"] = check_user_metadata(metadata)
        return self._target(claims, expires)

    def upload_pending(self, key: str) -> bool:
        return False  # nothing is ever stored pending here

    def clear_upload_pending(self, key: str) -> None:
        if self.head(key) is None:
            raise NotFound(f"No object {key!r}.")

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        """The folder of an upload of ``key``; ``NotFound`` unless it exists for that key."""
        if not upload_id.isalnum():
            raise NotFound(f"No multipart upload {upload_id!r} of {key!r}.")
        folder = self.root / MULTIPART_DIR / upload_id
        try:
            owner = (folder / "key").read_text()
        except (FileNotFoundError, NotADirectoryError):
            owner = None
        if owner != key:
            raise NotFound(f"No multipart upload {upload_id!r} of {key!r}.")
        return folder

    def create_multipart(self, key: str) -> str:
        self._path(key)
        upload_id = uuid.uuid4().hex
        folder = self.root / MULTIPART_DIR / upload_id
        folder.mkdir(parents=True)
        (folder / "key").write_text(key)
        return upload_id

    def presign_part(
        self, key: str, upload_id: str, number: int, *, size: int, expires: int
    ) -> UploadTarget:
        self._path(key)
        return self._target({"k": key, "u": upload_id, "n": number, "s": size}, expires)

    def list_parts(self, key: str, upload_id: str) -> builtins.list[PartInfo]:
        folder = self._upload_dir(key, upload_id)
        parts = []
        for entry in os.scandir(folder):
            if entry.name.startswith("part-") and entry.name[5:].isdigit():
                st = entry.stat()
                parts.append(PartInfo(int(entry.name[5:]), st.st_size, _etag(st)))
        parts.sort(key=lambda part: part.number)
        return parts

    def complete_multipart(self, key: str, upload_id: str, parts: builtins.list[PartInfo]) -> None:
        folder = self._upload_dir(key, upload_id)
        files = []
        try:
            for part in parts:
                fh = open(folder / f"part-{part.number}", "rb")  # noqa: SIM115 - closed below
                files.append(fh)
                if _etag(os.fstat(fh.fileno())) != part.etag:
                    raise ValueError(f"part {part.number} of {key!r} changed since it was listed")
        except FileNotFoundError:
            for fh in files:
                fh.close()
            raise ValueError(f"a part of the upload of {key!r} is missing") from None
        except BaseException:
            for fh in files:
                fh.close()
            raise

        def join(tmp: Path) -> os.stat_result:
            with open(tmp, "xb") as out:
                for fh in files:
                    shutil.copyfileobj(fh, out, COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
                return os.fstat(out.fileno())

        try:
            self._store(key, join, metadata={}, content_type="", if_absent=True)
        finally:
            for fh in files:
                fh.close()
        shutil.rmtree(folder, ignore_errors=True)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            folder = self._upload_dir(key, upload_id)
        except NotFound:
            return
        shutil.rmtree(folder, ignore_errors=True)

    def sweep_staged(self, older_than: float) -> int:
        """Session folders under ``uploads/`` and multipart folders untouched since then."""
        removed = 0
        for parent in (self.root / UPLOAD_PREFIX.rstrip("/"), self.root / MULTIPART_DIR):
            if not parent.is_dir():
                continue
            for entry in os.scandir(parent):
                if entry.name.startswith(RESERVED_PREFIX) or not entry.is_dir():
                    continue
                newest = max(
                    (p.stat().st_mtime for p in Path(entry.path).rglob("*") if p.is_file()),
                    default=entry.stat().st_mtime,
                )
                if newest < older_than:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed += 1
        return removed

    def open_upload(self, token: str) -> _Sink:
        """The sink of an upload target's token (``UploadReceiver``)."""
        payload, _, mac = token.partition(".")
        try:
            expected = hmac.new(self._signing_key(), payload.encode(), hashlib.sha256).digest()
            valid = hmac.compare_digest(expected, _unb64(mac))
            claims = json.loads(_unb64(payload)) if valid else None
        except (binascii.Error, ValueError, UnicodeDecodeError):
            claims = None
        if not isinstance(claims, dict) or int(claims.get("e", 0)) < time.time():
            raise NotFound("This upload URL is invalid or has expired.")
        key = str(claims["k"])
        size = int(claims["s"])
        if claims.get("u") is None:
            meta = claims.get("m") or {}
            return _Sink(self, size, key=key, sha256=str(claims["h"]), metadata=dict(meta))
        folder = self._upload_dir(key, str(claims["u"]))
        return _Sink(self, size, part=folder / f"part-{int(claims['n'])}")

    def health(self) -> None:
        """The root is a folder this process can create files in."""
        try:
            if not self.root.is_dir():
                raise NotADirectoryError(f"{self.root} is not a folder")
            probe = self.root / f"{_HEALTH_PROBE}{uuid.uuid4().hex}"
            _fsync_write(probe, b"")
            probe.unlink()
        except OSError as exc:
            raise BackendUnavailable(f"storage folder {self.root} is not writable: {exc}") from exc


class _Sink:
    """Receives the bytes of one upload target: a whole object or one part."""

    def __init__(
        self,
        storage: LocalStorage,
        limit: int,
        *,
        key: str | None = None,
        sha256: str | None = None,
        part: Path | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.limit = limit
        self._storage = storage
        self._key = key
        self._sha256 = sha256
        self._metadata = metadata or {}
        self._part = part
        self._received = 0
        self._hash = hashlib.sha256()
        folder = part.parent if part is not None else storage._folder_of(key or "").parent
        self._tmp = folder / f"{RECEIVE_PREFIX}{uuid.uuid4().hex}"
        self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed by commit/abort

    def write(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self.limit:
            raise InvalidInput(f"This upload URL takes exactly {self.limit} bytes.")
        self._hash.update(chunk)
        self._file.write(chunk)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        _unlink(self._tmp)

    def commit(self) -> None:
        try:
            if self._received != self.limit:
                raise InvalidInput(
                    f"This upload URL takes exactly {self.limit} bytes; {self._received} came."
                )
            if self._sha256 is not None and not hmac.compare_digest(
                self._hash.hexdigest(), self._sha256
            ):
                raise InvalidInput("The uploaded bytes do not match the SHA-256 of the upload.")
            self._file.flush()
            os.fsync(self._file.fileno())
            st = os.fstat(self._file.fileno())
            self._file.close()
            if self._part is not None:
                os.replace(self._tmp, self._part)
                return
            assert self._key is not None

            def take(tmp: Path) -> os.stat_result:
                os.link(self._tmp, tmp)
                return st

            self._storage._store(
                self._key,
                take,
                metadata=self._metadata,
                content_type="application/octet-stream",
                if_absent=True,
                sha256=self._sha256,
            )
        finally:
            self.abort()
