"""Contract of the ReconcileRuns port: SQLite and DynamoDB Local."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stratus.adapters.dynamo_runs import DynamoReconcileRuns
from stratus.adapters.sqlite_runs import SqliteReconcileRuns
from stratus.domain.runs import KEEP_SECONDS, RunStatus
from stratus.ports import ReconcileRuns


@pytest.fixture(params=["sqlite", "dynamo"])
def runs(request: pytest.FixtureRequest, tmp_path: Path) -> ReconcileRuns:
    if request.param == "sqlite":
        return SqliteReconcileRuns(tmp_path / "index.sqlite3")
    return DynamoReconcileRuns(request.getfixturevalue("dynamo_table"))


def test_implements_the_port(runs: ReconcileRuns) -> None:
    assert isinstance(runs, ReconcileRuns)


def test_save_get_replace(runs: ReconcileRuns) -> None:
    assert runs.get("nope") is None
    run = RunStatus(run_id="r1", dry_run=True)
    runs.save(run)
    assert runs.get("r1") == run
    run.add_page(
        {"projects": 3, "objects": 7, "entries": 6, "added": ["a"], "removed": ["b", "c"],
         "skipped": {"x": "why"}, "next_after": "p3", "complete": False}
    )  # fmt: skip
    runs.save(run)
    got = runs.get("r1")
    assert got is not None
    assert (got.state, got.pages, got.projects, got.added, got.removed) == ("running", 1, 3, 1, 2)
    assert (got.skipped, got.next_after, got.repairs) == (1, "p3", 3)
    run.add_page({"projects": 1, "objects": 1, "complete": True})
    runs.save(run)
    assert runs.get("r1").state == "complete"  # type: ignore[union-attr]
    assert runs.get("r1").projects == 4  # type: ignore[union-attr]


def test_an_expired_status_is_gone(runs: ReconcileRuns) -> None:
    old = RunStatus(run_id="old", updated=time.time() - KEEP_SECONDS - 60)
    runs.save(old)
    assert runs.get("old") is None


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError):
        RunStatus(run_id="x", state="exploded")
