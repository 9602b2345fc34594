"""The Catalog port's contract: every adapter passes every test here.

Semantics beyond the docstrings of ``stratus.ports.Catalog`` that this suite fixes:
``ProjectSummary.last_modified`` is the newest ``upload_time`` of the project's current
files; ``display_name`` is the last added file's non-empty ``display_name``, else the
normalized name; ``file_count`` counts files (never tombstones).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.domain.errors import Conflict, NotFound
from stratus.domain.models import FileRecord, ProjectSummary
from stratus.ports import Catalog
from tests.support.concurrency import run_concurrently

THREADS = 8
TRIALS = 5  # keys per concurrency test: each is a fresh race


def open_catalog(request: pytest.FixtureRequest, tmp_path: Path, **kwargs: str) -> Catalog:
    """The backend of the ``catalog`` fixture, on its store, with ``kwargs`` (``index``)."""
    if request.node.callspec.params["catalog"] == "sqlite":
        from stratus.adapters.sqlite_catalog import SqliteCatalog

        return SqliteCatalog(tmp_path / "index.sqlite3", **kwargs)
    from stratus.adapters.dynamo_catalog import DynamoCatalog

    return DynamoCatalog(request.getfixturevalue("dynamo_table"), **kwargs)


@pytest.fixture(params=["sqlite", "dynamo"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    yield open_catalog(request, tmp_path)


def record(
    filename: str = "demo-1.0.tar.gz",
    project: str = "demo",
    *,
    sha: str = "a",
    upload_time: float = 1_700_000_000.0,
    **changes: object,
) -> FileRecord:
    base = FileRecord(
        project=project,
        filename=filename,
        version=changes.pop("version", "1.0"),  # type: ignore[arg-type]
        sha256=sha * 64 if len(sha) == 1 else sha,
        size=1234,
        upload_time=upload_time,
        display_name=changes.pop("display_name", "Demo"),  # type: ignore[arg-type]
    )
    return base.with_changes(**changes) if changes else base


def test_is_a_catalog(catalog: Catalog) -> None:
    assert isinstance(catalog, Catalog)


# --- add / get / list ------------------------------------------------------------------


def test_add_then_get_round_trips_every_field(catalog: Catalog) -> None:
    full = record(
        "Demo_Pkg-2.0-py3-none-any.whl",
        project="demo-pkg",
        version="2.0",
        display_name="Demo_Pkg",
        packagetype="bdist_wheel",
        requires_python=">=3.9",
        summary="A demo package, with ünïcode",
        metadata_sha256="b" * 64,
        yanked="broken build",
        uploader="alice",
        md5="c" * 32,
        blake2_256="d" * 64,
        sequencer="0055AED6DCD90281E5",
        upload_time=1_700_000_123.456789,
    )
    catalog.add_file(full)
    assert catalog.get_file("demo-pkg", "Demo_Pkg-2.0-py3-none-any.whl") == full


def test_optional_fields_round_trip_as_none_and_empty(catalog: Catalog) -> None:
    bare = record(display_name="", yanked="")
    catalog.add_file(bare)
    got = catalog.get_file("demo", bare.filename)
    assert got == bare
    assert got is not None and got.yanked == "" and got.requires_python is None


def test_get_missing_file_is_none(catalog: Catalog) -> None:
    assert catalog.get_file("demo", "demo-1.0.tar.gz") is None
    catalog.add_file(record())
    assert catalog.get_file("demo", "demo-2.0.tar.gz") is None
    assert catalog.get_file("other", "demo-1.0.tar.gz") is None


def test_list_files_sorted_by_filename_and_scoped_to_the_project(catalog: Catalog) -> None:
    names = ["demo-1.10.tar.gz", "demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-1.2.zip"]
    for name in names:
        catalog.add_file(record(name))
    catalog.add_file(record("demo_extra-1.0.tar.gz", project="demo-extra"))
    catalog.add_file(record("dem-1.0.tar.gz", project="dem"))
    assert [r.filename for r in catalog.list_files("demo")] == sorted(names)
    assert [r.filename for r in catalog.list_files("demo-extra")] == ["demo_extra-1.0.tar.gz"]
    assert catalog.list_files("nothing-here") == []


def test_list_files_returns_full_records(catalog: Catalog) -> None:
    one = record(yanked="why", requires_python=">=3.8", sequencer="1F")
    catalog.add_file(one)
    assert catalog.list_files("demo") == [one]


# --- list_projects ------------------------------------------------------------------------


def test_list_projects_empty(catalog: Catalog) -> None:
    assert catalog.list_projects() == []


def test_list_projects_sorted_with_display_name_counts_and_newest_upload(
    catalog: Catalog,
) -> None:
    catalog.add_file(record("zeta-1.0.tar.gz", project="zeta", display_name="Zeta"))
    catalog.add_file(record("Foo_Bar-1.0.tar.gz", project="foo-bar", display_name="Foo_Bar"))
    catalog.add_file(
        record("Foo_Bar-1.1.tar.gz", project="foo-bar", display_name="Foo_Bar", upload_time=50.0)
    )
    catalog.add_file(
        record("Foo_Bar-0.9.tar.gz", project="foo-bar", display_name="Foo_Bar", upload_time=10.0)
    )
    catalog.add_file(record("alpha-1.0.tar.gz", project="alpha", display_name="Alpha"))
    assert catalog.list_projects() == [
        ProjectSummary("alpha", "Alpha", 1_700_000_000.0, 1),
        ProjectSummary("foo-bar", "Foo_Bar", 1_700_000_000.0, 3),
        ProjectSummary("zeta", "Zeta", 1_700_000_000.0, 1),
    ]


def test_list_projects_display_name_falls_back_to_the_name(catalog: Catalog) -> None:
    catalog.add_file(record(display_name=""))
    assert [p.display_name for p in catalog.list_projects()] == ["demo"]


def test_list_projects_follows_deletes(catalog: Catalog) -> None:
    catalog.add_file(record("demo-1.0.tar.gz", upload_time=100.0))
    catalog.add_file(record("demo-2.0.tar.gz", upload_time=300.0))
    catalog.add_file(record("demo-1.5.tar.gz", upload_time=200.0))
    catalog.add_file(record("other-1.0.tar.gz", project="other", display_name="Other"))

    catalog.delete_file("demo", "demo-2.0.tar.gz")  # the newest: last_modified goes back
    assert catalog.list_projects()[0] == ProjectSummary("demo", "Demo", 200.0, 2)
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    assert catalog.list_projects()[0] == ProjectSummary("demo", "Demo", 200.0, 1)
    catalog.delete_file("demo", "demo-1.5.tar.gz")
    assert [p.name for p in catalog.list_projects()] == ["other"]
    assert catalog.list_files("demo") == []


def test_list_projects_summary_is_the_newest_uploads(catalog: Catalog) -> None:
    catalog.add_file(record("demo-1.0.tar.gz", summary="first", upload_time=100.0))
    catalog.add_file(record("demo-2.0.tar.gz", summary="newest", upload_time=300.0))
    catalog.add_file(record("demo-1.5.tar.gz", summary="backport", upload_time=200.0))
    catalog.add_file(record("other-1.0.tar.gz", project="other"))
    assert [(p.name, p.summary) for p in catalog.list_projects()] == [
        ("demo", "newest"),
        ("other", None),
    ]
    catalog.delete_file("demo", "demo-2.0.tar.gz")  # the newest goes: the next one's summary
    assert catalog.list_projects()[0].summary == "backport"
    catalog.delete_file("demo", "demo-1.0.tar.gz")  # not the newest: no change
    assert catalog.list_projects()[0].summary == "backport"
    catalog.add_file(record("demo-3.0.tar.gz", upload_time=400.0))  # newest, no summary
    assert catalog.list_projects()[0].summary is None


def test_project_comes_back_after_being_emptied(catalog: Catalog) -> None:
    catalog.add_file(record())
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    catalog.add_file(record("demo-2.0.tar.gz", upload_time=5.0))
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", 5.0, 1)]


def test_overwrite_keeps_the_count_and_follows_the_upload_time(catalog: Catalog) -> None:
    catalog.add_file(record("demo-1.0.tar.gz", upload_time=100.0))
    catalog.add_file(record("demo-2.0.tar.gz", upload_time=300.0))
    catalog.add_file(record("demo-2.0.tar.gz", upload_time=200.0, sha="e"), overwrite=True)
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", 200.0, 2)]


# --- conflicts and overwrite --------------------------------------------------------------


def test_duplicate_add_is_a_conflict_and_changes_nothing(catalog: Catalog) -> None:
    first = record(sha="a")
    catalog.add_file(first)
    with pytest.raises(Conflict):
        catalog.add_file(record(sha="b", upload_time=5.0))
    assert catalog.get_file("demo", first.filename) == first
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", first.upload_time, 1)]


def test_overwrite_replaces(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a", yanked="old"))
    replacement = record(sha="b", summary="new", upload_time=1_800_000_000.0)
    catalog.add_file(replacement, overwrite=True)
    assert catalog.get_file("demo", replacement.filename) == replacement
    assert catalog.list_files("demo") == [replacement]


def test_overwrite_of_a_missing_file_adds_it(catalog: Catalog) -> None:
    catalog.add_file(record(), overwrite=True)
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", 1_700_000_000.0, 1)]


def test_concurrent_adds_of_one_file_give_one_success(catalog: Catalog) -> None:
    candidates = [record(sha=f"{i:064x}") for i in range(THREADS)]
    results = run_concurrently(
        [lambda r=r: catalog.add_file(r) for r in candidates]  # type: ignore[misc]
    )
    winners = [c for c, res in zip(candidates, results, strict=True) if res is None]
    losers = [res for res in results if res is not None]
    assert len(winners) == 1
    assert len(losers) == THREADS - 1
    assert all(isinstance(e, Conflict) for e in losers), losers
    assert catalog.get_file("demo", "demo-1.0.tar.gz") == winners[0]
    assert [p.file_count for p in catalog.list_projects()] == [1]


def test_concurrent_adds_of_different_files_keep_the_count(catalog: Catalog) -> None:
    files = [record(f"demo-1.{i}.tar.gz", upload_time=float(i)) for i in range(THREADS)]
    results = run_concurrently(
        [lambda r=r: catalog.add_file(r) for r in files]  # type: ignore[misc]
    )
    assert results == [None] * THREADS
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", THREADS - 1.0, THREADS)]
    assert len(catalog.list_files("demo")) == THREADS


def test_concurrent_deletes_remove_the_project_once(catalog: Catalog) -> None:
    files = [record(f"demo-1.{i}.tar.gz") for i in range(4)]
    for f in files:
        catalog.add_file(f)
    results = run_concurrently(
        [lambda r=r: catalog.delete_file("demo", r.filename) for r in files * 2]  # type: ignore[misc]
    )
    removed = [r for r in results if isinstance(r, FileRecord)]
    assert sorted(r.filename for r in removed) == sorted(f.filename for f in files)
    assert results.count(None) == len(files)
    assert catalog.list_projects() == []


# --- delete ---------------------------------------------------------------------------------


def test_delete_returns_the_record_then_none(catalog: Catalog) -> None:
    one = record(yanked="x")
    catalog.add_file(one)
    assert catalog.delete_file("demo", one.filename) == one
    assert catalog.get_file("demo", one.filename) is None
    assert catalog.delete_file("demo", one.filename) is None
    assert catalog.delete_file("nothing", "nothing-1.0.tar.gz") is None


def test_delete_then_add_again(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a"))
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    again = record(sha="b")
    catalog.add_file(again)
    assert catalog.get_file("demo", "demo-1.0.tar.gz") == again


# --- yank -----------------------------------------------------------------------------------


def test_set_yanked_with_reason_empty_and_none(catalog: Catalog) -> None:
    one = record()
    catalog.add_file(one)

    got = catalog.set_yanked("demo", one.filename, "security issue")
    assert got == one.with_changes(yanked="security issue")
    assert catalog.get_file("demo", one.filename) == got

    got = catalog.set_yanked("demo", one.filename, "")
    assert got.yanked == "" and got.is_yanked
    assert catalog.get_file("demo", one.filename) == one.with_changes(yanked="")

    got = catalog.set_yanked("demo", one.filename, None)
    assert got == one
    assert catalog.list_files("demo") == [one]
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", one.upload_time, 1)]


def test_set_yanked_missing_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFound):
        catalog.set_yanked("demo", "demo-1.0.tar.gz", "x")
    catalog.add_file(record())
    with pytest.raises(NotFound):
        catalog.set_yanked("demo", "demo-9.0.tar.gz", None)
    assert [r.filename for r in catalog.list_files("demo")] == ["demo-1.0.tar.gz"]


# --- S3 event sync ----------------------------------------------------------------------------

# Sequencers of different lengths: only padded comparison (sequencer_key) orders them right.
S1, S2, S3, S4, S5 = "9F", "0A1", "1B2", "0000C3D", "2D4E5"


def test_sync_upsert_creates(catalog: Catalog) -> None:
    created = record(sequencer=S1)
    assert catalog.sync_upsert(created) is True
    assert catalog.get_file("demo", created.filename) == created
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", created.upload_time, 1)]


def test_sync_upsert_ignores_older_and_equal_sequencers(catalog: Catalog) -> None:
    stored = record(sha="b", sequencer=S3)
    assert catalog.sync_upsert(stored) is True
    assert catalog.sync_upsert(record(sha="a", sequencer=S2)) is False
    assert catalog.sync_upsert(record(sha="c", sequencer=S3)) is False
    assert catalog.get_file("demo", stored.filename) == stored


def test_sync_upsert_newer_replaces(catalog: Catalog) -> None:
    assert catalog.sync_upsert(record(sha="a", sequencer=S2)) is True
    newer = record(sha="b", sequencer=S3, upload_time=5.0)
    assert catalog.sync_upsert(newer) is True
    assert catalog.get_file("demo", newer.filename) == newer
    assert catalog.list_projects() == [ProjectSummary("demo", "Demo", 5.0, 1)]


def test_sync_upsert_same_sha_is_a_no_op(catalog: Catalog) -> None:
    uploaded = record(sha="a", uploader="alice", metadata_sha256="f" * 64)  # via the API
    catalog.add_file(uploaded)
    event = record(sha="a", sequencer=S2, uploader=None, upload_time=9.0)
    assert catalog.sync_upsert(event) is False
    assert catalog.get_file("demo", uploaded.filename) == uploaded


def test_sync_upsert_different_sha_replaces_an_api_upload(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a"))
    event = record(sha="b", sequencer=S1)
    assert catalog.sync_upsert(event) is True
    assert catalog.get_file("demo", event.filename) == event


def test_sync_delete_removes_and_drops_an_empty_project(catalog: Catalog) -> None:
    catalog.sync_upsert(record(sequencer=S1))
    assert catalog.sync_delete("demo", "demo-1.0.tar.gz", S2) is True
    assert catalog.get_file("demo", "demo-1.0.tar.gz") is None
    assert catalog.list_files("demo") == []
    assert catalog.list_projects() == []


def test_sync_delete_of_an_api_upload(catalog: Catalog) -> None:
    catalog.add_file(record())  # no sequencer: any removal event is newer
    assert catalog.sync_delete("demo", "demo-1.0.tar.gz", S1) is True
    assert catalog.get_file("demo", "demo-1.0.tar.gz") is None


def test_sync_delete_missing_is_false(catalog: Catalog) -> None:
    assert catalog.sync_delete("demo", "demo-1.0.tar.gz", S1) is False
    assert catalog.sync_delete("demo", "demo-1.0.tar.gz", S1) is False
    assert catalog.list_projects() == []
    assert catalog.list_files("demo") == []


def test_sync_delete_older_than_the_file_keeps_it(catalog: Catalog) -> None:
    stored = record(sequencer=S3)
    catalog.sync_upsert(stored)
    assert catalog.sync_delete("demo", stored.filename, S2) is False
    assert catalog.get_file("demo", stored.filename) == stored


def test_tombstone_blocks_an_older_create(catalog: Catalog) -> None:
    assert catalog.sync_delete("demo", "demo-1.0.tar.gz", S3) is False  # removal came first
    assert catalog.sync_upsert(record(sequencer=S2)) is False
    assert catalog.sync_upsert(record(sequencer=S3)) is False
    assert catalog.get_file("demo", "demo-1.0.tar.gz") is None
    assert catalog.list_files("demo") == []
    assert catalog.list_projects() == []
    newer = record(sequencer=S4)
    assert catalog.sync_upsert(newer) is True
    assert catalog.list_files("demo") == [newer]


def test_tombstones_stay_out_of_other_files(catalog: Catalog) -> None:
    catalog.add_file(record("demo-2.0.tar.gz"))
    catalog.sync_delete("demo", "demo-1.0.tar.gz", S3)
    assert [r.filename for r in catalog.list_files("demo")] == ["demo-2.0.tar.gz"]
    assert [p.file_count for p in catalog.list_projects()] == [1]


def test_older_removal_does_not_lower_a_tombstone(catalog: Catalog) -> None:
    catalog.sync_delete("demo", "demo-1.0.tar.gz", S4)
    catalog.sync_delete("demo", "demo-1.0.tar.gz", S2)
    assert catalog.sync_upsert(record(sequencer=S3)) is False


def test_add_file_clears_the_tombstone(catalog: Catalog) -> None:
    catalog.sync_upsert(record(sha="a", sequencer=S1))
    catalog.sync_delete("demo", "demo-1.0.tar.gz", S4)
    uploaded = record(sha="b")
    catalog.add_file(uploaded)  # the API uploads the file again
    assert catalog.get_file("demo", uploaded.filename) == uploaded
    catalog.delete_file("demo", uploaded.filename)
    # Without the tombstone of S4, an event older than S4 is no longer blocked.
    late = record(sha="c", sequencer=S2)
    assert catalog.sync_upsert(late) is True
    assert catalog.get_file("demo", late.filename) == late


# The life of one key in S3, in order: the state after the last event is the truth.
def _events(filename: str) -> list[tuple[str, FileRecord]]:
    return [
        ("put", record(filename, sha="1", sequencer=S1, upload_time=1.0)),
        ("del", record(filename, sequencer=S2)),
        ("put", record(filename, sha="2", sequencer=S3, upload_time=3.0)),
        ("put", record(filename, sha="3", sequencer=S4, upload_time=4.0)),
        ("del", record(filename, sequencer=S5)),
    ]


def _apply(catalog: Catalog, event: tuple[str, FileRecord]) -> bool:
    kind, rec = event
    if kind == "put":
        return catalog.sync_upsert(rec)
    return catalog.sync_delete(rec.project, rec.filename, rec.sequencer)


@pytest.mark.parametrize("ending", ["deleted", "created"])
def test_reordered_and_duplicated_events_converge(catalog: Catalog, ending: str) -> None:
    rng = random.Random(1234)
    expected: list[FileRecord] = []
    for trial in range(6):
        filename = f"demo-{trial}.0.tar.gz"
        events = _events(filename)
        if ending == "created":
            events = events[:-1]
            expected.append(events[-1][1])
        shuffled = events + rng.sample(events, 3)  # at least once, out of order
        rng.shuffle(shuffled)
        for event in shuffled:
            _apply(catalog, event)
    assert catalog.list_files("demo") == expected
    if expected:
        assert catalog.list_projects() == [ProjectSummary("demo", "Demo", 4.0, len(expected))]
    else:
        assert catalog.list_projects() == []


@pytest.mark.parametrize("ending", ["deleted", "created"])
def test_concurrent_events_on_one_key_do_not_regress(catalog: Catalog, ending: str) -> None:
    rng = random.Random(99)
    for trial in range(TRIALS):
        events = _events(f"demo-{trial}.0.tar.gz")
        if ending == "created":
            events = events[:-1]
        batch = events * 2
        rng.shuffle(batch)
        results = run_concurrently(
            [lambda e=e: _apply(catalog, e) for e in batch]  # type: ignore[misc]
        )
        assert not [r for r in results if isinstance(r, Exception)], results
    files = catalog.list_files("demo")
    if ending == "created":
        assert [(f.sha256, f.sequencer) for f in files] == [("3" * 64, S4)] * TRIALS
        assert catalog.list_projects() == [ProjectSummary("demo", "Demo", 4.0, TRIALS)]
    else:
        assert files == []
        assert catalog.list_projects() == []


# --- API deletes: tombstones that keep a surviving object from being listed again ---------


def test_delete_file_leaves_a_tombstone_with_time_and_sha(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a"))
    assert catalog.get_tombstone("demo", "demo-1.0.tar.gz") is None
    before = time.time()
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    tombstone = catalog.get_tombstone("demo", "demo-1.0.tar.gz")
    assert tombstone is not None
    assert tombstone.sha256 == "a" * 64
    assert tombstone.deleted_at is not None and before - 1 <= tombstone.deleted_at <= time.time()
    assert catalog.get_tombstone("demo", "demo-2.0.tar.gz") is None
    catalog.add_file(record(sha="b"))  # uploaded again: no tombstone any more
    assert catalog.get_tombstone("demo", "demo-1.0.tar.gz") is None


def test_sync_upsert_does_not_list_what_an_api_delete_removed(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a"))
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    deleted_at = catalog.get_tombstone("demo", "demo-1.0.tar.gz").deleted_at  # type: ignore[union-attr]
    leftover = record(sha="a", sequencer=S1)
    assert catalog.sync_upsert(leftover, last_modified=deleted_at - 60) is False
    assert catalog.sync_upsert(leftover, last_modified=None) is False
    assert catalog.list_files("demo") == []
    assert catalog.list_projects() == []
    # other bytes, or the same bytes written again well after the delete, are a new file
    copied_back = record(sha="a", sequencer=S2)
    assert catalog.sync_upsert(copied_back, last_modified=deleted_at + 60) is True
    assert catalog.list_files("demo") == [copied_back]


def test_sync_upsert_of_other_bytes_after_an_api_delete(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a"))
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    other = record(sha="b", sequencer=S1)
    assert catalog.sync_upsert(other, last_modified=1.0) is True
    assert catalog.list_files("demo") == [other]


def test_sync_delete_keeps_what_the_api_delete_recorded(catalog: Catalog) -> None:
    catalog.add_file(record(sha="a"))
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    recorded = catalog.get_tombstone("demo", "demo-1.0.tar.gz")
    assert catalog.sync_delete("demo", "demo-1.0.tar.gz", S3) is False  # the object's removal
    tombstone = catalog.get_tombstone("demo", "demo-1.0.tar.gz")
    assert tombstone is not None and recorded is not None
    assert (tombstone.sequencer, tombstone.deleted_at, tombstone.sha256) == (
        S3,
        recorded.deleted_at,
        recorded.sha256,
    )
    assert catalog.sync_upsert(record(sha="a", sequencer=S4), last_modified=0.0) is False


# --- leases -----------------------------------------------------------------------------------


def test_lease_is_exclusive_until_released(catalog: Catalog) -> None:
    assert catalog.acquire_lease("packages/demo/x", "one", 60) is True
    assert catalog.acquire_lease("packages/demo/x", "two", 60) is False
    assert catalog.acquire_lease("packages/demo/x", "one", 60) is True  # the holder renews
    assert catalog.acquire_lease("packages/demo/y", "two", 60) is True  # another name
    catalog.release_lease("packages/demo/x", "two")  # not the holder: no effect
    assert catalog.acquire_lease("packages/demo/x", "two", 60) is False
    catalog.release_lease("packages/demo/x", "one")
    assert catalog.acquire_lease("packages/demo/x", "two", 60) is True
    catalog.release_lease("packages/demo/nothing", "one")  # not held: no error


def test_an_expired_lease_can_be_taken(catalog: Catalog) -> None:
    assert catalog.acquire_lease("packages/demo/x", "crashed", 60) is True
    assert catalog.acquire_lease("packages/demo/x", "retry", 60) is False
    assert catalog.acquire_lease("packages/demo/x", "crashed", -1) is True  # now expired
    assert catalog.acquire_lease("packages/demo/x", "retry", 60) is True
    assert catalog.acquire_lease("packages/demo/x", "crashed", 60) is False


def test_concurrent_acquirers_of_a_lease_have_one_winner(catalog: Catalog) -> None:
    for trial in range(TRIALS):
        name = f"packages/demo/race-{trial}"
        results = run_concurrently(
            [
                lambda i=i, name=name: catalog.acquire_lease(name, f"owner-{i}", 60)  # type: ignore[misc]
                for i in range(THREADS)
            ]
        )
        assert sorted(results, key=str) == [False] * (THREADS - 1) + [True], results


# --- indexes -------------------------------------------------------------------------------


def test_indexes_on_one_store_are_separate(
    catalog: Catalog, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    other = open_catalog(request, tmp_path, index="team/other")
    explicit_default = open_catalog(request, tmp_path, index="default")
    catalog.add_file(record())
    other.add_file(record(sha="b"))  # the same key in another index: no conflict
    other.add_file(record("zeta-1.0.tar.gz", project="zeta", display_name="Zeta"))
    assert catalog.get_file("demo", "demo-1.0.tar.gz") == record()
    assert other.get_file("demo", "demo-1.0.tar.gz") == record(sha="b")
    assert [p.name for p in catalog.list_projects()] == ["demo"]
    assert [p.name for p in other.list_projects()] == ["demo", "zeta"]
    assert explicit_default.list_files("demo") == [record()]

    other.set_yanked("demo", "demo-1.0.tar.gz", "bad")
    assert catalog.get_file("demo", "demo-1.0.tar.gz").yanked is None  # type: ignore[union-attr]
    other.sync_delete("demo", "demo-1.0.tar.gz", "20")
    assert catalog.list_files("demo") == [record()]
    assert catalog.sync_upsert(record(sha="c", sequencer="10"))  # no tombstone from `other`
    assert other.delete_file("zeta", "zeta-1.0.tar.gz") is not None
    assert catalog.delete_file("zeta", "zeta-1.0.tar.gz") is None
    assert other.list_projects() == []


def test_api_delete_tombstones_are_per_index_and_leases_global(
    catalog: Catalog, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    other = open_catalog(request, tmp_path, index="team/other")
    catalog.add_file(record(sha="a"))
    other.add_file(record(sha="b", summary="theirs"))
    catalog.delete_file("demo", "demo-1.0.tar.gz")
    assert catalog.get_tombstone("demo", "demo-1.0.tar.gz").sha256 == "a" * 64  # type: ignore[union-attr]
    assert other.get_tombstone("demo", "demo-1.0.tar.gz") is None
    assert other.list_files("demo") == [record(sha="b", summary="theirs")]
    assert [(p.name, p.summary) for p in other.list_projects()] == [("demo", "theirs")]
    assert catalog.list_projects() == []
    assert catalog.acquire_lease("packages/demo/x", "one", 60) is True
    assert other.acquire_lease("packages/demo/x", "two", 60) is False  # storage keys are global


@pytest.mark.parametrize("name", ["", "Default", "a#b", "a/b/c", "-x", "x" * 64, "a b"])
def test_invalid_index_names_are_refused(
    name: str, catalog: Catalog, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="invalid index name"):
        open_catalog(request, tmp_path, index=name)


# --- health ---------------------------------------------------------------------------------


def test_health(catalog: Catalog) -> None:
    catalog.health()


def test_dynamo_health_raises_when_the_table_is_missing(dynamodb_endpoint: str) -> None:
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.domain.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable):
        DynamoCatalog("stratus-test-no-such-table").health()


# --- key layouts (beyond the contract) -------------------------------------------------------


def test_dynamo_keys_carry_the_index(dynamo_table: str) -> None:
    import boto3

    from stratus.adapters.dynamo_catalog import DynamoCatalog

    DynamoCatalog(dynamo_table).add_file(record())
    DynamoCatalog(dynamo_table, index="root/dev").sync_delete("demo", "demo-2.0.tar.gz", "1")
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=dynamo_table)
    keys = {(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]}
    assert keys == {
        ("P#default#demo", "F#demo-1.0.tar.gz"),
        ("PROJECTS#default", "P#demo"),
        ("P#root/dev#demo", "T#demo-2.0.tar.gz"),
    }


def test_sqlite_file_from_before_indexes_moves_into_the_default_index(tmp_path: Path) -> None:
    import sqlite3
    from dataclasses import astuple, fields

    from stratus.adapters.sqlite_catalog import SqliteCatalog

    path = tmp_path / "index.sqlite3"
    columns = [f.name for f in fields(FileRecord)]
    with sqlite3.connect(path) as conn:
        conn.executescript(
            f"CREATE TABLE files ({', '.join(columns)}, PRIMARY KEY (project, filename)) "
            "WITHOUT ROWID; CREATE TABLE tombstones (project TEXT NOT NULL, filename TEXT "
            "NOT NULL, sequencer TEXT NOT NULL, PRIMARY KEY (project, filename)) WITHOUT ROWID;"
        )
        marks = ", ".join("?" * len(columns))
        conn.execute(f"INSERT INTO files VALUES ({marks})", astuple(record()))
        conn.execute("INSERT INTO tombstones VALUES ('demo', 'demo-0.9.tar.gz', '50')")
    conn.close()
    catalog = SqliteCatalog(path)
    assert catalog.list_files("demo") == [record()]
    assert not catalog.sync_upsert(record("demo-0.9.tar.gz", sequencer="40"))  # tombstone kept
    assert SqliteCatalog(path, index="other").list_files("demo") == []
    assert SqliteCatalog(path).list_files("demo") == [record()]  # opening again changes nothing
