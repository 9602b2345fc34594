"""Mutable access control on SQLite, for local mode (pypicloud's SQL access backend).

Its own tables, so the file may be the local index file or one of its own. WAL journal,
one connection per thread, writes serialized (``BEGIN IMMEDIATE``) like ``SqliteCatalog``.
Every change that touches several rows (deleting a user or a group with everything that
refers to it, a membership with its group) is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..domain import passwords
from ..domain.errors import Conflict, NotFound
from ..domain.permissions import (
    EMPTY_ACL,
    PackageAcl,
    acls_from_entries,
    check_permission_args,
    perm_string,
)
from ..ports import TokenRecord, UserInfo
from .sqlite_db import SqliteDatabase, Transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_groups (
    name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_members (
    groupname TEXT NOT NULL,
    username TEXT NOT NULL,
    PRIMARY KEY (groupname, username)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS access_members_by_user ON access_members (username);
CREATE TABLE IF NOT EXISTS access_permissions (
    project TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    name TEXT NOT NULL,
    perms TEXT NOT NULL CHECK (perms IN ('r', 'w', 'rw')),
    PRIMARY KEY (project, kind, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS access_permissions_by_name ON access_permissions (kind, name);
CREATE TABLE IF NOT EXISTS access_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_tokens (
    token_id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    projects TEXT,
    capabilities TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS access_tokens_by_user ON access_tokens (username);
"""


class SqliteAccess:
    """The MutableAccessBackend port on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self._db = SqliteDatabase(path, _SCHEMA)
        self.path = self._db.path
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns newer versions use to a file made by an older one."""
        with self._write() as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(access_tokens)")}
            if "capabilities" not in columns:
                conn.execute("ALTER TABLE access_tokens ADD COLUMN capabilities TEXT")

    def __repr__(self) -> str:
        return f"SqliteAccess({self.path!r})"

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def _write(self) -> Transaction:
        return self._db.write()

    def _user_row(
        self, username: str, conn: sqlite3.Connection | None = None
    ) -> tuple[str, int, int] | None:
        return (
            (conn or self._conn())
            .execute(
                "SELECT password_hash, admin, pending FROM access_users WHERE username = ?",
                (username,),
            )
            .fetchone()
        )

    # --- AccessBackend ---
    def verify_user(self, username: str, password: str) -> bool:
        row = self._user_row(username)
        stored = row[0] if row is not None and not row[2] else None
        # Unknown and pending users still pay one (dummy) verification: same timing.
        return passwords.verify(password, stored)

    def groups(self, username: str) -> frozenset[str]:
        rows = self._conn().execute(
            "SELECT groupname FROM access_members WHERE username = ?", (username,)
        )
        return frozenset(r[0] for r in rows)

    def is_admin(self, username: str) -> bool:
        row = self._user_row(username)
        return row is not None and bool(row[1]) and not row[2]

    def package_acl(self, project: str) -> PackageAcl:
        rows = self._conn().execute(
            "SELECT kind, name, perms FROM access_permissions WHERE project = ?", (project,)
        )
        users: dict[str, frozenset[str]] = {}
        groups: dict[str, frozenset[str]] = {}
        for kind, name, perms in rows:
            (users if kind == "user" else groups)[name] = frozenset(perms)
        if not users and not groups:
            return EMPTY_ACL
        return PackageAcl(users, groups)

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        """One SELECT of every permission row (as many rows as ACL entries, not projects)."""
        rows = self._conn().execute("SELECT project, kind, name, perms FROM access_permissions")
        return acls_from_entries(projects, rows)

    def health(self) -> None:
        self._conn().execute("SELECT 1 FROM access_settings LIMIT 1").fetchall()

    # --- AccessDirectory ---
    def list_users(self) -> list[UserInfo]:
        rows = self._conn().execute(
            "SELECT username, admin FROM access_users WHERE pending = 0 ORDER BY username"
        )
        return [UserInfo(username=name, admin=bool(admin)) for name, admin in rows]

    def get_user(self, username: str) -> UserInfo | None:
        row = self._user_row(username)
        if row is None or row[2]:
            return None
        return UserInfo(username=username, admin=bool(row[1]), groups=sorted(self.groups(username)))

    def list_groups(self) -> list[str]:
        rows = self._conn().execute("SELECT name FROM access_groups ORDER BY name")
        return [r[0] for r in rows]

    def group_members(self, group: str) -> list[str]:
        conn = self._conn()
        if conn.execute("SELECT 1 FROM access_groups WHERE name = ?", (group,)).fetchone() is None:
            raise NotFound(f"No group {group!r}.")
        rows = conn.execute(
            "SELECT username FROM access_members WHERE groupname = ? ORDER BY username", (group,)
        )
        return [r[0] for r in rows]

    def _package_permissions(self, kind: str, name: str) -> dict[str, frozenset[str]]:
        rows = self._conn().execute(
            "SELECT project, perms FROM access_permissions WHERE kind = ? AND name = ?",
            (kind, name),
        )
        return {project: frozenset(perms) for project, perms in rows}

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        return self._package_permissions("user", username)

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]:
        return self._package_permissions("group", group)

    # --- users ---
    def create_user(
        self, username: str, password_hash: str, *, admin: bool = False, pending: bool = False
    ) -> None:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO access_users (username, password_hash, admin, pending) "
                    "VALUES (?, ?, ?, ?)",
                    (username, password_hash, int(admin), int(pending)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"User {username!r} already exists.") from None

    def delete_user(self, username: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM access_users WHERE username = ?", (username,))
            conn.execute("DELETE FROM access_members WHERE username = ?", (username,))
            conn.execute(
                "DELETE FROM access_permissions WHERE kind = 'user' AND name = ?", (username,)
            )
            conn.execute("DELETE FROM access_tokens WHERE username = ?", (username,))

    def get_password_hash(self, username: str) -> str | None:
        row = self._user_row(username)
        return None if row is None else row[0]

    def _update_user(self, username: str, column: str, value: object) -> None:
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE access_users SET {column} = ? WHERE username = ?", (value, username)
            )
            if cur.rowcount == 0:
                raise NotFound(f"No user {username!r}.")

    def set_password_hash(self, username: str, password_hash: str) -> None:
        self._update_user(username, "password_hash", password_hash)

    def set_admin(self, username: str, admin: bool) -> None:
        self._update_user(username, "admin", int(admin))

    def pending_users(self) -> list[str]:
        rows = self._conn().execute(
            "SELECT username FROM access_users WHERE pending = 1 ORDER BY username"
        )
        return [r[0] for r in rows]

    def approve_user(self, username: str) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE access_users SET pending = 0 WHERE username = ? AND pending = 1",
                (username,),
            )
            if cur.rowcount == 0:
                raise NotFound(f"No pending user {username!r}.")

    _HAS_ADMIN = "SELECT 1 FROM access_users WHERE admin = 1 AND pending = 0 LIMIT 1"

    def has_admin(self) -> bool:
        return self._conn().execute(self._HAS_ADMIN).fetchone() is not None

    def create_first_admin(self, username: str, password_hash: str) -> bool:
        # One write transaction (BEGIN IMMEDIATE): the check and the insert are atomic
        # for every thread and process using the file.
        with self._write() as conn:
            if conn.execute(self._HAS_ADMIN).fetchone() is not None:
                return False
            try:
                conn.execute(
                    "INSERT INTO access_users (username, password_hash, admin, pending) "
                    "VALUES (?, ?, 1, 0)",
                    (username, password_hash),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"User {username!r} already exists.") from None
            return True

    # --- groups ---
    def create_group(self, group: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO access_groups (name) VALUES (?)", (group,))

    def delete_group(self, group: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM access_groups WHERE name = ?", (group,))
            conn.execute("DELETE FROM access_members WHERE groupname = ?", (group,))
            conn.execute(
                "DELETE FROM access_permissions WHERE kind = 'group' AND name = ?", (group,)
            )

    def add_member(self, username: str, group: str) -> None:
        with self._write() as conn:
            if self._user_row(username, conn) is None:
                raise NotFound(f"No user {username!r}.")
            conn.execute("INSERT OR IGNORE INTO access_groups (name) VALUES (?)", (group,))
            conn.execute(
                "INSERT OR IGNORE INTO access_members (groupname, username) VALUES (?, ?)",
                (group, username),
            )

    def remove_member(self, username: str, group: str) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM access_members WHERE groupname = ? AND username = ?",
                (group, username),
            )

    # --- package permissions ---
    def set_permission(self, project: str, kind: str, name: str, perm: str, granted: bool) -> None:
        check_permission_args(kind, perm)
        with self._write() as conn:
            row = conn.execute(
                "SELECT perms FROM access_permissions WHERE project = ? AND kind = ? AND name = ?",
                (project, kind, name),
            ).fetchone()
            current = set(row[0]) if row is not None else set()
            updated = current | {perm} if granted else current - {perm}
            if updated == current:
                return
            if updated:
                conn.execute(
                    "INSERT OR REPLACE INTO access_permissions (project, kind, name, perms) "
                    "VALUES (?, ?, ?, ?)",
                    (project, kind, name, perm_string(updated)),
                )
            else:
                conn.execute(
                    "DELETE FROM access_permissions WHERE project = ? AND kind = ? AND name = ?",
                    (project, kind, name),
                )

    # --- registration ---
    def allow_register(self) -> bool:
        row = (
            self._conn()
            .execute("SELECT value FROM access_settings WHERE key = 'allow_register'")
            .fetchone()
        )
        return row is not None and row[0] == "true"

    def set_allow_register(self, allow: bool) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO access_settings (key, value) VALUES ('allow_register', ?)",
                ("true" if allow else "false",),
            )

    # --- API tokens ---
    def add_token(self, token: TokenRecord, *, external_user: bool = False) -> None:
        """Raise ``NotFound`` unless the user exists (or is ``external_user``), ``Conflict``
        for a taken token_id."""
        with self._write() as conn:
            if not external_user and self._user_row(token.username, conn) is None:
                raise NotFound(f"No user {token.username!r}.")
            try:
                conn.execute(
                    "INSERT INTO access_tokens (token_id, username, name, secret_sha256, "
                    "created, expires, projects, capabilities) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        token.token_id,
                        token.username,
                        token.name,
                        token.secret_sha256,
                        token.created,
                        token.expires,
                        None if token.projects is None else json.dumps(list(token.projects)),
                        None
                        if token.capabilities is None
                        else json.dumps(list(token.capabilities)),
                    ),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"Token {token.token_id!r} already exists.") from None

    _TOKEN_COLUMNS = (
        "token_id, username, name, secret_sha256, created, expires, projects, capabilities"
    )

    @staticmethod
    def _token(row: tuple) -> TokenRecord:
        token_id, username, name, secret, created, expires, projects, capabilities = row
        return TokenRecord(
            token_id=token_id,
            username=username,
            name=name,
            secret_sha256=secret,
            created=created,
            expires=expires,
            projects=None if projects is None else json.loads(projects),
            capabilities=None if capabilities is None else json.loads(capabilities),
        )

    def get_token(self, token_id: str) -> TokenRecord | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {self._TOKEN_COLUMNS} FROM access_tokens WHERE token_id = ?", (token_id,)
            )
            .fetchone()
        )
        return None if row is None else self._token(row)

    def list_tokens(self, username: str) -> list[TokenRecord]:
        """The user's tokens, oldest first."""
        rows = self._conn().execute(
            f"SELECT {self._TOKEN_COLUMNS} FROM access_tokens WHERE username = ? "
            "ORDER BY created, token_id",
            (username,),
        )
        return [self._token(row) for row in rows]

    def delete_token(self, token_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM access_tokens WHERE token_id = ?", (token_id,))
