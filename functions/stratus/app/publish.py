"""Upload, delete and yank: the write side of the index, on ports only.

An upload is all-or-nothing, and pip never sees a listed file whose bytes or core
metadata are missing:

1. validate everything (names, filename, digests, archive, metadata) before any write;
2. take the key's lease (``leases``): one writer of a key at a time, so a retry may
   replace what a crashed attempt left, and overwrites are serialized;
3. store the PEP 658 core metadata file and the rendered long description (for the
   web UI), then the distribution (with its record as
   object metadata: the S3 event sync may index it as soon as it lands, and its
   metadata file is already there);
4. add the catalog entry: the commit point. If that fails the object and its metadata
   file are removed again (unless the entry turned out to exist); if the process dies
   first, the orphan does not block a retry (which holds the lease and replaces it)
   and reconcile indexes it once the lease has expired (see ``reconcile``).

A legacy upload stores the bytes it received (``upload``); an upload session publishes
the object it staged and checked in place (``publish_staged``): the same validation,
lease, order and rollback, with a server-side copy of the staged object as the
distribution's step 3 — or, for a session that sent its bytes straight to the
distribution's key (``publish_in_place``), the removal of the object's pending mark.

A delete goes the other way: the catalog entry first (leaving a tombstone with its
sha256, so neither sync nor reconcile lists a surviving object again), then the
distribution, then its metadata file. A delete that stopped after its catalog step is
finished by the next delete of the file (instead of a 404).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..domain import distributions, names
from ..domain.errors import Conflict, InvalidInput, NotFound
from ..domain.keys import METADATA_CONTENT_TYPE, description_key, file_key, metadata_key
from ..domain.models import FileRecord
from ..domain.objectmeta import from_object_metadata, to_object_metadata
from ..ports import Catalog, Storage
from .descriptions import store_description
from .indexing import Described, Digests, describe_archive
from .leases import LEASE_SECONDS, KeyLease, holding

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger(__name__)

# How long an overwrite or a delete waits for the key's current writer to finish.
LEASE_WAIT_SECONDS = 10.0
# A cache fill streams a file of up to ``app.fill.DEFAULT_MAX_BYTES`` to storage while
# holding the lease: it lasts as long as the fill function may run.
FILL_LEASE_SECONDS = 900.0

# Writes the distribution's bytes: ``write(key, object metadata)``.
Write = Callable[[str, dict[str, str]], None]
# Takes the distribution at a key away again (a rollback).
Remove = Callable[[str], None]

# The upload form's digest fields: the ``Digests`` attribute each names, its length.
_DIGESTS = {
    "sha256_digest": ("sha256", 64),
    "md5_digest": ("md5", 32),
    "blake2_256_digest": ("blake2_256", 64),
}
_HEX = re.compile(r"[0-9a-f]+", re.ASCII)


def check_digests(computed: Digests, sent: Mapping[str, str | None]) -> None:
    """Every digest the client sent must match the ones computed of the bytes
    (constant-time comparison)."""
    for field, (attribute, length) in _DIGESTS.items():
        value = (sent.get(field) or "").strip().lower()
        if not value:
            continue
        if len(value) != length or not _HEX.fullmatch(value):
            raise InvalidInput(f"The {field} field is not a {length}-digit hex digest.")
        if not hmac.compare_digest(value, getattr(computed, attribute) or ""):
            raise InvalidInput(
                f"The {field.removesuffix('_digest')} digest of the uploaded file does not "
                "match the digest sent with it; the file was corrupted in transit."
            )


class Publisher:
    def __init__(
        self,
        catalog: Catalog,
        storage: Storage,
        *,
        allow_overwrite: bool,
        guard: Callable[[str], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.storage = storage
        self.allow_overwrite = allow_overwrite
        # Called with the project before an upload stores anything; raises to refuse
        # (origin controls: ``app.origins.OriginPolicy.check_publish``).
        self.guard = guard

    def upload(
        self,
        *,
        name: str,
        version: str,
        filename: str,
        data: bytes,
        digests: Mapping[str, str | None],
        uploader: str | None,
    ) -> FileRecord:
        names.validate(name)
        dist = distributions.parse(filename)
        distributions.check_matches_form(dist, name, version)
        if not data:
            raise InvalidInput(f"The uploaded file {filename!r} is empty.")
        computed = Digests.of(data)  # each hash once, for the check and the record
        check_digests(computed, digests)
        described = describe_archive(filename, data, computed, uploader=uploader, display_name=name)

        def write(key: str, metadata: dict[str, str]) -> None:
            self.storage.put(key, data, metadata=metadata, content_type="application/octet-stream")

        return self._upload(described, write)

    def publish_staged(self, described: Described, staged_key: str) -> FileRecord:
        """Publish the object at ``staged_key`` (checked by the caller, strictly, as an
        upload is: ``described`` describes its bytes) under the distribution's key, by a
        server-side copy; the staged object stays (the caller removes it)."""

        def write(key: str, metadata: dict[str, str]) -> None:
            self.storage.copy(
                staged_key, key, metadata=metadata, content_type="application/octet-stream"
            )

        return self._upload(described, write)

    def publish_in_place(self, described: Described, *, ours: Callable[[], bool]) -> FileRecord:
        """Publish the object an upload session stored at the distribution's key itself,
        marked pending (checked by the caller, strictly, as an upload is), without a copy:
        the write step removes the pending mark, then the catalog entry is added. In that
        order: a crash in between leaves an unmarked, checked orphan that reconcile
        indexes, never a published file still marked pending (which the bucket's lifecycle
        rule would delete). The object keeps its provenance metadata (the record is not in
        it: sync and reconcile describe it from its bytes).

        ``ours()`` says whether the object at the key is still the session's (its bytes):
        another upload may have replaced it before the lease was taken (``Conflict``). A
        rollback removes the object only while it is ours and still pending."""
        exists = f"File {described.record.filename!r} already exists."

        def write(key: str, metadata: dict[str, str]) -> None:
            if not ours():
                raise Conflict(exists)
            self.storage.clear_upload_pending(key)

        def remove(key: str) -> None:
            if self.storage.upload_pending(key) and ours():
                self.storage.delete(key)

        return self._upload(described, write, remove=remove)

    def import_file(self, described: Described, path: Path) -> FileRecord:
        """Publish a distribution from a local file (a cache fill) like an upload: under
        the key's lease, metadata → description → distribution (streamed) → catalog, rolled
        back on failure. Never overwrites: ``Conflict`` if the file exists."""

        def write(key: str, metadata: dict[str, str]) -> None:
            self.storage.put_file(
                key, path, metadata=metadata, content_type="application/octet-stream"
            )

        # Waits for a concurrent fill of the same file, then finds it stored (Conflict).
        return self._publish(
            described,
            write,
            overwrite=False,
            wait=LEASE_WAIT_SECONDS,
            lease_seconds=FILL_LEASE_SECONDS,
        )

    def _upload(
        self, described: Described, write: Write, *, remove: Remove | None = None
    ) -> FileRecord:
        """An upload (twine's or a session's): the origin guard, then the steps below."""
        if self.guard is not None:
            self.guard(described.record.project)
        overwrite = self.allow_overwrite
        return self._publish(
            described,
            write,
            overwrite=overwrite,
            wait=LEASE_WAIT_SECONDS if overwrite else 0.0,
            remove=remove,
        )

    def _publish(
        self,
        described: Described,
        write: Write,
        *,
        overwrite: bool,
        wait: float,
        lease_seconds: float = LEASE_SECONDS,
        remove: Remove | None = None,
    ) -> FileRecord:
        """Steps 2 to 4 of an upload (and of a cache fill): take the key's lease, store.
        ``remove`` takes the distribution away on a rollback (default: delete it)."""
        project, filename = described.record.project, described.record.filename
        exists = Conflict(f"File {filename!r} already exists.")
        if not overwrite and self.catalog.get_file(project, filename) is not None:
            raise exists
        busy = f"Another upload or delete of {filename!r} is in progress; try again shortly."
        key = file_key(project, filename)
        with holding(self.catalog, key, wait=wait, busy=busy, seconds=lease_seconds) as lease:
            if not overwrite and self.catalog.get_file(project, filename) is not None:
                raise exists
            return self._store(
                described, write, lease, overwrite=overwrite, remove=remove or self.storage.delete
            )

    def _store(
        self,
        described: Described,
        write: Write,
        lease: KeyLease,
        *,
        overwrite: bool,
        remove: Remove,
    ) -> FileRecord:
        """Steps 3 and 4 of an upload, the key's lease held."""
        record = described.record
        key = file_key(record.project, record.filename)
        meta_key = metadata_key(record.project, record.filename)
        roll_back = not overwrite  # an overwrite has no previous bytes to go back to
        try:
            if described.core_metadata is not None:
                self.storage.put(
                    meta_key, described.core_metadata, content_type=METADATA_CONTENT_TYPE
                )
            store_description(self.storage, record, described.source_metadata)  # the web UI's
            write(key, to_object_metadata(record))
            if not lease.renew():  # held past its expiry: another writer may own the key now
                roll_back = False
                raise Conflict(f"The upload of {record.filename!r} took too long; try again.")
            try:
                self.catalog.add_file(record, overwrite=overwrite)
            except Conflict:
                existing = self.catalog.get_file(record.project, record.filename)
                if existing is not None and existing.sha256 == record.sha256:
                    return existing  # the S3 event sync indexed our object first
                # Listed by sync or reconcile from an object this upload has replaced
                # (an orphan of an earlier attempt): the bucket now holds ours.
                self.catalog.add_file(record, overwrite=True)
        except BaseException:
            if roll_back:
                self._roll_back(record, key, meta_key, remove)
            raise
        return record

    def _roll_back(self, record: FileRecord, key: str, meta_key: str, remove: Remove) -> None:
        """Remove what a failed upload stored, unless its entry exists after all."""
        try:
            if self.catalog.get_file(record.project, record.filename) is not None:
                return
            remove(key)
            self.storage.delete(meta_key)
            self.storage.delete(description_key(record.project, record.filename))
        except Exception:
            log.warning("upload of %r failed and could not be rolled back; reconcile will", key)

    def delete(self, project: str, filename: str) -> FileRecord:
        key = file_key(project, filename)
        busy = f"Another upload or delete of {filename!r} is in progress; try again shortly."
        with holding(self.catalog, key, wait=LEASE_WAIT_SECONDS, busy=busy):
            record = self.catalog.delete_file(project, filename)
            if record is None:
                record = self._interrupted_delete(project, filename)
            if record is None:
                raise NotFound(f"No file {filename!r} in project {project!r}.")
            self.storage.delete(key)
            self.storage.delete(metadata_key(project, filename))
            self.storage.delete(description_key(project, filename))
        return record

    def _interrupted_delete(self, project: str, filename: str) -> FileRecord | None:
        """The record of a file whose delete stopped after its catalog step, if it is one.

        Its tombstone hides the object left behind (same bytes, not written since), so a
        retried delete finishes the job instead of answering 404.
        """
        tombstone = self.catalog.get_tombstone(project, filename)
        if tombstone is None or tombstone.deleted_at is None:
            return None
        info = self.storage.head(file_key(project, filename))
        if info is None:
            return None
        left = from_object_metadata(filename, info.size, info.metadata)
        digest = (
            left.sha256
            if left is not None
            else info.sha256 or hashlib.sha256(self.storage.read(info.key)).hexdigest()
        )
        if not tombstone.hides(digest, info.last_modified or None):
            return None
        return left or FileRecord(
            project=project,
            filename=filename,
            version="",
            sha256=digest,
            size=info.size,
            upload_time=info.last_modified,
        )

    def yank(self, project: str, filename: str, reason: str | None) -> FileRecord:
        return self.catalog.set_yanked(project, filename, reason)


def upload_publisher(services: Services) -> Publisher:
    """The deployment's ``Publisher`` of uploads (twine's and upload sessions', in the
    request or in the completion worker): ``allow_overwrite`` from the settings, and the
    origin controls as its guard (a name locked to the upstream refuses uploads, 403)."""
    fallback = services.fallback
    return Publisher(
        services.catalog,
        services.storage,
        allow_overwrite=services.settings.allow_overwrite,
        guard=fallback.origins.check_publish if fallback is not None else None,
    )
