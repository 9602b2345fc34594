"""Audit log in a local file: ``<data-dir>/audit.log``, one JSON object per line.

Each record is appended with one ``write`` under a lock and flushed with ``fsync``, so a
crash loses at most the record being written and never interleaves two. Records also go
to the ``stratus.audit`` logger (stdout under ``stratus serve``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path

from ..domain.audit import AuditEvent

logger = logging.getLogger("stratus.audit")
_TAIL_CHUNK = 64 * 1024


class FileAuditLog:
    def __init__(self, path: Path, *, echo: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.echo:
            logger.info("audit %s", line.rstrip("\n"))

    def recent(self, limit: int = 100, *, since: float | None = None) -> list[AuditEvent]:
        """Read backwards from the end in chunks: cost follows ``limit``, not file size."""
        if limit <= 0 or not self.path.exists():
            return []
        found: deque[AuditEvent] = deque()
        with open(self.path, "rb") as file:
            end = file.seek(0, os.SEEK_END)
            tail = b""
            while end > 0 and len(found) < limit:
                start = max(0, end - _TAIL_CHUNK)
                file.seek(start)
                tail = file.read(end - start) + tail
                end = start
                lines = tail.split(b"\n")
                tail = lines.pop(0) if end > 0 else b""  # maybe a partial first line
                for raw in reversed(lines):
                    if not raw.strip():
                        continue
                    event = AuditEvent.from_json(raw.decode())
                    if since is not None and event.time <= since:
                        return list(found)
                    found.appendleft(event)
                    if len(found) >= limit:
                        return list(found)
        return list(found)
