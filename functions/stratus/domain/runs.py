"""The status of a reconcile run that may span many invocations (``/admin/rebuild/``)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

STATES = ("queued", "running", "complete", "failed")
KEEP_SECONDS = 14 * 24 * 3600  # how long a finished run's status stays readable


@dataclass(slots=True)
class RunStatus:
    run_id: str
    state: str = "queued"
    dry_run: bool = False
    deep: bool = False
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    pages: int = 0
    projects: int = 0
    objects: int = 0
    entries: int = 0
    added: int = 0
    updated_files: int = 0
    removed: int = 0
    metadata_written: int = 0
    skipped: int = 0
    next_after: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown run state {self.state!r}")

    @property
    def repairs(self) -> int:
        return self.added + self.updated_files + self.removed + self.metadata_written

    def add_page(self, report: dict[str, Any]) -> None:
        """Fold one invocation's reconcile report (``ReconcileReport.as_dict``) in."""
        self.pages += 1
        for name in ("projects", "objects", "entries"):
            setattr(self, name, getattr(self, name) + int(report.get(name, 0)))
        self.added += len(report.get("added", ()))
        self.updated_files += len(report.get("updated", ()))
        self.removed += len(report.get("removed", ()))
        self.metadata_written += len(report.get("metadata_written", ()))
        self.skipped += len(report.get("skipped", ()))
        self.next_after = report.get("next_after")
        self.state = "complete" if report.get("complete", True) else "running"
        self.updated = time.time()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repairs": self.repairs}

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunStatus:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
