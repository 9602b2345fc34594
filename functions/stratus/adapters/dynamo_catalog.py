"""Catalog on DynamoDB (pynamodb): one table, designed for the index's access patterns.

Layout (key attribute names and types come from ``table_schema``):

* file ``pk=P#<project>, sk=F#<filename>``: the FileRecord fields (no metadata bodies);
* sync tombstone ``pk=P#<project>, sk=T#<filename>``: the sequencer of the last
  ObjectRemoved event of a key whose file is gone;
* project entry ``pk=PROJECTS, sk=P#<project>``: display name, file count, newest
  upload time, the summary of the newest upload and a revision token ``rev`` (random, so
  a re-created entry never repeats one).

Project page = one Query on the project's partition (``begins_with(sk, "F#")``, so
tombstones never show); root page = one Query on the ``PROJECTS`` partition, never a
Scan; file lookup = GetItem.

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
conflicts and throttling.

The endpoint is never passed: botocore reads ``AWS_ENDPOINT_URL_DYNAMODB`` /
``AWS_ENDPOINT_URL`` itself (pynamodb leaves ``endpoint_url`` unset). pynamodb is imported
on first use, not at import, to keep cold starts short.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..domain.keys import sequencer_key
from ..domain.models import FileRecord, ProjectSummary
from . import table_schema

if TYPE_CHECKING:
    from pynamodb.connection import Connection
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.expressions.condition import Condition
    from pynamodb.models import Model

PROJECTS_PK = "PROJECTS"
PROJECT_PREFIX = "P#"
FILE_PREFIX = "F#"
TOMBSTONE_PREFIX = "T#"

MAX_ATTEMPTS = 20
BACKOFF_BASE = 0.02  # seconds; doubled per attempt, capped, full jitter
BACKOFF_CAP = 0.5
_RETRY_AFTER_BACKOFF = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
_CONDITION_FAILED = "ConditionalCheckFailed"


def project_pk(project: str) -> str:
    return PROJECT_PREFIX + project


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
    connection: Connection  # shared by the three models and by transactions


def cached_per_table[T](build: Callable[[str, str | None], T]) -> Callable[..., T]:
    """Build a table's Model classes once per (table, region); pynamodb configures tables
    per class, so every adapter on the table needs its own classes, built once."""
    lock = threading.Lock()
    cache: dict[tuple[str, str | None], T] = {}

    def models_for(table_name: str, region: str | None = None) -> T:
        key = (table_name, region)
        with lock:
            if key not in cache:
                cache[key] = build(table_name, region)
            return cache[key]

    return models_for


def _build_models(table: str, aws_region: str | None) -> _Models:
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute
    from pynamodb.models import Model

    class Item(Model):
        class Meta:
            table_name = table
            region = aws_region
            # no ``host``: botocore resolves AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL

        pk = UnicodeAttribute(hash_key=True, attr_name=table_schema.PARTITION_KEY.name)
        sk = UnicodeAttribute(range_key=True, attr_name=table_schema.SORT_KEY.name)

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

    class ProjectItem(Item):
        display_name = UnicodeAttribute()
        file_count = NumberAttribute()
        last_modified = NumberAttribute()
        summary = UnicodeAttribute(null=True)  # of the newest upload (web UI search)
        rev = UnicodeAttribute()  # random per write: never reused, so no ABA on re-creation

    # One TableConnection (one botocore client) for all: subclasses find the base's
    # ``_connection`` through the class hierarchy once the base has made it.
    table_connection = Item._get_connection()
    return _Models(FileItem, TombstoneItem, ProjectItem, table_connection.connection)


# --- conversions ------------------------------------------------------------------------


models_for = cached_per_table(_build_models)


def _to_item(models: _Models, record: FileRecord) -> Model:
    seq = record.sequencer or None
    return models.file(
        project_pk(record.project),
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
        project=item.pk[len(PROJECT_PREFIX) :],
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


def _to_summary(item: Any) -> ProjectSummary:
    return ProjectSummary(
        name=item.sk[len(PROJECT_PREFIX) :],
        display_name=item.display_name,
        last_modified=float(item.last_modified),
        file_count=int(item.file_count),
        summary=item.summary,
    )


# --- transactions -----------------------------------------------------------------------


class _Transaction:
    """A TransactWrite whose items have names, to read cancellation reasons by name."""

    def __init__(self) -> None:
        self._checks: list[tuple[str, Any, str, str, Condition]] = []
        self._deletes: list[tuple[str, Model, Condition | None]] = []
        self._puts: list[tuple[str, Model, Condition | None]] = []

    def check(self, name: str, model: Any, pk: str, sk: str, condition: Condition) -> None:
        self._checks.append((name, model, pk, sk, condition))

    def delete(self, name: str, item: Model, condition: Condition | None = None) -> None:
        self._deletes.append((name, item, condition))

    def put(self, name: str, item: Model, condition: Condition | None = None) -> None:
        self._puts.append((name, item, condition))

    def names(self) -> list[str]:
        # The order pynamodb sends them in (TransactWrite._commit): checks, deletes, puts.
        return [e[0] for e in self._checks] + [e[0] for e in self._deletes + self._puts]

    def commit(self, connection: Connection) -> None:
        from pynamodb.transactions import TransactWrite

        with TransactWrite(connection=connection) as tx:
            for _, model, pk, sk, condition in self._checks:
                tx.condition_check(model, pk, sk, condition=condition)
            for _, item, condition in self._deletes:
                tx.delete(item, condition=condition)
            for _, item, condition in self._puts:
                tx.save(item, condition=condition)

    def reasons(self, error: TransactWriteError) -> dict[str, str] | None:
        """``{item name: reason code}`` of a cancelled transaction; None if not a cancellation."""
        if error.cause_response_code != "TransactionCanceledException":
            return None
        reasons = error.cancellation_reasons
        names = self.names()
        if len(reasons) != len(names):
            return None
        return {
            name: reason.code
            for name, reason in zip(names, reasons, strict=True)
            if reason is not None and reason.code not in ("None", "", None)
        }


@dataclass(slots=True)
class _Plan:
    """What one attempt decided: the transaction to run (None: nothing to write), the result."""

    transaction: _Transaction | None
    result: Any = None


# --- the adapter ------------------------------------------------------------------------


class TableAdapter:
    """What every adapter on the Stratus table shares: its name and lazily built models.

    Subclasses set ``models_factory`` (table name, region → their pynamodb models).
    """

    models_factory: Callable[[str, str | None], Any]

    def __init__(
        self, table_name: str, *, region: str | None = None, consistent_read: bool = True
    ) -> None:
        self.table_name = table_name
        self.region = region
        self.consistent_read = consistent_read
        self._models: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.table_name!r})"

    @property
    def models(self) -> Any:
        if self._models is None:
            self._models = type(self).models_factory(self.table_name, self.region)
        return self._models


class DynamoCatalog(TableAdapter):
    """The Catalog port on one DynamoDB table (schema in ``table_schema``)."""

    models_factory = staticmethod(models_for)

    # --- reads ---

    def _get(self, model: Any, pk: str, sk: str, *, consistent: bool = True) -> Any | None:
        try:
            return model.get(pk, sk, consistent_read=consistent)
        except model.DoesNotExist:
            return None

    def get_file(self, project: str, filename: str) -> FileRecord | None:
        item = self._get(
            self.models.file,
            project_pk(project),
            file_sk(filename),
            consistent=self.consistent_read,
        )
        return None if item is None else _to_record(item)

    def list_files(self, project: str) -> list[FileRecord]:
        model = self.models.file
        items = model.query(
            project_pk(project),
            model.sk.startswith(FILE_PREFIX),
            consistent_read=self.consistent_read,
        )
        return sorted((_to_record(item) for item in items), key=lambda r: r.filename)

    def list_projects(self) -> list[ProjectSummary]:
        model = self.models.project
        items = model.query(
            PROJECTS_PK,
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
        pk, sk = project_pk(record.project), file_sk(record.filename)

        def plan() -> _Plan:
            entry = self._entry(record.project)  # first: see _stage_project
            current = self._get(m.file, pk, sk)
            if current is not None and not overwrite:
                raise self._conflict(record)
            tx = _Transaction()
            tx.delete("tombstone", m.tombstone(pk, tombstone_sk(record.filename)))
            tx.put(
                "file",
                _to_item(m, record),
                m.file.pk.does_not_exist() if current is None else m.file.pk.exists(),
            )
            self._stage_project(tx, record.project, entry, removed=current, added=record)
            return _Plan(tx)

        on_condition = None if overwrite else ("file", lambda: self._conflict(record))
        self._transact(plan, on_condition)

    @staticmethod
    def _conflict(record: FileRecord) -> Conflict:
        return Conflict(f"{record.filename} already exists in project {record.project}")

    def delete_file(self, project: str, filename: str) -> FileRecord | None:
        m = self.models
        pk, sk = project_pk(project), file_sk(filename)

        def plan() -> _Plan:
            entry = self._entry(project)
            current = self._get(m.file, pk, sk)
            if current is None:
                return _Plan(None, None)
            tx = _Transaction()
            tx.delete("file", current, m.file.sha256 == current.sha256)
            self._stage_project(tx, project, entry, removed=current, added=None)
            return _Plan(tx, _to_record(current))

        return self._transact(plan)

    def set_yanked(self, project: str, filename: str, reason: str | None) -> FileRecord:
        from pynamodb.exceptions import UpdateError

        model = self.models.file
        item = model(project_pk(project), file_sk(filename))
        action = model.yanked.remove() if reason is None else model.yanked.set(reason)
        try:
            item.update(actions=[action], condition=model.pk.exists())
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFound(f"{filename} is not in project {project}") from None
            raise
        return _to_record(item)

    def sync_upsert(self, record: FileRecord) -> bool:
        if not record.sequencer:
            raise ValueError("sync_upsert needs record.sequencer")
        m = self.models
        pk, filename = project_pk(record.project), record.filename
        new_key = sequencer_key(record.sequencer)

        def plan() -> _Plan:
            entry = self._entry(record.project)
            current = self._get(m.file, pk, file_sk(filename))
            tombstone = self._get(m.tombstone, pk, tombstone_sk(filename))
            if tombstone is not None and tombstone.seq_key >= new_key:
                return _Plan(None, False)  # removed by a later (or this) event
            if current is not None and (
                (current.seq_key is not None and current.seq_key >= new_key)
                or current.sha256 == record.sha256
            ):
                return _Plan(None, False)  # newer file, or the API wrote this one already
            tx = _Transaction()
            # Also when none was read: a removal event processed meanwhile must win.
            tx.delete(
                "tombstone",
                m.tombstone(pk, tombstone_sk(filename)),
                m.tombstone.pk.does_not_exist() | (m.tombstone.seq_key < new_key),
            )
            tx.put(
                "file",
                _to_item(m, record),
                m.file.pk.does_not_exist()
                | m.file.seq_key.does_not_exist()
                | (m.file.seq_key < new_key),
            )
            self._stage_project(tx, record.project, entry, removed=current, added=record)
            return _Plan(tx, True)

        return self._transact(plan)

    def sync_delete(self, project: str, filename: str, sequencer: str) -> bool:
        if not sequencer:
            raise ValueError("sync_delete needs a sequencer")
        m = self.models
        pk = project_pk(project)
        new_key = sequencer_key(sequencer)

        def plan() -> _Plan:
            entry = self._entry(project)
            current = self._get(m.file, pk, file_sk(filename))
            if current is not None and current.seq_key is not None and current.seq_key > new_key:
                return _Plan(None, False)  # the stored file is newer than this removal
            tombstone = self._get(m.tombstone, pk, tombstone_sk(filename))
            newer_tombstone = tombstone is not None and tombstone.seq_key >= new_key
            if current is None and newer_tombstone:
                return _Plan(None, False)  # nothing to remove, tombstone already as new
            tx = _Transaction()
            if not newer_tombstone:
                tx.put(
                    "tombstone",
                    m.tombstone(pk, tombstone_sk(filename), seq=sequencer, seq_key=new_key),
                    m.tombstone.pk.does_not_exist() | (m.tombstone.seq_key < new_key),
                )
            if current is None:
                # Only while no file appeared meanwhile (a concurrent create it must remove).
                tx.check("file", m.file, pk, file_sk(filename), m.file.pk.does_not_exist())
                return _Plan(tx, False)
            tx.delete(
                "file",
                current,
                m.file.pk.exists()
                & (m.file.seq_key.does_not_exist() | (m.file.seq_key <= new_key)),
            )
            self._stage_project(tx, project, entry, removed=current, added=None)
            return _Plan(tx, True)

        return self._transact(plan)

    # --- helpers ---

    def _entry(self, project: str) -> Any | None:
        return self._get(self.models.project, PROJECTS_PK, entry_sk(project))

    def _stage_project(
        self,
        tx: _Transaction,
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
                tx.check("project", m.project, PROJECTS_PK, entry_sk(project), condition)
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
                PROJECTS_PK,
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
            project_pk(project),
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

    def _transact(
        self,
        plan: Callable[[], _Plan],
        on_condition: tuple[str, Callable[[], Exception]] | None = None,
    ) -> Any:
        """Run ``plan`` and its transaction until it commits or there is nothing to write.

        ``on_condition``: (item name, error factory) to raise instead of retrying when that
        item's condition failed.
        """
        from pynamodb.exceptions import TransactWriteError

        for attempt in range(MAX_ATTEMPTS):
            decided = plan()
            if decided.transaction is None:
                return decided.result
            try:
                decided.transaction.commit(self.models.connection)
                return decided.result
            except TransactWriteError as exc:
                reasons = decided.transaction.reasons(exc)
                if reasons is None:
                    raise
                if on_condition is not None and reasons.get(on_condition[0]) == _CONDITION_FAILED:
                    raise on_condition[1]() from None
                codes = set(reasons.values())
                if not codes <= _RETRY_AFTER_BACKOFF | {_CONDITION_FAILED}:
                    raise
                if codes & _RETRY_AFTER_BACKOFF or attempt > 2:
                    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
                    time.sleep(random.uniform(0, delay))  # full jitter
        raise BackendUnavailable(
            f"DynamoDB table {self.table_name!r}: too much contention, gave up after "
            f"{MAX_ATTEMPTS} attempts"
        )
