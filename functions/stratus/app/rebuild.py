"""Rebuilding the index from storage in the background (``/admin/rebuild/``).

A reconcile of a big bucket outlasts any HTTP request (API Gateway waits 30 s), so the
admin API only starts a run and answers with its id; the status is read back from
``ReconcileRuns``. Locally the run is a thread of the server; on AWS it is a message on
the reconcile function's queue (the function then continues the run page by page).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Protocol

from ..domain.runs import RunStatus
from ..ports import Catalog, ReconcileRuns, Storage
from .reconcile import ReconcileReport, reconcile

log = logging.getLogger(__name__)
PROGRESS_EVERY = 50  # projects between two status saves of a local run


class RebuildRunner(Protocol):
    runs: ReconcileRuns

    def start(self, *, dry_run: bool = False, deep: bool = False) -> RunStatus: ...


def new_run(*, dry_run: bool, deep: bool) -> RunStatus:
    return RunStatus(run_id=uuid.uuid4().hex, dry_run=dry_run, deep=deep)


class ThreadRunner:
    """Local mode: the run is a daemon thread of this process."""

    def __init__(self, catalog: Catalog, storage: Storage, runs: ReconcileRuns) -> None:
        self.catalog, self.storage, self.runs = catalog, storage, runs

    def start(self, *, dry_run: bool = False, deep: bool = False) -> RunStatus:
        run = new_run(dry_run=dry_run, deep=deep)
        self.runs.save(run)
        threading.Thread(target=self._run, args=(run,), name=f"rebuild-{run.run_id}").start()
        return run

    def _run(self, run: RunStatus) -> None:
        run.state = "running"
        self.runs.save(run)

        def progress(_: str, report: ReconcileReport) -> None:
            if report.projects % PROGRESS_EVERY == 0:
                snapshot = RunStatus.from_json(run.to_json())
                snapshot.add_page({**report.as_dict(), "complete": False})
                self.runs.save(snapshot)

        try:
            report = reconcile(
                self.catalog, self.storage, dry_run=run.dry_run, deep=run.deep, progress=progress
            )
        except Exception as exc:
            log.exception("rebuild %s failed", run.run_id)
            run.state, run.error = "failed", f"{type(exc).__name__}: {exc}"
            self.runs.save(run)
            return
        run.add_page(report.as_dict())
        self.runs.save(run)


class QueueRunner:
    """AWS: the run is a message on the reconcile function's queue."""

    def __init__(self, runs: ReconcileRuns, send: Callable[[dict], None]) -> None:
        self.runs, self.send = runs, send

    def start(self, *, dry_run: bool = False, deep: bool = False) -> RunStatus:
        run = new_run(dry_run=dry_run, deep=deep)
        self.runs.save(run)
        self.send({"run_id": run.run_id, "page": 1, "dry_run": dry_run, "deep": deep})
        return run
