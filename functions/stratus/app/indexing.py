"""Turning distribution bytes into index records, shared by upload, sync and reconcile."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ..domain import distributions, metadata
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
    dist = distributions.parse(filename, strict=strict)
    meta = metadata.extract(data, dist, strict=strict)
    record = FileRecord(
        project=dist.project,
        filename=filename,
        version=str(dist.version),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
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
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
    )
    return Described(record, meta.core_metadata_bytes, meta.source)
