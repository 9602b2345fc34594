"""OriginStore on SQLite (local mode): one row per (index, project) with its controls."""

from __future__ import annotations

from pathlib import Path

from ..domain.indexes import DEFAULT_INDEX, check_index_name
from ..domain.origins import OriginControls
from .sqlite_db import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS origins (
    idx TEXT NOT NULL,
    project TEXT NOT NULL,
    upstream TEXT NOT NULL,
    publish TEXT NOT NULL,
    set_by TEXT NOT NULL,
    PRIMARY KEY (idx, project)
) WITHOUT ROWID;
"""
_UPSERT = "INSERT OR REPLACE INTO origins VALUES (?, ?, ?, ?, ?)"


class SqliteOrigins:
    def __init__(self, path: str | Path, *, index: str = DEFAULT_INDEX) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)
        self.index = check_index_name(index)

    def get(self, project: str) -> OriginControls | None:
        row = (
            self._db.conn()
            .execute(
                "SELECT upstream, publish, set_by FROM origins WHERE idx = ? AND project = ?",
                (self.index, project),
            )
            .fetchone()
        )
        return None if row is None else OriginControls(*row)

    def _row(self, project: str, c: OriginControls) -> tuple[str, ...]:
        return (self.index, project, c.upstream, c.publish, c.set_by)

    def put(self, project: str, controls: OriginControls) -> None:
        with self._db.write() as conn:
            conn.execute(_UPSERT, self._row(project, controls))

    def claim(self, project: str, controls: OriginControls) -> OriginControls:
        with self._db.write() as conn:
            conn.execute(_UPSERT.replace("OR REPLACE", "OR IGNORE"), self._row(project, controls))
        stored = self.get(project)
        assert stored is not None  # rows are never deleted
        return stored
