"""Storage port on a local folder (``stratus serve``).

Layout: the object ``a/b/name`` is the file ``<root>/a/b/name``, so the tree can be
browsed, backed up and served as is. Next to it, in the same folder:

- ``.stratus-meta/name``: a JSON sidecar with the user metadata, the content type and the
  data file's size and mtime (in ns). ``head`` trusts a sidecar only when they match the
  data file, so a sidecar left by a crash is never attributed to other bytes.
- ``.stratus-tmp-<random>``: files being written; never listed. They exist only while
  their writer holds the folder's lock, so the next writer of the folder removes any it
  finds (left by a process that was killed mid-write).
- ``.stratus-lock``: the folder's write lock (``flock``; a process-wide lock where
  ``fcntl`` does not exist).

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

import contextlib
import json
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..ports import Download, ObjectInfo
from .s3_storage import check_user_metadata

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RESERVED_PREFIX = ".stratus"
META_DIR = ".stratus-meta"
TMP_PREFIX = ".stratus-tmp-"
LOCK_NAME = ".stratus-lock"

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


class LocalStorage:
    """Objects as files under ``root`` (created if missing)."""

    def __init__(self, root: Path | str) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

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
            key, lambda tmp: _fsync_write(tmp, bytes(data)), metadata, content_type, if_absent
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
            key, lambda tmp: _fsync_copy(tmp, Path(path)), metadata, content_type, if_absent
        )

    def _store(
        self,
        key: str,
        write: Callable[[Path], os.stat_result],
        metadata: dict[str, str] | None,
        content_type: str,
        if_absent: bool,
    ) -> None:
        """Write the bytes with ``write(tmp)``, then publish them at ``key`` in one step."""
        path = self._path(key)
        meta = check_user_metadata(metadata)
        folder = path.parent
        try:
            (folder / META_DIR).mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"storage key {key!r}: a parent is an object, not a folder") from None
        if path.is_dir():
            raise ValueError(f"storage key {key!r} names a folder of other objects")
        tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        with self._locked(folder, exclusive=True):
            _sweep_temporaries(folder)
            try:
                if if_absent and os.path.lexists(path):
                    raise Conflict(f"Object {key!r} already exists.")
                st = write(tmp)
                if meta:
                    self._write_sidecar(path, st, meta, content_type)
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
        self, path: Path, st: os.stat_result, metadata: dict[str, str], content_type: str
    ) -> None:
        sidecar = self._sidecar(path)
        body = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "content_type": content_type,
            "metadata": metadata,
        }
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
        if side.get("size") == st.st_size and side.get("mtime_ns") == st.st_mtime_ns:
            metadata = dict(side.get("metadata") or {})
        return ObjectInfo(key=key, size=st.st_size, metadata=metadata, last_modified=st.st_mtime)

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
