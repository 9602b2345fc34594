"""Trusted publishing state on SQLite, for local mode: publishers, used jtis, minted tokens.

One file (``<data-dir>/oidc.sqlite3``), WAL, writes serialized like ``SqliteCatalog``.
Expired jtis and minted tokens are deleted by the next write of their table.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from ..domain.errors import Conflict, NotFound
from ..domain.oidc import TrustedPublisher
from ..ports import TokenRecord
from .sqlite_db import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oidc_publishers (
    project TEXT NOT NULL,
    publisher_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    claims TEXT NOT NULL,
    lookup TEXT NOT NULL,
    pending INTEGER NOT NULL,
    created REAL NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (project, publisher_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS oidc_publishers_by_lookup ON oidc_publishers (issuer, lookup);
CREATE TABLE IF NOT EXISTS oidc_jtis (
    key TEXT PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS oidc_jtis_by_expiry ON oidc_jtis (expires);
CREATE TABLE IF NOT EXISTS oidc_tokens (
    token_id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    projects TEXT NOT NULL,
    claims TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS oidc_tokens_by_expiry ON oidc_tokens (expires);
"""
_PUBLISHER_COLUMNS = "project, publisher_id, issuer, claims, lookup, pending, created, created_by"
_TOKEN_COLUMNS = "token_id, username, name, secret_sha256, created, expires, projects"


def _publisher(row: tuple) -> TrustedPublisher:
    project, publisher_id, issuer, claims, lookup, pending, created, created_by = row
    return TrustedPublisher(
        publisher_id=publisher_id,
        project=project,
        issuer=issuer,
        claims=json.loads(claims),
        lookup=lookup,
        pending=bool(pending),
        created=created,
        created_by=created_by,
    )


class SqlitePublishers:
    """The TrustedPublishers, ReplayGuard and MintedTokens ports on one SQLite file."""

    def __init__(self, path: str | Path, *, clock=time.time) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)
        self.path = self._db.path
        self.clock = clock

    def __repr__(self) -> str:
        return f"SqlitePublishers({self.path!r})"

    # --- TrustedPublishers ---
    def add_publisher(self, publisher: TrustedPublisher) -> None:
        with self._db.write() as conn:
            try:
                conn.execute(
                    f"INSERT INTO oidc_publishers ({_PUBLISHER_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        publisher.project,
                        publisher.publisher_id,
                        publisher.issuer,
                        json.dumps(dict(publisher.claims), sort_keys=True),
                        publisher.lookup,
                        int(publisher.pending),
                        publisher.created,
                        publisher.created_by,
                    ),
                )
            except sqlite3.IntegrityError:
                raise Conflict(
                    f"Project {publisher.project!r} has this publisher already."
                ) from None

    def get_publisher(self, project: str, publisher_id: str) -> TrustedPublisher | None:
        row = (
            self._db.conn()
            .execute(
                f"SELECT {_PUBLISHER_COLUMNS} FROM oidc_publishers "
                "WHERE project = ? AND publisher_id = ?",
                (project, publisher_id),
            )
            .fetchone()
        )
        return None if row is None else _publisher(row)

    def list_publishers(self, project: str) -> list[TrustedPublisher]:
        rows = self._db.conn().execute(
            f"SELECT {_PUBLISHER_COLUMNS} FROM oidc_publishers WHERE project = ? "
            "ORDER BY publisher_id",
            (project,),
        )
        return [_publisher(row) for row in rows]

    def find_publishers(self, issuer: str, lookup: str) -> list[TrustedPublisher]:
        rows = self._db.conn().execute(
            f"SELECT {_PUBLISHER_COLUMNS} FROM oidc_publishers WHERE issuer = ? AND lookup = ? "
            "ORDER BY project, publisher_id",
            (issuer, lookup),
        )
        return [_publisher(row) for row in rows]

    def activate_publisher(self, project: str, publisher_id: str) -> None:
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE oidc_publishers SET pending = 0 WHERE project = ? AND publisher_id = ?",
                (project, publisher_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No publisher {publisher_id!r} for project {project!r}.")

    def delete_publisher(self, project: str, publisher_id: str) -> TrustedPublisher | None:
        with self._db.write() as conn:
            existing = self.get_publisher(project, publisher_id)
            if existing is not None:
                conn.execute(
                    "DELETE FROM oidc_publishers WHERE project = ? AND publisher_id = ?",
                    (project, publisher_id),
                )
            return existing

    # --- ReplayGuard ---
    def first_use(self, key: str, expires: float, *, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        with self._db.write() as conn:
            conn.execute("DELETE FROM oidc_jtis WHERE expires <= ?", (now,))
            try:
                conn.execute(
                    "INSERT INTO oidc_jtis (key, expires) VALUES (?, ?)", (key, math.ceil(expires))
                )
            except sqlite3.IntegrityError:
                return False
            return True

    # --- MintedTokens ---
    def add_minted_token(self, record: TokenRecord, claims: Mapping[str, str]) -> None:
        if record.expires is None:
            raise ValueError("a minted token must expire")
        with self._db.write() as conn:
            conn.execute("DELETE FROM oidc_tokens WHERE expires <= ?", (self.clock(),))
            try:
                conn.execute(
                    f"INSERT INTO oidc_tokens ({_TOKEN_COLUMNS}, claims) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.token_id,
                        record.username,
                        record.name,
                        record.secret_sha256,
                        record.created,
                        record.expires,
                        json.dumps(list(record.projects or ())),
                        json.dumps(dict(claims), sort_keys=True),
                    ),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"Token {record.token_id!r} already exists.") from None

    def get_minted_token(self, token_id: str) -> TokenRecord | None:
        row = (
            self._db.conn()
            .execute(
                f"SELECT {_TOKEN_COLUMNS} FROM oidc_tokens "
                "WHERE token_id = ? AND expires > ? AND secret_sha256 != ''",
                (token_id, self.clock()),
            )
            .fetchone()
        )
        if row is None:
            return None
        token_id, username, name, secret, created, expires, projects = row
        return TokenRecord(
            token_id=token_id,
            username=username,
            name=name,
            secret_sha256=secret,
            created=created,
            expires=expires,
            projects=json.loads(projects),
            upload_only=True,
        )

    def minted_token_claims(self, token_id: str) -> dict[str, str] | None:
        row = (
            self._db.conn()
            .execute("SELECT claims FROM oidc_tokens WHERE token_id = ?", (token_id,))
            .fetchone()
        )
        return None if row is None else json.loads(row[0])

    def revoke_minted_token(self, token_id: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE oidc_tokens SET secret_sha256 = '' WHERE token_id = ?", (token_id,)
            )

    def health(self) -> None:
        self._db.conn().execute("SELECT 1 FROM oidc_jtis LIMIT 1").fetchall()
