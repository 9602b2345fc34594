"""Copy an index to another deployment: pypicloud's ``ppc-migrate`` (``stratus migrate``).

Every file the source's catalog lists goes to the destination as an upload would store
it: under the destination key's lease, the PEP 658 core metadata file and the rendered
description first (where the source has them), then the distribution (with its record
as object metadata, so the destination's sync and reconcile recognise it), then the
catalog entry, the record as it was (uploader, upload time, yanked state), with no S3
sequencer of the source's bucket.

Bytes are streamed: ranged reads of the source into a temporary file, hashed on the way
(the copy must have the sha256 the source's catalog names) before anything is written at
the destination, then ``put_file`` (S3: multipart).

Safe to run again: a file the destination lists with the same sha256 is skipped; one
whose bytes landed without their catalog entry (an interrupted run) only gets the entry.
A different file of the same name at the destination is a conflict and is left alone,
unless ``overwrite``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..domain.errors import Conflict, NotFound, StratusError
from ..domain.keys import METADATA_CONTENT_TYPE, description_key, file_key, metadata_key
from ..domain.models import FileRecord
from ..domain.objectmeta import from_object_metadata, to_object_metadata
from ..ports import Catalog, ObjectInfo, Storage
from .descriptions import CONTENT_TYPE as DESCRIPTION_CONTENT_TYPE
from .leases import holding
from .publish import FILL_LEASE_SECONDS, LEASE_WAIT_SECONDS
from .ranged_reads import stream_sha256

# Ranged reads in flight per file copied (each up to ranged_reads.HASH_CHUNK bytes).
COPY_READS = 2


@dataclass(frozen=True, slots=True)
class Side:
    """One deployment's index: its catalog and its storage."""

    catalog: Catalog
    storage: Storage


class Outcome(StrEnum):
    COPIED = "copied"
    SKIPPED = "skipped"  # already there, same sha256
    CONFLICT = "conflict"  # another file of that name is there; left alone
    FAILED = "failed"
    PLANNED = "would copy"  # a dry run


@dataclass
class MigrationReport:
    total: int = 0
    files: dict[Outcome, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # conflicts and failures

    def add(self, name: str, outcome: Outcome, reason: str = "") -> None:
        self.files.setdefault(outcome, []).append(name)
        if reason:
            self.reasons[name] = reason

    def count(self, outcome: Outcome) -> int:
        return len(self.files.get(outcome, []))

    @property
    def ok(self) -> bool:
        return not (self.count(Outcome.FAILED) or self.count(Outcome.CONFLICT))


def listed_files(catalog: Catalog) -> list[FileRecord]:
    """Every file the catalog lists, by project then filename."""
    return [r for p in catalog.list_projects() for r in catalog.list_files(p.name)]


class Migration:
    def __init__(
        self,
        source: Side,
        dest: Side,
        *,
        overwrite: bool = False,
        dry_run: bool = False,
        temp_dir: Path | None = None,
    ) -> None:
        self.source = source
        self.dest = dest
        self.overwrite = overwrite
        self.dry_run = dry_run
        self.temp_dir = temp_dir

    def run(
        self,
        *,
        progress: Callable[[str, int, int], None] | None = None,
        each: Callable[[FileRecord, Outcome, str], None] | None = None,
        parallel: int = 1,
    ) -> MigrationReport:
        """Migrate every file, up to ``parallel`` at once; ``progress("files", done,
        total)`` and ``each(record, outcome, reason)`` after each, in listing order."""
        records = listed_files(self.source.catalog)
        report = MigrationReport(total=len(records))
        with ThreadPoolExecutor(max(1, parallel)) as pool:
            outcomes = pool.map(self._attempt, records)
            for done, (record, (outcome, reason)) in enumerate(
                zip(records, outcomes, strict=True), 1
            ):
                report.add(f"{record.project}/{record.filename}", outcome, reason)
                if each is not None:
                    each(record, outcome, reason)
                if progress is not None:
                    progress("files", done, len(records))
        return report

    def _attempt(self, record: FileRecord) -> tuple[Outcome, str]:
        try:
            return self.migrate_file(record)
        except (StratusError, ValueError, OSError) as exc:
            return Outcome.FAILED, str(exc) or type(exc).__name__
        except Exception as exc:  # a backend error on one file must not stop the rest
            return Outcome.FAILED, f"{type(exc).__name__}: {exc}"

    def migrate_file(self, record: FileRecord) -> tuple[Outcome, str]:
        project, filename = record.project, record.filename
        key = file_key(project, filename)
        existing = self.dest.catalog.get_file(project, filename)
        stored = self.dest.storage.head(key)
        stored_sha256 = None if stored is None else self._stored_sha256(stored, filename)
        if existing is not None:
            if existing.sha256 == record.sha256 and stored_sha256 == record.sha256:
                return Outcome.SKIPPED, ""
            if existing.sha256 != record.sha256 and not self.overwrite:
                return Outcome.CONFLICT, (
                    f"the destination lists another {filename} (sha256 {existing.sha256}, "
                    f"the source's is {record.sha256})"
                )
        elif stored_sha256 is not None and stored_sha256 != record.sha256 and not self.overwrite:
            return Outcome.CONFLICT, (
                f"the destination stores another {filename} (sha256 {stored_sha256}, not "
                f"listed in its index; the source's is {record.sha256})"
            )
        if self.dry_run:
            return Outcome.PLANNED, ""
        with ExitStack() as stack:
            local = None  # the source's verified bytes, unless the destination has them
            if stored_sha256 != record.sha256:
                local = stack.enter_context(self._downloaded(record, key))
            busy = f"another upload or delete of {filename} is in progress at the destination"
            lease = stack.enter_context(
                holding(
                    self.dest.catalog,
                    key,
                    wait=LEASE_WAIT_SECONDS,
                    busy=busy,
                    seconds=FILL_LEASE_SECONDS,
                )
            )
            self._copy_sidecars(project, filename)
            if local is not None:
                self.dest.storage.put_file(
                    key,
                    local,
                    metadata=to_object_metadata(record),
                    content_type="application/octet-stream",
                )
            if not lease.renew():
                raise Conflict(f"the copy of {filename} outlasted its lease; run again")
            moved = record.with_changes(sequencer="")
            try:
                self.dest.catalog.add_file(moved, overwrite=existing is not None)
            except Conflict:
                return Outcome.CONFLICT, f"{filename} was added at the destination meanwhile"
        return Outcome.COPIED, ""

    def _stored_sha256(self, info: ObjectInfo, filename: str) -> str:
        """The sha256 of a destination object: from its object metadata (written with
        it), else as the store checked it, else read."""
        described = from_object_metadata(filename, info.size, info.metadata)
        if described is not None:
            return described.sha256
        return info.sha256 or stream_sha256(self.dest.storage, info.key, info.size)

    def _copy_sidecars(self, project: str, filename: str) -> None:
        for key, content_type in (
            (metadata_key(project, filename), METADATA_CONTENT_TYPE),
            (description_key(project, filename), DESCRIPTION_CONTENT_TYPE),
        ):
            try:  # small files: read whole (one GET, no HEAD first)
                data = self.source.storage.read(key)
            except NotFound:  # what the destination's file of that name had (an overwrite) goes
                self.dest.storage.delete(key)
            else:
                self.dest.storage.put(key, data, content_type=content_type)

    @contextmanager
    def _downloaded(self, record: FileRecord, key: str) -> Iterator[Path]:
        """The source's distribution in a temporary file, checked against its record."""
        source = self.source.storage.head(key)
        if source is None:
            raise NotFound(f"the source's storage has no {key} (stratus rebuild fixes its index)")
        if source.size != record.size:
            raise ValueError(
                f"the source's {record.filename} has {source.size} bytes, not the "
                f"{record.size} its index lists (stratus rebuild --deep checks the source)"
            )
        with tempfile.NamedTemporaryFile(dir=self.temp_dir, prefix="stratus-migrate-") as tmp:
            digest = stream_sha256(
                self.source.storage, key, record.size, parallel=COPY_READS, sink=tmp.write
            )
            if digest != record.sha256:
                raise ValueError(
                    f"the source's bytes of {record.filename} have sha256 {digest}, not the "
                    f"{record.sha256} its index lists (stratus rebuild --deep checks the source)"
                )
            tmp.flush()
            yield Path(tmp.name)
