"""Upload sessions on SQLite (local mode): one row per session, expired rows swept on create."""

from __future__ import annotations

import time
from dataclasses import astuple, fields, replace
from pathlib import Path

from ..domain.errors import Conflict
from ..ports import UploadSession
from .sqlite_db import SqliteDatabase

_COLUMNS = [f.name for f in fields(UploadSession)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS upload_sessions (
    {", ".join(_COLUMNS)},
    PRIMARY KEY (session_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS upload_sessions_expires ON upload_sessions (expires);
"""
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM upload_sessions WHERE session_id = ?"
_INSERT = (
    f"INSERT INTO upload_sessions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_UPDATE = (
    "UPDATE upload_sessions SET "
    + ", ".join(f"{name} = ?" for name in _COLUMNS if name != "session_id")
    + " WHERE session_id = ? AND revision = ?"
)


class SqliteUploadSessions:
    def __init__(self, path: str | Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)
        self.path = self._db.path

    def create(self, session: UploadSession) -> None:
        import sqlite3

        with self._db.write() as conn:
            conn.execute("DELETE FROM upload_sessions WHERE expires < ?", (time.time(),))
            try:
                conn.execute(_INSERT, astuple(session))
            except sqlite3.IntegrityError:
                raise Conflict(f"Upload session {session.session_id!r} exists.") from None

    def get(self, session_id: str, *, now: float | None = None) -> UploadSession | None:
        row = self._db.conn().execute(_SELECT, (session_id,)).fetchone()
        if row is None:
            return None
        session = UploadSession(*row)
        return None if session.expires < (time.time() if now is None else now) else session

    def update(self, session: UploadSession) -> UploadSession:
        stored = replace(session, revision=session.revision + 1)
        values = [getattr(stored, name) for name in _COLUMNS if name != "session_id"]
        with self._db.write() as conn:
            cursor = conn.execute(_UPDATE, (*values, session.session_id, session.revision))
            if cursor.rowcount != 1:
                raise Conflict(f"Upload session {session.session_id!r} changed meanwhile.")
        return stored

    def delete(self, session_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM upload_sessions WHERE session_id = ?", (session_id,))
