"""Index files written before the index (``idx``) joined the keys open with their rows in
the default index, tombstones' API-delete fields included."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest

from stratus.adapters.sqlite_catalog import SqliteCatalog
from stratus.domain.models import FileRecord

_COLUMNS = [f.name for f in fields(FileRecord)]


def _old_file(path: Path, *, api_delete_columns: bool) -> None:
    extra = "deleted_at REAL, sha256 TEXT," if api_delete_columns else ""
    conn = sqlite3.connect(path)
    conn.executescript(
        f"CREATE TABLE files ({', '.join(_COLUMNS)}, PRIMARY KEY (project, filename)) "
        "WITHOUT ROWID;"
        "CREATE TABLE tombstones (project TEXT NOT NULL, filename TEXT NOT NULL, "
        f"sequencer TEXT NOT NULL, {extra} PRIMARY KEY (project, filename)) WITHOUT ROWID;"
    )
    values = dict.fromkeys(_COLUMNS)
    values.update(
        project="demo",
        filename="demo-2.0.tar.gz",
        version="2.0",
        sha256="b" * 64,
        size=1,
        upload_time=2.0,
        display_name="Demo",
        summary="the summary",
    )
    conn.execute(
        f"INSERT INTO files ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
        [values[c] for c in _COLUMNS],
    )
    if api_delete_columns:
        conn.execute(
            "INSERT INTO tombstones VALUES ('demo', 'demo-1.0.tar.gz', '', 5.0, ?)", ("a" * 64,)
        )
    else:
        conn.execute("INSERT INTO tombstones VALUES ('demo', 'demo-1.0.tar.gz', '0A')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("api_delete_columns", [False, True])
def test_old_index_files_move_into_the_default_index(
    tmp_path: Path, api_delete_columns: bool
) -> None:
    path = tmp_path / "index.sqlite3"
    _old_file(path, api_delete_columns=api_delete_columns)
    catalog = SqliteCatalog(path)
    assert [f.filename for f in catalog.list_files("demo")] == ["demo-2.0.tar.gz"]
    assert [(p.name, p.summary) for p in catalog.list_projects()] == [("demo", "the summary")]
    tombstone = catalog.get_tombstone("demo", "demo-1.0.tar.gz")
    assert tombstone is not None
    if api_delete_columns:
        assert (tombstone.deleted_at, tombstone.sha256) == (5.0, "a" * 64)
    else:
        assert (tombstone.sequencer, tombstone.deleted_at, tombstone.sha256) == ("0A", None, None)
    assert SqliteCatalog(path, index="team/other").list_projects() == []
    catalog.delete_file("demo", "demo-2.0.tar.gz")  # the upgraded tables take new tombstones
    assert catalog.get_tombstone("demo", "demo-2.0.tar.gz").sha256 == "b" * 64  # type: ignore[union-attr]
