"""Catalog on SQLite, for local mode. One file, WAL journal, one connection per thread.

Every row carries its index (``idx``, first column of each primary key, see
``stratus.domain.indexes``); an adapter reads and writes one index. Files written before
the index became part of the key are moved into the default index when opened.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import astuple, fields
from pathlib import Path

from ..domain.errors import Conflict, NotFound
from ..domain.indexes import DEFAULT_INDEX, check_index_name
from ..domain.keys import sequencer_key
from ..domain.models import FileRecord, ProjectSummary, Tombstone
from .sqlite_db import SqliteDatabase, Transaction

_COLUMNS = [f.name for f in fields(FileRecord)]
_FILES = f"""
CREATE TABLE IF NOT EXISTS files (
    idx TEXT NOT NULL,
    {", ".join(_COLUMNS)},
    PRIMARY KEY (idx, project, filename)
) WITHOUT ROWID;
"""
_TOMBSTONES = """
CREATE TABLE IF NOT EXISTS tombstones (
    idx TEXT NOT NULL,
    project TEXT NOT NULL,
    filename TEXT NOT NULL,
    sequencer TEXT NOT NULL,
    deleted_at REAL,
    sha256 TEXT,
    PRIMARY KEY (idx, project, filename)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
"""
# Columns added since the first release, for index files created before them.
_ADDED_COLUMNS = {"tombstones": (("deleted_at", "REAL"), ("sha256", "TEXT"))}
_INSERT = (
    f"INSERT INTO files (idx, {', '.join(_COLUMNS)}) VALUES (?, {', '.join('?' * len(_COLUMNS))})"
)
_UPSERT = _INSERT.replace("INSERT", "INSERT OR REPLACE", 1)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM files"
_KEY = "idx = ? AND project = ? AND filename = ?"


def _add_index_column(conn: sqlite3.Connection) -> None:
    """Move the rows of a file made before ``idx`` existed into the default index."""
    for table, schema, wanted in (
        ("files", _FILES, _COLUMNS),
        ("tombstones", _TOMBSTONES, ["project", "filename", "sequencer", "deleted_at", "sha256"]),
    ):
        present = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        if not present or "idx" in present:
            continue
        columns = ", ".join(c for c in wanted if c in present)  # older files lack some
        with_index = f"{DEFAULT_INDEX!r}, {columns}"
        conn.executescript(
            f"BEGIN IMMEDIATE; ALTER TABLE {table} RENAME TO {table}_before_idx; {schema}"
            f"INSERT INTO {table} (idx, {columns}) SELECT {with_index} FROM {table}_before_idx;"
            f"DROP TABLE {table}_before_idx; COMMIT;"
        )


class SqliteCatalog:
    def __init__(self, path: str | Path, *, index: str = DEFAULT_INDEX) -> None:
        self.index = check_index_name(index)
        self._db = SqliteDatabase(path, "")
        # Per thread, as the connections (and their ``version``): the kept project list.
        self._local = threading.local()
        _add_index_column(self._db.conn())
        self._db.conn().executescript(_FILES + _TOMBSTONES)
        self.path = self._db.path
        self._migrate()

    def _migrate(self) -> None:
        with self._write() as conn:
            for table, columns in _ADDED_COLUMNS.items():
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in present:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def _write(self) -> Transaction:
        return self._db.write()

    # --- reads ---
    def get_file(self, project: str, filename: str) -> FileRecord | None:
        row = (
            self._conn()
            .execute(f"{_SELECT} WHERE {_KEY}", (self.index, project, filename))
            .fetchone()
        )
        return FileRecord(*row) if row else None

    def list_files(self, project: str) -> list[FileRecord]:
        rows = self._conn().execute(
            f"{_SELECT} WHERE idx = ? AND project = ? ORDER BY filename", (self.index, project)
        )
        return [FileRecord(*row) for row in rows]

    def list_projects(self) -> list[ProjectSummary]:
        """Every project, kept until the files change: the query aggregates every file of
        the index, and ``/simple/`` and the web UI ask for it on each request."""
        changes = self._db.version()  # before the query: a commit after it moves it again
        cached = getattr(self._local, "projects", None)
        if cached is not None and cached[0] == changes:
            return list(cached[1])
        # SQLite takes the bare columns from the row holding MAX(upload_time).
        rows = self._conn().execute(
            "SELECT project, display_name, MAX(upload_time), COUNT(*), summary FROM files "
            "WHERE idx = ? GROUP BY project ORDER BY project",
            (self.index,),
        )
        projects = [
            ProjectSummary(name, display or name, last, count, summary)
            for name, display, last, count, summary in rows
        ]
        self._local.projects = (changes, projects)
        return list(projects)

    # --- writes ---
    def add_file(self, record: FileRecord, *, overwrite: bool = False) -> None:
        with self._write() as conn:
            try:
                conn.execute(_UPSERT if overwrite else _INSERT, (self.index, *astuple(record)))
            except sqlite3.IntegrityError:
                raise Conflict(f"File {record.filename!r} already exists.") from None
            conn.execute(
                f"DELETE FROM tombstones WHERE {_KEY}",
                (self.index, record.project, record.filename),
            )

    def delete_file(self, project: str, filename: str) -> FileRecord | None:
        with self._write() as conn:
            existing = self.get_file(project, filename)
            if existing is not None:
                conn.execute(f"DELETE FROM files WHERE {_KEY}", (self.index, project, filename))
                conn.execute(
                    "INSERT INTO tombstones (idx, project, filename, sequencer, deleted_at, "
                    "sha256) VALUES (?, ?, ?, '', ?, ?) ON CONFLICT (idx, project, filename) "
                    "DO UPDATE SET deleted_at = excluded.deleted_at, sha256 = excluded.sha256",
                    (self.index, project, filename, time.time(), existing.sha256),
                )
            return existing

    def get_tombstone(self, project: str, filename: str) -> Tombstone | None:
        row = (
            self._conn()
            .execute(
                f"SELECT sequencer, deleted_at, sha256 FROM tombstones WHERE {_KEY}",
                (self.index, project, filename),
            )
            .fetchone()
        )
        return Tombstone(*row) if row else None

    def set_yanked(self, project: str, filename: str, reason: str | None) -> FileRecord:
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE files SET yanked = ? WHERE {_KEY}", (reason, self.index, project, filename)
            )
            if cur.rowcount == 0:
                raise NotFound(f"No file {filename!r} in project {project!r}.")
            record = self.get_file(project, filename)
            assert record is not None
            return record

    def _last_sequencer(self, conn: sqlite3.Connection, project: str, filename: str) -> str:
        key = (self.index, project, filename)
        row = conn.execute(
            f"SELECT sequencer FROM files WHERE {_KEY} "
            f"UNION ALL SELECT sequencer FROM tombstones WHERE {_KEY}",
            key + key,
        ).fetchall()
        return max((sequencer_key(r[0] or "") for r in row), default=sequencer_key(""))

    def sync_upsert(self, record: FileRecord, *, last_modified: float | None = None) -> bool:
        with self._write() as conn:
            if self._last_sequencer(conn, record.project, record.filename) >= sequencer_key(
                record.sequencer
            ):
                return False
            tombstone = self.get_tombstone(record.project, record.filename)
            if tombstone is not None and tombstone.hides(record.sha256, last_modified):
                return False
            existing = self.get_file(record.project, record.filename)
            if existing is not None and existing.sha256 == record.sha256:
                return False
            conn.execute(_UPSERT, (self.index, *astuple(record)))
            conn.execute(
                f"DELETE FROM tombstones WHERE {_KEY}",
                (self.index, record.project, record.filename),
            )
            return True

    def sync_delete(self, project: str, filename: str, sequencer: str) -> bool:
        with self._write() as conn:
            existing = self.get_file(project, filename)
            if existing is not None and sequencer_key(existing.sequencer) > sequencer_key(
                sequencer
            ):
                return False
            tomb = conn.execute(
                f"SELECT sequencer FROM tombstones WHERE {_KEY}", (self.index, project, filename)
            ).fetchone()
            if tomb is None or sequencer_key(tomb[0]) < sequencer_key(sequencer):
                conn.execute(
                    "INSERT INTO tombstones (idx, project, filename, sequencer) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (idx, project, filename) "
                    "DO UPDATE SET sequencer = excluded.sequencer",
                    (self.index, project, filename, sequencer),
                )
            if existing is None:
                return False
            conn.execute(f"DELETE FROM files WHERE {_KEY}", (self.index, project, filename))
            return True

    # --- leases ---
    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner, expires FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO leases (name, owner, expires) VALUES (?, ?, ?)",
                (name, owner, now + seconds),
            )
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    def health(self) -> None:
        self._conn().execute("SELECT 1").fetchone()
