"""Recording audit events without letting the audit log decide a request's outcome.

The event has already happened (the file is stored, the login has failed) when it is
recorded; a failing audit backend is logged as an error, loudly, and the request goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from ..domain.audit import AuditEvent
from ..ports import AuditLog

logger = logging.getLogger("stratus.audit")


class Auditor:
    def __init__(self, log: AuditLog | None) -> None:
        self.log = log

    def __call__(
        self,
        action: str,
        *,
        actor: str | None,
        source: str | None,
        target: str,
        result: str = "ok",
        request_id: str | None = None,
        **detail: Any,
    ) -> None:
        event = AuditEvent(
            action=action,
            actor=actor,
            source=source,
            target=target,
            result=result,
            detail=detail,
            request_id=request_id,
        )
        if self.log is None:
            return
        try:
            self.log.record(event)
        except Exception:
            logger.exception("audit record lost: %s", event.to_json())

    def recent(self, limit: int = 100, *, since: float | None = None) -> list[AuditEvent]:
        return [] if self.log is None else self.log.recent(limit, since=since)
