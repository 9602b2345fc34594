"""PageCache on SQLite (local mode): one row per cached upstream page.

A page is one row (its compressed form, ``domain.upstream.encode_page``), replaced in one
statement, so a reader never sees half of one. (Local mode has no fill locks: a fill
streams in the request that needs it, ``wiring.fallback_local``.)
"""

from __future__ import annotations

from pathlib import Path

from ..domain.upstream import UpstreamPage, decode_page, encode_page
from .sqlite_db import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS upstream_pages (
    mirror TEXT NOT NULL,
    project TEXT NOT NULL,
    checked_at REAL NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (mirror, project)
) WITHOUT ROWID;
"""


class SqlitePageCache:
    def __init__(self, path: str | Path, *, mirror: str) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)
        self.mirror = mirror

    def get(self, project: str) -> UpstreamPage | None:
        row = (
            self._db.conn()
            .execute(
                "SELECT checked_at, body FROM upstream_pages WHERE mirror = ? AND project = ?",
                (self.mirror, project),
            )
            .fetchone()
        )
        if row is None:
            return None
        return decode_page(row[1]).checked(row[0])

    def put(self, page: UpstreamPage) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO upstream_pages VALUES (?, ?, ?, ?)",
                (self.mirror, page.project, page.checked_at, encode_page(page)),
            )

    def mark_checked(self, project: str, checked_at: float) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE upstream_pages SET checked_at = ? WHERE mirror = ? AND project = ?",
                (checked_at, self.mirror, project),
            )

    def health(self) -> None:
        self._db.conn().execute("SELECT 1").fetchone()
