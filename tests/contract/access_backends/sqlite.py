"""The SQLite access backend (local mode), holding the sample."""

from __future__ import annotations

from stratus.adapters.sqlite_access import SqliteAccess

from .mutable_sample import populate


def build_empty(request, tmp_path):
    return SqliteAccess(tmp_path / "access.sqlite3")


def build(request, tmp_path):
    return populate(build_empty(request, tmp_path))
