"""Audit log in its own CloudWatch Logs group (longer retention than the function logs).

Each container writes to its own stream (created once, at init), so no sequence tokens
are needed and containers never contend. ``recent`` reads back with FilterLogEvents.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from ..domain.audit import AuditEvent
from .aws_client import new_client

logger = logging.getLogger("stratus.audit")
DEFAULT_LOOKBACK_SECONDS = 7 * 24 * 3600


class CloudWatchAuditLog:
    def __init__(self, log_group: str, *, client: Any = None) -> None:
        self.log_group = log_group
        self.client = client or new_client("logs")
        self.stream: str | None = None

    def _ensure_stream(self) -> str:
        if self.stream is None:
            name = time.strftime("%Y/%m/%d/") + uuid.uuid4().hex
            self.client.create_log_stream(logGroupName=self.log_group, logStreamName=name)
            self.stream = name
        return self.stream

    def close_connections(self) -> None:
        """Close the client's pooled connections; the next record opens new ones."""
        self.client.close()

    def reset(self) -> None:
        """Forget the stream (after a SnapStart restore every environment needs its own)."""
        self.stream = None

    def record(self, event: AuditEvent) -> None:
        self.client.put_log_events(
            logGroupName=self.log_group,
            logStreamName=self._ensure_stream(),
            logEvents=[{"timestamp": int(event.time * 1000), "message": event.to_json()}],
        )
        logger.info("audit %s", event.to_json())

    def recent(self, limit: int = 100, *, since: float | None = None) -> list[AuditEvent]:
        if limit <= 0:
            return []
        start = since if since is not None else time.time() - DEFAULT_LOOKBACK_SECONDS
        events: list[AuditEvent] = []
        paginator = self.client.get_paginator("filter_log_events")
        for page in paginator.paginate(
            logGroupName=self.log_group, startTime=int(start * 1000) + 1
        ):
            events.extend(AuditEvent.from_json(e["message"]) for e in page.get("events", ()))
        events.sort(key=lambda e: e.time)
        return events[-limit:]
