"""Repair drift between the bucket (the source of truth) and the catalog.

Events can be lost (a notification misconfigured for a while, a message dropped from the
dead-letter queue, a table restored from a backup), so a scheduled run lists the bucket,
lists the catalog and repairs both ways:

* a distribution in the bucket with no catalog entry → described and added;
* a catalog entry whose object is gone → removed;
* an entry whose object changed (size differs, or the object is newer than the entry; with
  ``deep`` every object is checked by sha256) → replaced by the object's record, keeping
  its yank state;
* a PEP 658 core metadata file missing next to its distribution → written again (always
  before the entry that promises it);
* an object the catalog's tombstone says was deleted (same sha256, not modified since the
  delete: a delete that stopped after its catalog step) → never listed again, reported
  in ``skipped``; the indexing role may not delete distributions, so the object stays
  until the delete is retried (``Publisher.delete`` finishes it) or the file is uploaded
  again.

Orphans (an object a crashed upload stored without its catalog entry) are indexed, not
removed: the bucket is the source of truth here as for the S3 event sync (which lists
such an object as soon as its event arrives), and the object is complete (uploads
validate before they write, and store the core metadata file first). A repair holds the
key's lease (``leases``), as uploads and deletes do, so an upload still in progress is
left alone; an orphan is indexed by the first run after its upload's lease expired
(``LEASE_SECONDS`` after the crash).

An upload session's object stored in place and still pending (``sync.is_pending_upload``)
is left alone (reported in ``skipped``): its completion checks and publishes it, and the
bucket's lifecycle rule removes it if the session is abandoned.

Every repair re-reads the key just before acting, so an upload or delete racing with the
run is not undone. The returned report says what was fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from ..domain.errors import Conflict, InvalidInput
from ..domain.keys import (
    DESCRIPTION_SUFFIX,
    METADATA_CONTENT_TYPE,
    METADATA_SUFFIX,
    PACKAGE_PREFIX,
    file_key,
    metadata_key,
    split_key,
)
from ..domain.models import FileRecord
from ..ports import Catalog, ObjectInfo, Storage
from .leases import KeyLease
from .ranged_reads import describe_stored
from .sync import PENDING, describe_object, is_pending_upload, store_core_metadata

log = logging.getLogger(__name__)

# Objects written within this many seconds after their entry's upload_time are the
# upload itself (the API records the time before it stores the bytes).
CLOCK_SLACK_SECONDS = 5.0
LEFT_OVER = (
    "left over from a delete interrupted after its catalog step: not listed again; "
    "delete the file again (or upload it again) to finish"
)


@dataclass
class ReconcileReport:
    dry_run: bool = False
    deep: bool = False
    objects: int = 0  # distributions found in the bucket
    entries: int = 0  # files found in the catalog
    projects: int = 0  # projects looked at
    added: list[str] = field(default_factory=list)  # keys indexed
    updated: list[str] = field(default_factory=list)  # keys re-indexed
    removed: list[str] = field(default_factory=list)  # keys dropped from the catalog
    metadata_written: list[str] = field(default_factory=list)  # .metadata keys written
    skipped: dict[str, str] = field(default_factory=dict)  # key → why it is not indexed
    # Checkpoint: the last project done when the run stopped for time; None = complete.
    next_after: str | None = None

    @property
    def repairs(self) -> int:
        return len(self.added) + len(self.updated) + len(self.removed) + len(self.metadata_written)

    @property
    def complete(self) -> bool:
        return self.next_after is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["repairs"] = self.repairs
        out["complete"] = self.complete
        return out


def _order(project: str) -> str:
    """Projects in the order the bucket lists their keys (``packages/<project>/...``)."""
    return project + "/"


def _project_of(key: str) -> str:
    return key[len(PACKAGE_PREFIX) :].partition("/")[0]


def resume_key(after: str) -> str:
    """A ``start_after`` that skips every key of ``after`` and of projects listed before it.

    ``"0"`` is the character right after ``"/"``: every ``packages/<after>/...`` key sorts
    below ``packages/<after>0`` and every key of a later project above it.
    """
    return f"{PACKAGE_PREFIX}{after}0"


def _bucket_projects(storage: Storage, after: str | None) -> Iterator[tuple[str, list[ObjectInfo]]]:
    """The bucket's keys grouped by project, in listing order, from after ``after``."""
    start = resume_key(after) if after is not None else None
    current: str | None = None
    group: list[ObjectInfo] = []
    for info in storage.list(PACKAGE_PREFIX, start_after=start):
        project = _project_of(info.key)
        if project != current:
            if current is not None:
                yield current, group
            current, group = project, []
        group.append(info)
    if current is not None:
        yield current, group


def reconcile(
    catalog: Catalog,
    storage: Storage,
    *,
    dry_run: bool = False,
    deep: bool = False,
    after: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[str, ReconcileReport], None] | None = None,
) -> ReconcileReport:
    """Reconcile project by project, in bucket order, starting after project ``after``.

    After each project ``should_stop()`` is asked (a Lambda checks its remaining time);
    when it says yes the report's ``next_after`` names the last project done, and a next
    run with ``after=next_after`` continues there. ``progress(project, report)`` is called
    after each project (the CLI prints from it). Memory holds one project at a time, so
    a bucket of any size reconciles in as many runs as it needs.
    """
    report = ReconcileReport(dry_run=dry_run, deep=deep)
    # The catalog's projects (one query), merged with the bucket's listing in one order.
    pending = sorted(
        (
            p.name
            for p in catalog.list_projects()
            if after is None or _order(p.name) > _order(after)
        ),
        key=_order,
        reverse=True,
    )

    def step(project: str, listed: list[ObjectInfo]) -> bool:
        _reconcile_project(catalog, storage, project, listed, report)
        report.projects += 1
        if progress is not None:
            progress(project, report)
        if should_stop is not None and should_stop():
            report.next_after = project
            return True
        return False

    for project, listed in _bucket_projects(storage, after):
        while pending and _order(pending[-1]) < _order(project):
            if step(pending.pop(), []):  # in the catalog, nothing in the bucket
                return _done(report)
        if pending and pending[-1] == project:
            pending.pop()
        if step(project, listed):
            return _done(report)
    while pending:
        if step(pending.pop(), []):
            return _done(report)
    return _done(report)


def _done(report: ReconcileReport) -> ReconcileReport:
    log.info(
        "reconcile: %d projects, %d objects, %d entries, %d repairs%s",
        report.projects,
        report.objects,
        report.entries,
        report.repairs,
        "" if report.complete else f"; continues after {report.next_after!r}",
    )
    return report


def _reconcile_project(
    catalog: Catalog,
    storage: Storage,
    project: str,
    listed: list[ObjectInfo],
    report: ReconcileReport,
) -> None:
    objects: dict[str, ObjectInfo] = {}
    metadata_keys: set[str] = set()
    for info in listed:
        if info.key.endswith(METADATA_SUFFIX):
            metadata_keys.add(info.key)
            continue
        if info.key.endswith(DESCRIPTION_SUFFIX):
            continue  # a rendered long description (web UI), not a distribution
        parts = split_key(info.key)
        if parts is None:
            report.skipped[info.key] = "not a distribution key"
            continue
        objects[parts[1]] = info
    report.objects += len(objects)
    entries = {record.filename: record for record in catalog.list_files(project)}
    report.entries += len(entries)

    for filename, record in sorted(entries.items()):
        if filename not in objects:
            _remove(catalog, storage, record, report)

    for filename, listed_info in sorted(objects.items()):
        key = file_key(project, filename)
        entry = entries.get(filename)
        if entry is not None and not report.deep and not _looks_changed(entry, listed_info):
            _ensure_metadata(storage, entry, metadata_keys, report)
            continue
        with _key_lease(catalog, key, report) as free:
            if free:
                _repair_key(catalog, storage, key, entry, metadata_keys, report)


@contextmanager
def _key_lease(catalog: Catalog, key: str, report: ReconcileReport) -> Iterator[bool]:
    """Hold the key's lease while repairing it (uploads and deletes hold it too); yield
    False, and leave the key to the next run, while another writer holds it."""
    if report.dry_run:
        yield True
        return
    lease = KeyLease(catalog, key)
    if not lease.acquire():
        report.skipped[key] = "an upload or delete holds its lease; left for the next run"
        yield False
        return
    try:
        yield True
    finally:
        lease.release()


def _repair_key(
    catalog: Catalog,
    storage: Storage,
    key: str,
    entry: FileRecord | None,
    metadata_keys: set[str],
    report: ReconcileReport,
) -> None:
    """Make the key's catalog entry match its object (the key's lease held)."""
    info = storage.head(key)  # current state, with the object metadata
    if info is None:
        return  # deleted since the listing; its event will settle it
    if is_pending_upload(storage, info):
        report.skipped[key] = PENDING
        return
    try:
        current, core_metadata = describe_object(storage, info)
    except InvalidInput as exc:
        report.skipped[key] = str(exc)
        log.warning("reconcile: skipping %r: %s", key, exc)
        if entry is not None:  # replaced by something that is no distribution
            report.removed.append(key)
            if not report.dry_run:
                catalog.delete_file(entry.project, entry.filename)
        return
    if entry is None:
        tombstone = catalog.get_tombstone(current.project, current.filename)
        if tombstone is not None and tombstone.hides(current.sha256, info.last_modified or None):
            report.skipped[key] = LEFT_OVER
            log.info("reconcile: %r was deleted from the catalog; not listing it again", key)
            return
    elif current.sha256 == entry.sha256:
        _ensure_metadata(storage, entry, metadata_keys, report)
        return
    if core_metadata is not None:  # before the entry that promises it
        meta_key = metadata_key(current.project, current.filename)
        if entry is not None or meta_key not in metadata_keys:
            if not report.dry_run:
                store_core_metadata(storage, current, core_metadata, replace=True)
            report.metadata_written.append(meta_key)
    if entry is None:
        _add(catalog, current, key, report)
    else:
        _update(catalog, entry, current, key, report)


def _looks_changed(entry: FileRecord, listed: ObjectInfo) -> bool:
    if entry.size != listed.size:
        return True
    return bool(listed.last_modified) and (
        listed.last_modified > entry.upload_time + CLOCK_SLACK_SECONDS
    )


def _remove(catalog: Catalog, storage: Storage, entry: FileRecord, report: ReconcileReport) -> None:
    key = file_key(entry.project, entry.filename)
    if storage.head(key) is not None:
        return  # uploaded after the listing
    report.removed.append(key)
    log.info("reconcile: %r is not in the bucket; removing its entry", key)
    if not report.dry_run:
        catalog.delete_file(entry.project, entry.filename)


def _add(catalog: Catalog, record: FileRecord, key: str, report: ReconcileReport) -> None:
    log.info("reconcile: %r is not in the catalog; adding it", key)
    if not report.dry_run:
        try:
            catalog.add_file(record)
        except Conflict:
            return  # indexed meanwhile (by the sync or an upload)
    report.added.append(key)


def _update(
    catalog: Catalog, entry: FileRecord, current: FileRecord, key: str, report: ReconcileReport
) -> None:
    log.info("reconcile: %r changed in the bucket; re-indexing it", key)
    report.updated.append(key)
    if not report.dry_run:
        kept = {"yanked": entry.yanked, "sequencer": entry.sequencer}
        catalog.add_file(current.with_changes(**kept), overwrite=True)


def _ensure_metadata(
    storage: Storage, entry: FileRecord, metadata_keys: set[str], report: ReconcileReport
) -> None:
    """Write the PEP 658 file again if the entry promises one that the bucket lacks."""
    meta_key = metadata_key(entry.project, entry.filename)
    if entry.metadata_sha256 is None or meta_key in metadata_keys:
        return
    if report.dry_run:
        report.metadata_written.append(meta_key)
        return
    key = file_key(entry.project, entry.filename)
    try:
        described = describe_stored(
            storage, key, entry.filename, size=entry.size, sha256=entry.sha256, strict=False
        )
    except InvalidInput as exc:
        report.skipped[key] = f"core metadata not recoverable: {exc}"
        return
    if described.core_metadata is None:
        return
    storage.put(meta_key, described.core_metadata, content_type=METADATA_CONTENT_TYPE)
    report.metadata_written.append(meta_key)
    log.info("reconcile: wrote missing core metadata %r", meta_key)
