"""One SQLite file shared by threads: a connection per thread, WAL, serialized writes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SqliteDatabase:
    def __init__(self, path: str | Path, schema: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self.conn().executescript(schema)

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def write(self) -> Transaction:
        """A serialized write transaction (BEGIN IMMEDIATE also guards other processes)."""
        return Transaction(self.conn(), self._write_lock, self._local)

    def version(self) -> tuple[int, int]:
        """What moves whenever the data may have changed, as this thread's connection sees
        it: SQLite's ``data_version`` counts the commits of other connections (other
        threads, other processes), and ``writes`` those of this connection (``write``)."""
        (version,) = self.conn().execute("PRAGMA data_version").fetchone()
        return version, getattr(self._local, "writes", 0)


class Transaction:
    def __init__(
        self, conn: sqlite3.Connection, lock: threading.Lock, local: threading.local
    ) -> None:
        self.conn = conn
        self.lock = lock
        self.local = local  # the connection's thread: counts its writes

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.local.writes = getattr(self.local, "writes", 0) + 1
            self.lock.release()
