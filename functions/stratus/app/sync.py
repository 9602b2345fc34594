"""Keep the catalog in step with the bucket, one S3 event notification at a time.

S3 delivers events at least once and out of order. Each event is therefore treated as
"this key changed": the catalog is made to match what the bucket holds for the key *now*
(one HEAD, plus a read of the bytes for files that did not come through the API), and
the write is tagged with the event's ``sequencer`` so that the catalog refuses anything
older than what it already applied for that key (``Catalog.sync_upsert`` /
``Catalog.sync_delete``). Replays, duplicates and reordering thus converge on the
bucket's state, and an API upload, whose record is already in the catalog with the same
sha256, causes no second write.

Keys that are not distributions (``.metadata`` files, stray objects, bad filenames) are
logged and skipped: retrying them could never succeed. Failures of the backends
propagate, so the message is retried and finally lands in the dead-letter queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from ..domain.errors import InvalidInput
from ..domain.keys import METADATA_CONTENT_TYPE, file_key, metadata_key, split_key
from ..domain.models import FileRecord
from ..domain.objectmeta import from_object_metadata, provenance, session_of
from ..ports import Catalog, ObjectInfo, Storage
from .ranged_reads import describe_stored

log = logging.getLogger(__name__)

PENDING = "an upload session's file, not checked yet (its completion publishes it)"


class Outcome(StrEnum):
    UPSERTED = "upserted"  # the catalog now holds the object's record
    DELETED = "deleted"  # the catalog entry was removed
    UNCHANGED = "unchanged"  # already applied, stale (older sequencer), or an API upload
    SKIPPED = "skipped"  # not a distribution, or not an event we act on


@dataclass(frozen=True, slots=True)
class S3Change:
    """One S3 event notification record, key decoded."""

    event_name: str  # "ObjectCreated:Put", "ObjectRemoved:DeleteMarkerCreated", ...
    bucket: str
    key: str
    sequencer: str
    size: int | None = None

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated:")

    @property
    def removed(self) -> bool:
        return self.event_name.startswith("ObjectRemoved:")


def parse_s3_record(record: Mapping[str, Any]) -> S3Change:
    """Read one entry of an S3 notification's ``Records``.

    Keys arrive URL-encoded as in a form (space as ``+``, ``+`` as ``%2B``), hence
    ``unquote_plus``.
    """
    s3 = record["s3"]
    obj = s3["object"]
    return S3Change(
        event_name=str(record.get("eventName", "")),
        bucket=str(s3.get("bucket", {}).get("name", "")),
        key=unquote_plus(obj["key"]),
        sequencer=str(obj.get("sequencer") or "") or _sequencer_from_time(record),
        size=obj.get("size"),
    )


def _sequencer_from_time(record: Mapping[str, Any]) -> str:
    """A stand-in for a missing ``sequencer``: the event time in microseconds, as hex.

    S3 always sends a sequencer; some emulators do not. Ordering by event time is the
    best they allow (and ties are harmless: each event applies the key's current state).
    """
    raw = record.get("eventTime")
    if not raw:
        return ""
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return f"{micros:x}"


def changes_from_message(body: str) -> list[S3Change]:
    """The S3 changes carried by one SQS message body.

    Handles S3's direct notification body, the same wrapped in an SNS envelope (for a
    bucket that fans out through a topic), and S3's ``s3:TestEvent`` (no changes).
    Raises ``ValueError`` for a body that is none of these.
    """
    message = json.loads(body)
    if isinstance(message, dict) and message.get("Type") == "Notification":
        message = json.loads(message["Message"])  # SNS → SQS envelope
    if not isinstance(message, dict):
        raise ValueError("SQS message body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise ValueError("SQS message body carries no S3 event Records")
    return [parse_s3_record(r) for r in records if r.get("eventSource", "aws:s3") == "aws:s3"]


def describe_object(storage: Storage, info: ObjectInfo) -> tuple[FileRecord, bytes | None]:
    """The catalog record of a stored distribution, and its core metadata if it was read.

    Objects uploaded through the API carry their record in object metadata (the HEAD
    already done; their core metadata file was stored by the API). Anything else
    (``aws s3 cp``, replication, an API object whose record did not fit in S3's 2 KB of
    metadata, an upload session's object published in place) is read and described
    (with ranged reads when it is large and the store gives its SHA-256), leniently:
    what is in the bucket already is not held to the upload rules (see
    ``domain.metadata``), only to the archive caps. Writes
    nothing. Raises ``InvalidInput`` for an object that is not a readable distribution
    stored under its project's prefix.
    """
    parts = split_key(info.key)
    if parts is None:
        raise InvalidInput(f"{info.key!r} is not a distribution key")
    project, filename = parts
    core_metadata = None
    record = from_object_metadata(filename, info.size, info.metadata)
    if record is None:
        uploader, upload_time = provenance(info.metadata)
        when = upload_time or info.last_modified or None
        described = describe_stored(
            storage,
            info.key,
            filename,
            size=info.size,
            sha256=info.sha256,
            strict=False,
            uploader=uploader,
            upload_time=when,
        )
        record, core_metadata = described.record, described.core_metadata
    if record.project != project:
        raise InvalidInput(
            f"{info.key!r}: the filename names project {record.project!r}, but the object "
            f"is stored under {project!r} (expected {file_key(record.project, filename)!r})"
        )
    return record, core_metadata


def is_pending_upload(storage: Storage, info: ObjectInfo) -> bool:
    """Whether the object is an upload session's, stored in place and not checked yet:
    never indexed (its completion publishes it; the lifecycle rule expires it if the
    session is abandoned). Only objects with the session marker cost a tag lookup."""
    return session_of(info.metadata) is not None and storage.upload_pending(info.key)


def store_core_metadata(
    storage: Storage, record: FileRecord, core_metadata: bytes, *, replace: bool = False
) -> str | None:
    """Store the PEP 658 file next to the distribution; return its key if written."""
    key = metadata_key(record.project, record.filename)
    if not replace and storage.head(key) is not None:
        return None
    storage.put(key, core_metadata, content_type=METADATA_CONTENT_TYPE)
    return key


def apply_change(catalog: Catalog, storage: Storage, change: S3Change) -> Outcome:
    """Make the catalog entry of ``change.key`` match the bucket, ordered by sequencer."""
    if not (change.created or change.removed):
        log.info("skipping %s event for %r", change.event_name, change.key)
        return Outcome.SKIPPED
    parts = split_key(change.key)
    if parts is None:
        log.info("skipping %r: not a distribution key", change.key)
        return Outcome.SKIPPED
    project, filename = parts
    # The object's state now, not at event time: a removed event for a key that exists
    # again (or a created event for a key deleted since) is settled by the current state.
    info = storage.head(change.key)
    if info is None:
        removed = catalog.sync_delete(project, filename, change.sequencer)
        log.info(
            "%s %r (sequencer %s): object absent, %s",
            change.event_name,
            change.key,
            change.sequencer,
            "entry deleted" if removed else "nothing to delete",
        )
        return Outcome.DELETED if removed else Outcome.UNCHANGED
    if is_pending_upload(storage, info):
        log.info("skipping %r (sequencer %s): %s", change.key, change.sequencer, PENDING)
        return Outcome.SKIPPED
    try:
        record, core_metadata = describe_object(storage, info)
    except InvalidInput as exc:
        log.warning("skipping %r: not a valid distribution: %s", change.key, exc)
        # Nothing valid is stored at this key (any more): it must not stay listed.
        if catalog.sync_delete(project, filename, change.sequencer):
            log.warning("%r: removed the entry of the distribution it replaced", change.key)
        return Outcome.SKIPPED
    if core_metadata is not None:
        # Before the entry, so an entry never promises a metadata file that is not there;
        # replaced, since the object may be a new version of a key described before.
        store_core_metadata(storage, record, core_metadata, replace=True)
    stored = catalog.sync_upsert(
        record.with_changes(sequencer=change.sequencer), last_modified=info.last_modified or None
    )
    log.info(
        "%s %r (sequencer %s): %s",
        change.event_name,
        change.key,
        change.sequencer,
        "indexed" if stored else "already up to date",
    )
    return Outcome.UPSERTED if stored else Outcome.UNCHANGED


def apply_message(catalog: Catalog, storage: Storage, body: str) -> list[Outcome]:
    """Apply every S3 change of one SQS message body; raise to have it retried."""
    return [apply_change(catalog, storage, change) for change in changes_from_message(body)]
