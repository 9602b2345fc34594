"""Cache fills: an upstream file fetched, checked against the upstream's sha256 while it
streams, and stored through the same path as an upload (``Publisher.import_file``:
storage, core metadata, catalog), so sync, reconcile and every page see it as any file.

Memory stays bounded whatever the file's size: chunks of 1 MB go to a temporary file
(hashed on the way); the core metadata is read from that file (zip central directory /
tar header), and storage copies it in parts (S3 multipart). The object metadata that lets
reconcile rebuild the index must be known when the object is created, which is why the
bytes land in a file first and not straight in an S3 multipart upload.

Locally ``stream`` hands the chunks to the client as they arrive and publishes after the
last one. On AWS a response cannot carry more than 6 MB: ``dispatch`` queues the fill for
the fill function (one per file, a lock with a TTL) while the client is sent to the
upstream file; small files can also be filled inline (``fill_locked``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..domain import fallback
from ..domain.errors import Conflict, PermissionDenied, UpstreamError
from ..domain.models import FileRecord
from ..domain.origins import upstream_blocked_message
from ..domain.upstream import FillJob
from ..ports import FillLocks, FillQueue, MetricsSink, UpstreamIndex
from .indexing import Digests, Hashing, describe_archive
from .origins import OriginPolicy
from .publish import Publisher

log = logging.getLogger(__name__)

FILL_LOCK_SECONDS = 960  # longer than the fill function may run (900 s)
INLINE_FILL_MAX_BYTES = 8 * 1024 * 1024  # AWS: fill in the API request up to this size
DEFAULT_MAX_BYTES = 5 * 1024**3


class Filler:
    def __init__(
        self,
        upstream: UpstreamIndex,
        publisher: Publisher,
        origins: OriginPolicy,
        *,
        mirror: str,
        temp_dir: Path | None = None,
        locks: FillLocks | None = None,
        queue: FillQueue | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.upstream = upstream
        self.publisher = publisher
        self.origins = origins
        self.mirror = mirror
        self.temp_dir = temp_dir
        self.locks = locks
        self.queue = queue
        self.max_bytes = max_bytes
        self.metrics = metrics  # CacheFills, UpstreamErrors (business metrics)

    @property
    def queued(self) -> bool:
        """Whether fills run in the fill function (AWS) rather than in the request."""
        return self.queue is not None

    def lock_key(self, job: FillJob) -> str:
        return f"{self.mirror}/{job.project}/{job.filename}"

    def check(self, job: FillJob) -> FileRecord | None:
        """Before any byte moves: the stored file if it is there already (same bytes);
        ``Conflict`` for a local file of that name, ``PermissionDenied`` if the upstream is
        blocked for the name, ``UpstreamError`` for a file that cannot be checked."""
        existing = self.publisher.catalog.get_file(job.project, job.filename)
        if existing is not None:
            if existing.sha256 == job.sha256:
                return existing
            raise Conflict(f"{job.filename} is stored here with other bytes (local wins).")
        if not self.origins.upstream_allowed(job.project):
            raise PermissionDenied(upstream_blocked_message(job.project))
        if job.size is not None and job.size > self.max_bytes:
            raise UpstreamError(f"{job.filename} is larger than this index caches.")
        return None

    # --- the transfer -------------------------------------------------------------------

    def stream(self, job: FillJob, result: list[FileRecord] | None = None) -> Iterator[bytes]:
        """Yield the file's chunks as they arrive; after the last one, check the sha256 and
        publish (the record is appended to ``result``). Stopped early (the client went
        away) or failed: nothing is stored, the temporary file is gone."""
        fd, name = tempfile.mkstemp(prefix="stratus-fill-", dir=self.temp_dir)
        tmp = Path(name)
        try:
            hashing = Hashing()
            with os.fdopen(fd, "wb") as out, self.upstream.open_file(job.url) as chunks:
                for chunk in chunks:
                    hashing.update(chunk)
                    if hashing.size > self.max_bytes:
                        raise UpstreamError(f"{job.filename} is larger than this index caches.")
                    out.write(chunk)
                    yield chunk
            digests = hashing.digests()
            if not hmac.compare_digest(digests.sha256, job.sha256.lower()):
                raise UpstreamError(
                    f"{job.filename} from the upstream does not match the upstream's sha256; "
                    "nothing was stored"
                )
            record = self._publish(job, tmp, digests)
            if self.metrics is not None:
                self.metrics.count("CacheFills")
            if result is not None:
                result.append(record)
        except UpstreamError:
            if self.metrics is not None:
                self.metrics.count("UpstreamErrors")
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _publish(self, job: FillJob, tmp: Path, digests: Digests) -> FileRecord:
        with open(tmp, "rb") as archive:
            # Not strict: the upstream's files are its own (the sha256 it lists is checked),
            # and older ones predate canonical filenames and valid metadata.
            described = describe_archive(
                job.filename,
                archive,
                digests,
                uploader=fallback.upstream_uploader(self.mirror),
                strict=False,
            )
        record = described.record
        if record.project != job.project:
            raise UpstreamError(f"{job.filename} is not a file of {job.project}")
        if job.yanked is not None:
            record = record.with_changes(yanked=job.yanked)
        self.origins.check_fill(job.project)  # with origin_lock: the first origin claims
        try:
            stored = self.publisher.import_file(dataclasses.replace(described, record=record), tmp)
        except Conflict:
            existing = self.publisher.catalog.get_file(job.project, job.filename)
            if existing is None or existing.sha256 != record.sha256:
                raise
            return existing  # a concurrent fill of the same file came first
        log.info("cache fill: stored %s (%d bytes) from %s", job.filename, digests.size, job.url)
        return stored

    def fill(self, job: FillJob) -> FileRecord:
        """Fetch, check and store ``job``'s file (idempotent: a stored file is returned)."""
        existing = self.check(job)
        return existing if existing is not None else self.transfer(job)

    def transfer(self, job: FillJob) -> FileRecord:
        """``fill`` of a job that just passed ``check`` (found nothing stored)."""
        result: list[FileRecord] = []
        for _ in self.stream(job, result):
            pass
        return result[0]

    # --- coordination (AWS) ---------------------------------------------------------------

    def fill_locked(self, job: FillJob) -> FileRecord | None:
        """``fill`` unless a fill of the file is under way elsewhere (then None)."""
        if self.locks is None:
            return self.fill(job)
        key = self.lock_key(job)
        if not self.locks.acquire(key, FILL_LOCK_SECONDS):
            return None
        try:
            return self.fill(job)
        finally:
            self.locks.release(key)

    def dispatch(self, job: FillJob) -> bool:
        """Queue the fill unless one of this file is under way; True if queued now."""
        if self.queue is None:
            raise RuntimeError("no fill queue configured")
        key = self.lock_key(job)
        if self.locks is not None and not self.locks.acquire(key, FILL_LOCK_SECONDS):
            return False
        try:
            self.queue.enqueue(job)
        except BaseException:
            if self.locks is not None:
                self.locks.release(key)
            raise
        return True

    def run_queued(self, job: FillJob) -> FileRecord | None:
        """The fill function's work for one queued job; releases the job's lock.

        Permanent refusals (blocked name, local file of that name) are logged and
        dropped; upstream failures raise, so the queue retries (then dead-letters).
        """
        try:
            return self.fill(job)
        except (PermissionDenied, Conflict) as exc:
            log.warning("cache fill of %s dropped: %s", job.filename, exc)
            return None
        finally:
            if self.locks is not None:
                self.locks.release(self.lock_key(job))
