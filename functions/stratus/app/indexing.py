"""Turning distribution bytes into index records, shared by upload, sync and reconcile."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import BinaryIO

from ..domain import distributions, metadata
from ..domain.distributions import DistFilename
from ..domain.metadata import CoreMetadata
from ..domain.models import FileRecord


@dataclass(frozen=True, slots=True)
class Described:
    record: FileRecord
    core_metadata: bytes | None  # PEP 658 file to store next to the distribution
    source_metadata: bytes | None = None  # METADATA / PKG-INFO as read, even if not servable


def describe_distribution(
    filename: str,
    data: bytes,
    *,
    uploader: str | None = None,
    upload_time: float | None = None,
    display_name: str | None = None,
    strict: bool = True,
) -> Described:
    """Parse the filename, read the archive's core metadata, hash the bytes.

    Raises ``InvalidInput`` for a bad filename or an unreadable archive. ``strict`` for
    uploads (canonical filename, valid metadata agreeing with it); sync and reconcile
    pass False for objects already in the bucket (see ``domain.metadata``).
    """
    digests = Digests.of(data)
    return describe_archive(
        filename,
        data,
        digests,
        uploader=uploader,
        upload_time=upload_time,
        display_name=display_name,
        strict=strict,
    )


@dataclass(frozen=True, slots=True)
class Digests:
    """A distribution's size and hashes (computed whole, or while streaming it; only the
    SHA-256 when the store checked it and the bytes are not read whole)."""

    size: int
    sha256: str
    md5: str | None = None
    blake2_256: str | None = None

    @classmethod
    def of(cls, data: bytes) -> Digests:
        hashing = Hashing()
        hashing.update(data)
        return hashing.digests()


class Hashing:
    """The hashes of an index record, fed chunk by chunk."""

    def __init__(self) -> None:
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._blake2 = hashlib.blake2b(digest_size=32)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha256.update(chunk)
        self._md5.update(chunk)
        self._blake2.update(chunk)

    def digests(self) -> Digests:
        return Digests(
            self.size, self._sha256.hexdigest(), self._md5.hexdigest(), self._blake2.hexdigest()
        )


def describe_archive(
    filename: str,
    archive: bytes | BinaryIO,
    digests: Digests,
    *,
    uploader: str | None = None,
    upload_time: float | None = None,
    display_name: str | None = None,
    strict: bool = True,
) -> Described:
    """``describe_distribution`` of bytes or of a seekable file whose digests are known."""
    dist = distributions.parse(filename, strict=strict)
    meta = metadata.extract(archive, dist, strict=strict)
    record = build_record(
        dist,
        meta,
        sha256=digests.sha256,
        size=digests.size,
        uploader=uploader,
        upload_time=upload_time,
        display_name=display_name,
        md5=digests.md5,
        blake2_256=digests.blake2_256,
    )
    return Described(record, meta.core_metadata_bytes, meta.source)


def build_record(
    dist: DistFilename,
    meta: CoreMetadata,
    *,
    sha256: str,
    size: int,
    uploader: str | None = None,
    upload_time: float | None = None,
    display_name: str | None = None,
    md5: str | None = None,
    blake2_256: str | None = None,
) -> FileRecord:
    """The index record of a distribution whose bytes were checked elsewhere."""
    return FileRecord(
        project=dist.project,
        filename=dist.filename,
        version=str(dist.version),
        sha256=sha256,
        size=size,
        upload_time=time.time() if upload_time is None else upload_time,
        display_name=display_name or meta.name or dist.project,
        packagetype=dist.kind,
        requires_python=meta.requires_python,
        summary=meta.summary,
        metadata_sha256=(
            hashlib.sha256(meta.core_metadata_bytes).hexdigest()
            if meta.core_metadata_bytes is not None
            else None
        ),
        uploader=uploader,
        md5=md5,
        blake2_256=blake2_256,
    )
