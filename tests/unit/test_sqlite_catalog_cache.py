"""The SQLite catalog keeps its project list until the files change: whoever changes
them (this thread, another thread, another catalog on the file, another process), the
next list shows it."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stratus.adapters.sqlite_catalog import SqliteCatalog
from stratus.domain.models import FileRecord


def _record(project: str, filename: str | None = None) -> FileRecord:
    return FileRecord(
        project=project,
        filename=filename or f"{project}-1.0.tar.gz",
        version="1.0",
        sha256="a" * 64,
        size=1,
        upload_time=1.0,
    )


def _names(catalog: SqliteCatalog) -> list[tuple[str, int]]:
    return [(p.name, p.file_count) for p in catalog.list_projects()]


def test_own_writes_on_the_same_thread_are_seen(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "index.sqlite3")
    catalog.add_file(_record("one"))
    assert _names(catalog) == [("one", 1)]
    catalog.add_file(_record("one", "one-1.0-py3-none-any.whl"))
    catalog.add_file(_record("two"))
    assert _names(catalog) == [("one", 2), ("two", 1)]
    catalog.set_yanked("two", "two-1.0.tar.gz", "bad")  # a write that changes no count
    catalog.delete_file("one", "one-1.0.tar.gz")
    assert _names(catalog) == [("one", 1), ("two", 1)]


def test_writes_of_another_thread_are_seen(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "index.sqlite3")
    catalog.add_file(_record("one"))
    with ThreadPoolExecutor(1) as reader:  # one thread, one connection, its own cache
        assert reader.submit(_names, catalog).result() == [("one", 1)]
        catalog.add_file(_record("two"))  # this thread's connection
        assert reader.submit(_names, catalog).result() == [("one", 1), ("two", 1)]
        catalog.delete_file("one", "one-1.0.tar.gz")
        assert reader.submit(_names, catalog).result() == [("two", 1)]


def test_writes_of_another_catalog_and_another_process_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    catalog = SqliteCatalog(path)
    catalog.add_file(_record("one"))
    assert _names(catalog) == [("one", 1)]
    SqliteCatalog(path).add_file(_record("two"))
    assert _names(catalog) == [("one", 1), ("two", 1)]
    script = (
        "import sys; from stratus.adapters.sqlite_catalog import SqliteCatalog; "
        "SqliteCatalog(sys.argv[1]).delete_file('one', 'one-1.0.tar.gz')"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert _names(catalog) == [("two", 1)]


def test_a_caller_changing_its_list_changes_no_one_elses(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "index.sqlite3")
    catalog.add_file(_record("one"))
    catalog.list_projects().clear()  # the list just made
    catalog.list_projects().clear()  # the list kept
    assert _names(catalog) == [("one", 1)]
