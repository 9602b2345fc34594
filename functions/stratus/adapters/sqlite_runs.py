"""Reconcile run statuses in SQLite (local mode: next to the index)."""

from __future__ import annotations

import time
from pathlib import Path

from ..domain.runs import KEEP_SECONDS, RunStatus
from .sqlite_db import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reconcile_runs (
    run_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class SqliteReconcileRuns:
    def __init__(self, path: str | Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)

    def save(self, run: RunStatus) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM reconcile_runs WHERE expires_at < ?", (time.time(),))
            conn.execute(
                "INSERT OR REPLACE INTO reconcile_runs (run_id, doc, expires_at) VALUES (?, ?, ?)",
                (run.run_id, run.to_json(), run.updated + KEEP_SECONDS),
            )

    def get(self, run_id: str) -> RunStatus | None:
        row = (
            self._db.conn()
            .execute(
                "SELECT doc FROM reconcile_runs WHERE run_id = ? AND expires_at >= ?",
                (run_id, time.time()),
            )
            .fetchone()
        )
        return RunStatus.from_json(row[0]) if row else None
