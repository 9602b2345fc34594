"""Catalog on DynamoDB (pynamodb): one table, designed for the index's access patterns.

Layout (key attribute names and types come from ``table_schema``; ``<index>`` is the
adapter's index, ``default`` today, see ``stratus.domain.indexes``):

* file ``pk=P#<index>#<project>, sk=F#<filename>``: the FileRecord fields (no metadata
  bodies);
* tombstone ``pk=P#<index>#<project>, sk=T#<filename>``: the sequencer of the last
  ObjectRemoved event of a key whose file is gone, and when the API deleted it (with the
  sha256 it listed);
* lease ``pk=LEASE#<name>, sk=LEASE``: owner and expiry (``TTL_ATTRIBUTE``) of a
  storage key's single writer (global: storage keys are);
* project entry ``pk=PROJECTS#<index>, sk=P#<project>``: display name, file count, newest
  upload time, the summary of the newest upload and a revision token ``rev`` (random, so
  a re-created entry never repeats one).

Project page = one Query on the project's partition (``begins_with(sk, "F#")``, so
tombstones never show); root page = one Query on the index's ``PROJECTS#<index>``
partition, never a Scan; file lookup = GetItem.

Every change to a project's files is one TransactWrite that also rewrites (or removes)
the project entry on the condition that ``rev`` is still what was read, or checks that
the entry is still absent. The entry is read first, so an unchanged entry at commit
proves the plan's later reads current: writers of one project are serialized, file
counts and ``last_modified`` stay exact, and the entry goes away in the same
transaction as the project's last file. (Only ``set_yanked`` changes a file alone: one
conditional UpdateItem of ``yanked``, which no summary depends on.)

File puts are conditional too: ``attribute_not_exists`` for a new file (two concurrent
uploads: one success, one ``Conflict``), and for the S3 sync the stored sequencer
(``seq_key``, padded by ``sequencer_key`` so DynamoDB's string order is S3's order) must
be older than the event's. A cancelled transaction is re-planned from fresh reads when a
condition failed (the state moved) and retried with jittered backoff on transaction
conflicts and throttling (``dynamo_table.TableAdapter.transact``).

The item classes derive from the table's shared base model (``dynamo_table``). pynamodb
is imported on first use, not at import, to keep cold starts short.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..domain.indexes import DEFAULT_INDEX, check_index_name
from ..domain.keys import sequencer_key
from ..domain.models import FileRecord, ProjectSummary, Tombstone
from . import table_schema
from .dynamo_table import Plan, TableAdapter, Transaction, cached_per_table, table_for

if TYPE_CHECKING:
    from pynamodb.models import Model

PROJECTS_PK = "PROJECTS"
PROJECT_PREFIX = "P#"
INDEX_SEPARATOR = "#"  # never in an index name nor in a normalized project name
FILE_PREFIX = "F#"
TOMBSTONE_PREFIX = "T#"
LEASE_PREFIX = "LEASE#"
LEASE_SK = "LEASE"


def project_pk(index: str, project: str) -> str:
    return f"{PROJECT_PREFIX}{index}{INDEX_SEPARATOR}{project}"


def projects_pk(index: str) -> str:
    """The partition of an index's project entries (the root page)."""
    return f"{PROJECTS_PK}{INDEX_SEPARATOR}{index}"


def project_of(pk: str) -> str:
    """The project of a ``project_pk``."""
    return pk.rpartition(INDEX_SEPARATOR)[2]


def file_sk(filename: str) -> str:
    return FILE_PREFIX + filename


def tombstone_sk(filename: str) -> str:
    return TOMBSTONE_PREFIX + filename


def entry_sk(project: str) -> str:
    return PROJECT_PREFIX + project


# --- pynamodb models, built per table name --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Models:
    file: Any  # pynamodb Model classes (built at runtime, so typed loosely)
    tombstone: Any
    project: Any
    lease: Any


def _build_models(table: str, aws_region: str | None) -> _Models:
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute

    Item: Any = table_for(table, aws_region).base

    class FileItem(Item):
        version = UnicodeAttribute()
        sha256 = UnicodeAttribute()
        size = NumberAttribute()
        upload_time = NumberAttribute()
        display_name = UnicodeAttribute(null=True)
        packagetype = UnicodeAttribute()
        requires_python = UnicodeAttribute(null=True)
        summary = UnicodeAttribute(null=True)
        metadata_sha256 = UnicodeAttribute(null=True)
        yanked = UnicodeAttribute(null=True)
        uploader = UnicodeAttribute(null=True)
        md5 = UnicodeAttribute(null=True)
        blake2_256 = UnicodeAttribute(null=True)
        seq = UnicodeAttribute(null=True)  # S3 sequencer as received
        seq_key = UnicodeAttribute(null=True)  # sequencer_key(seq): compares in S3 order

    class TombstoneItem(Item):
        seq = UnicodeAttribute()
        seq_key = UnicodeAttribute()
        deleted_at = NumberAttribute(null=True)  # set by an API delete
        sha256 = UnicodeAttribute(null=True)

    class LeaseItem(Item):
        owner = UnicodeAttribute()
        expires = NumberAttribute(attr_name=table_schema.TTL_ATTRIBUTE)

    class ProjectItem(Item):
        display_name = UnicodeAttribute()
        file_count = NumberAttribute()
        last_modified = NumberAttribute()
        summary = UnicodeAttribute(null=True)  # of the newest upload (web UI search)
        rev = UnicodeAttribute()  # random per write: never reused, so no ABA on re-creation

    return _Models(FileItem, TombstoneItem, ProjectItem, LeaseItem)


# --- conversions ------------------------------------------------------------------------


models_for = cached_per_table(_build_models)


def _to_item(models: _Models, index: str, record: FileRecord) -> Model:
    seq = record.sequencer or None
    return models.file(
        project_pk(index, record.project),
        file_sk(record.filename),
        version=record.version,
        sha256=record.sha256,
        size=record.size,
        upload_time=record.upload_time,
        display_name=record.display_name,
        packagetype=record.packagetype,
        requires_python=record.requires_python,
        summary=record.summary,
        metadata_sha256=record.metadata_sha256,
        yanked=record.yanked,
        uploader=record.uploader,
        md5=record.md5,
        blake2_256=record.blake2_256,
        seq=seq,
        seq_key=sequencer_key(seq) if seq else None,
    )


def _to_record(item: Any) -> FileRecord:
    return FileRecord(
        project=project_of(item.pk),
        filename=item.sk[len(FILE_PREFIX) :],
        version=item.version,
        sha256=item.sha256,
        size=int(item.size),
        upload_time=float(item.upload_time),
        display_name=item.display_name or "",
        packagetype=item.packagetype,
        requires_python=item.requires_python,
        summary=item.summary,
        metadata_sha256=item.metadata_sha256,
        yanked=item.yanked,
        uploader=item.uploader,
        md5=item.md5,
        blake2_256=item.blake2_256,
        sequencer=item.seq or "",
    )


def _to_tombstone(item: Any) -> Tombstone:
    return Tombstone(
        sequencer=item.seq or "",
        deleted_at=None if item.deleted_at is None else float(item.deleted_at),
        sha256=item.sha256,
    )


def _to_summary(item: Any) -> ProjectSummary:
    return ProjectSummary(
        name=item.sk[len(PROJECT_PREFIX) :],
        display_name=item.display_name,
        last_modified=float(item.last_modified),
        file_count=int(item.file_count),
        summary=item.summary,
    )


# --- the adapter ------------------------------------------------------------------------


class DynamoCatalog(TableAdapter):
    """The Catalog port on one index of one DynamoDB table (schema in ``table_schema``)."""

    models_factory = staticmethod(models_for)

    def __init__(
        self,
        table_name: str,
        *,
        index: str = DEFAULT_INDEX,
        region: str | None = None,
        consistent_read: bool = True,
    ) -> None:
        super().__init__(table_name, region=region, consistent_read=consistent_read)
        self.index = check_index_name(index)
        self._projects_pk = projects_pk(self.index)

    def _pk(self, project: str) -> str:
        return project_pk(self.index, project)

    # --- reads ---

    def _get(self, model: Any, pk: str, sk: str, *, consistent: bool = True) -> Any | None:
        try:
            return model.get(pk, sk, consistent_read=consistent)
        except model.DoesNotExist:
            return None

    def get_file(self, project: str, filename: str) -> FileRecord | None:
        item = self._get(
            self.models.file,
            self._pk(project),
            file_sk(filename),
            consistent=self.consistent_read,
        )
        return None if item is None else _to_record(item)

    def list_files(self, project: str) -> list[FileRecord]:
        model = self.models.file
        items = model.query(
            self._pk(project),
            model.sk.startswith(FILE_PREFIX),
            consistent_read=self.consistent_read,
        )
        return sorted((_to_record(item) for item in items), key=lambda r: r.filename)

    def list_projects(self) -> list[ProjectSummary]:
        model = self.models.project
        items = model.query(
            self._projects_pk,
            model.sk.startswith(PROJECT_PREFIX),
            consistent_read=self.consistent_read,
        )
        return sorted((_to_summary(item) for item in items), key=lambda p: p.name)

    def health(self) -> None:
        """One GetItem (same permission as the real reads; cheaper than DescribeTable)."""
        try:
            self._get(self.models.project, "#health", "#health", consistent=False)
        except Exception as exc:
            raise BackendUnavailable(
                f"DynamoDB table {self.table_name!r} cannot answer: {exc}"
            ) from exc

    # --- writes ---

    def add_file(self, record: FileRecord, *, overwrite: bool = False) -> None:
        m = self.models
        pk, sk = self._pk(record.project), file_sk(record.filename)

        def plan() -> Plan:
            entry = self._entry(record.project)  # first: see _stage_project
            current = self._get(m.file, pk, sk)
            if current is not None and not overwrite:
                raise self._conflict(record)
            tx = Transaction()
            tx.delete("tombstone", m.tombstone(pk, tombstone_sk(record.filename)))
            tx.put(
                "file",
                _to_item(m, self.index, record),
                m.file.pk.does_not_exist() if current is None else m.file.pk.exists(),
            )
            self._stage_project(tx, record.project, entry, removed=current, added=record)
            return Plan(tx)

        on_condition = None if overwrite else ("file", lambda: self._conflict(record))
        self.transact(plan, on_condition)

    @staticmethod
    def _conflict(record: FileRecord) -> Conflict:
        return Conflict(f"{record.filename} already exists in project {record.project}")

    def delete_file(self, project: str, filename: str) -> FileRecord | None:
        m = self.models
        pk, sk = self._pk(project), file_sk(filename)

        def plan() -> Plan:
            entry = self._entry(project)
            current = self._get(m.file, pk, sk)
            if current is None:
                return Plan(None, None)
            tombstone = self._get(m.tombstone, pk, tombstone_sk(filename))
            tx = Transaction()
            tx.delete("file", current, m.file.sha256 == current.sha256)
            seq = tombstone.seq if tombstone is not None else ""
            tx.put(
                "tombstone",
                m.tombstone(
                    pk,
                    tombstone_sk(filename),
                    seq=seq,
                    seq_key=sequencer_key(seq),
                    deleted_at=time.time(),
                    sha256=current.sha256,
                ),
                m.tombstone.pk.does_not_exist()
                if tombstone is None
                else (m.tombstone.seq_key == tombstone.seq_key),
            )
            self._stage_project(tx, project, entry, removed=current, added=None)
            return Plan(tx, _to_record(current))

        return self.transact(plan)

    def get_tombstone(self, project: str, filename: str) -> Tombstone | None:
        item = self._get(self.models.tombstone, self._pk(project), tombstone_sk(filename))
        return None if item is None else _to_tombstone(item)

    def set_yanked(self, project: str, filename: str, reason: str | None) -> FileRecord:
        from pynamodb.exceptions import UpdateError

        model = self.models.file
        item = model(self._pk(project), file_sk(filename))
        action = model.yanked.remove() if reason is None else model.yanked.set(reason)
        try:
            item.update(actions=[action], condition=model.pk.exists())
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFound(f"{filename} is not in project {project}") from None
            raise
        return _to_record(item)

    def sync_upsert(self, record: FileRecord, *, last_modified: float | None = None) -> bool:
        if not record.sequencer:
            raise ValueError("sync_upsert needs record.sequencer")
        m = self.models
        pk, filename = self._pk(record.project), record.filename
        new_key = sequencer_key(record.sequencer)

        def plan() -> Plan:
            entry = self._entry(record.project)
            current = self._get(m.file, pk, file_sk(filename))
            tombstone = self._get(m.tombstone, pk, tombstone_sk(filename))
            if tombstone is not None and tombstone.seq_key >= new_key:
                return Plan(None, False)  # removed by a later (or this) event
            if tombstone is not None and _to_tombstone(tombstone).hides(
                record.sha256, last_modified
            ):
                return Plan(None, False)  # what an API delete removed
            if current is not None and (
                (current.seq_key is not None and current.seq_key >= new_key)
                or current.sha256 == record.sha256
            ):
                return Plan(None, False)  # newer file, or the API wrote this one already
            tx = Transaction()
            # Also when none was read: a removal event processed meanwhile must win.
            tx.delete(
                "tombstone",
                m.tombstone(pk, tombstone_sk(filename)),
                m.tombstone.pk.does_not_exist() | (m.tombstone.seq_key < new_key),
            )
            tx.put(
                "file",
                _to_item(m, self.index, record),
                m.file.pk.does_not_exist()
                | m.file.seq_key.does_not_exist()
                | (m.file.seq_key < new_key),
            )
            self._stage_project(tx, record.project, entry, removed=current, added=record)
            return Plan(tx, True)

        return self.transact(plan)

    def sync_delete(self, project: str, filename: str, sequencer: str) -> bool:
        if not sequencer:
            raise ValueError("sync_delete needs a sequencer")
        m = self.models
        pk = self._pk(project)
        new_key = sequencer_key(sequencer)

        def plan() -> Plan:
            entry = self._entry(project)
            current = self._get(m.file, pk, file_sk(filename))
            if current is not None and current.seq_key is not None and current.seq_key > new_key:
                return Plan(None, False)  # the stored file is newer than this removal
            tombstone = self._get(m.tombstone, pk, tombstone_sk(filename))
            newer_tombstone = tombstone is not None and tombstone.seq_key >= new_key
            if current is None and newer_tombstone:
                return Plan(None, False)  # nothing to remove, tombstone already as new
            tx = Transaction()
            if not newer_tombstone:
                tx.put(
                    "tombstone",
                    m.tombstone(
                        pk,
                        tombstone_sk(filename),
                        seq=sequencer,
                        seq_key=new_key,
                        deleted_at=tombstone.deleted_at if tombstone is not None else None,
                        sha256=tombstone.sha256 if tombstone is not None else None,
                    ),
                    m.tombstone.pk.does_not_exist()
                    if tombstone is None
                    else (m.tombstone.seq_key == tombstone.seq_key),
                )
            if current is None:
                # Only while no file appeared meanwhile (a concurrent create it must remove).
                tx.check("file", m.file, pk, file_sk(filename), m.file.pk.does_not_exist())
                return Plan(tx, False)
            tx.delete(
                "file",
                current,
                m.file.pk.exists()
                & (m.file.seq_key.does_not_exist() | (m.file.seq_key <= new_key)),
            )
            self._stage_project(tx, project, entry, removed=current, added=None)
            return Plan(tx, True)

        return self.transact(plan)

    # --- leases ---

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        from pynamodb.exceptions import PutError

        model = self.models.lease
        now = time.time()
        item = model(LEASE_PREFIX + name, LEASE_SK, owner=owner, expires=now + seconds)
        try:
            item.save(
                condition=model.pk.does_not_exist() | (model.expires < now) | (model.owner == owner)
            )
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lease(self, name: str, owner: str) -> None:
        from pynamodb.exceptions import DeleteError

        model = self.models.lease
        try:
            model(LEASE_PREFIX + name, LEASE_SK).delete(condition=model.owner == owner)
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    # --- helpers ---

    def _entry(self, project: str) -> Any | None:
        return self._get(self.models.project, self._projects_pk, entry_sk(project))

    def _stage_project(
        self,
        tx: Transaction,
        project: str,
        entry: Any | None,
        *,
        removed: Any | None,
        added: FileRecord | None,
    ) -> None:
        """Add the project entry's rewrite (or removal) to ``tx``, conditioned on its ``rev``.

        ``entry`` must have been read before the file items the plan is based on: every
        change to a project's files rewrites the entry, so an unchanged ``rev`` at commit
        proves those reads are still current (a serializable snapshot per project).
        """
        m = self.models
        condition = m.project.pk.does_not_exist() if entry is None else (m.project.rev == entry.rev)
        count = (int(entry.file_count) if entry is not None else 0) + (
            (added is not None) - (removed is not None)
        )
        if count <= 0:
            if entry is not None:
                tx.delete("project", entry, condition)
            else:  # still assert what was read: the entry must still be absent
                tx.check("project", m.project, self._projects_pk, entry_sk(project), condition)
            return
        last_modified = float(entry.last_modified) if entry is not None else None
        summary = entry.summary if entry is not None else None
        if removed is not None and (
            last_modified is None or float(removed.upload_time) >= last_modified
        ):
            last_modified, summary = self._newest_upload(project, excluding=removed.sk)
        if added is not None and added.upload_time >= (last_modified or 0.0):
            last_modified, summary = added.upload_time, added.summary
        display_name = (
            (added.display_name if added is not None else "")
            or (entry.display_name if entry is not None else "")
            or project
        )
        tx.put(
            "project",
            m.project(
                self._projects_pk,
                entry_sk(project),
                display_name=display_name,
                file_count=count,
                last_modified=last_modified or 0.0,
                summary=summary,
                rev=os.urandom(8).hex(),
            ),
            condition,
        )

    def _newest_upload(self, project: str, *, excluding: str) -> tuple[float | None, str | None]:
        """Upload time and summary of the project's newest file other than ``excluding``."""
        model = self.models.file
        items = model.query(
            self._pk(project),
            model.sk.startswith(FILE_PREFIX),
            consistent_read=True,
            attributes_to_get=[table_schema.SORT_KEY.name, "upload_time", "summary"],
        )
        newest = max(
            (i for i in items if i.sk != excluding),
            key=lambda i: float(i.upload_time),
            default=None,
        )
        if newest is None:
            return None, None
        return float(newest.upload_time), newest.summary
