"""Upload, delete and yank: the write side of the index, on ports only.

Order of an upload (the catalog entry is the commit point, so nothing half-written is
ever listed): validate everything → store the distribution (conditional write unless
overwriting is allowed, so of two concurrent uploads exactly one wins) → store its core
metadata → add the catalog entry (conditional again).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from pathlib import Path

from ..domain import distributions, names
from ..domain.errors import Conflict, InvalidInput, NotFound
from ..domain.keys import file_key, metadata_key
from ..domain.models import FileRecord
from ..domain.objectmeta import to_object_metadata
from ..ports import Catalog, Storage
from .indexing import describe_distribution

_DIGESTS = {
    "sha256_digest": lambda data: hashlib.sha256(data).hexdigest(),
    "md5_digest": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "blake2_256_digest": lambda data: hashlib.blake2b(data, digest_size=32).hexdigest(),
}


def check_digests(data: bytes, sent: Mapping[str, str | None]) -> None:
    """Every digest the client sent must match the bytes (constant-time comparison)."""
    for field, compute in _DIGESTS.items():
        value = (sent.get(field) or "").strip().lower()
        if value and not hmac.compare_digest(value, compute(data)):
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
        check_digests(data, digests)
        described = describe_distribution(filename, data, uploader=uploader, display_name=name)
        if self.guard is not None:
            self.guard(described.record.project)

        def write(key: str, metadata: dict[str, str], if_absent: bool) -> None:
            self.storage.put(key, data, metadata=metadata, if_absent=if_absent)

        return self._publish(described.record, described.core_metadata, write, self.allow_overwrite)

    def import_file(
        self, record: FileRecord, path: Path, core_metadata: bytes | None
    ) -> FileRecord:
        """Publish a distribution from a local file (a cache fill), like an upload: storage
        (streamed), core metadata, catalog. Never overwrites: ``Conflict`` if it exists."""

        def write(key: str, metadata: dict[str, str], if_absent: bool) -> None:
            self.storage.put_file(key, path, metadata=metadata, if_absent=if_absent)

        return self._publish(record, core_metadata, write, overwrite=False)

    def _publish(
        self,
        record: FileRecord,
        core_metadata: bytes | None,
        write: Callable[[str, dict[str, str], bool], None],
        overwrite: bool,
    ) -> FileRecord:
        """Store the distribution with ``write(key, object metadata, if_absent)``, then its
        core metadata, then the catalog entry (the commit point)."""
        filename = record.filename
        if not overwrite and self.catalog.get_file(record.project, filename) is not None:
            raise Conflict(f"File {filename!r} already exists.")
        key = file_key(record.project, filename)
        try:
            write(key, to_object_metadata(record), not overwrite)
        except Conflict:
            # The object may be an orphan of an interrupted upload of the same bytes.
            info = self.storage.head(key)
            if info is None or info.metadata.get("stratus-sha256") != record.sha256:
                raise Conflict(f"File {filename!r} already exists.") from None
        if core_metadata is not None:
            self.storage.put(
                metadata_key(record.project, filename),
                core_metadata,
                content_type="text/plain; charset=utf-8",
            )
        try:
            self.catalog.add_file(record, overwrite=overwrite)
        except Conflict:
            existing = self.catalog.get_file(record.project, filename)
            if existing is None or existing.sha256 != record.sha256:
                raise
            return existing  # the S3 event sync indexed our own object first
        return record

    def delete(self, project: str, filename: str) -> FileRecord:
        record = self.catalog.delete_file(project, filename)
        if record is None:
            raise NotFound(f"No file {filename!r} in project {project!r}.")
        self.storage.delete(metadata_key(project, filename))
        self.storage.delete(file_key(project, filename))
        return record

    def yank(self, project: str, filename: str, reason: str | None) -> FileRecord:
        return self.catalog.set_yanked(project, filename, reason)
