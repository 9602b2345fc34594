"""PageCache and FillLocks on SQLite (local mode): one row per cached upstream page.

A page is one row (its compressed form, ``domain.upstream.encode_page``), replaced in one
statement, so a reader never sees half of one. Locks are rows with an expiry.
"""

from __future__ import annotations

import time
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
CREATE TABLE IF NOT EXISTS fill_locks (
    key TEXT PRIMARY KEY,
    expires REAL NOT NULL
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


class SqliteFillLocks:
    def __init__(self, path: str | Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)

    def acquire(self, key: str, ttl_seconds: float) -> bool:
        now = time.time()
        with self._db.write() as conn:
            cur = conn.execute(
                "INSERT INTO fill_locks VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires "
                "WHERE fill_locks.expires <= ?",
                (key, now + ttl_seconds, now),
            )
            return cur.rowcount == 1

    def release(self, key: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM fill_locks WHERE key = ?", (key,))
