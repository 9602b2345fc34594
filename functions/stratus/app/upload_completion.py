"""Completing large upload sessions in the background.

Checking a multi-GB object (its SHA-256 streamed through ranged reads, or a copy inside
the store) outlasts an HTTP request (API Gateway waits 29 s), so above
``upload_async_complete_bytes`` ``UploadSessionService.complete`` only marks the session
``processing`` and starts the work here; the client polls the session. Like the
rebuild's runners (``app/rebuild.py``): locally the work is a thread of the server; on
AWS it is a message on the completion function's queue (``handlers/upload_completion``),
which the queue redelivers if a worker dies, and sends to a dead-letter queue after a few
attempts. The message names the session and the revision it was queued at, so only one
worker takes it (``UploadSessionService.finish_queued``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .upload_sessions import UploadSessionService

log = logging.getLogger(__name__)


class CompletionRunner(Protocol):
    def start(self, service: UploadSessionService, session_id: str, revision: int) -> None:
        """Have ``service.finish_queued(session_id, revision)`` run soon, elsewhere."""


def message(session_id: str, revision: int) -> dict[str, Any]:
    return {"session_id": session_id, "revision": revision}


def parse_message(body: Any) -> tuple[str, int]:
    """``(session_id, revision)`` of a queued completion; ``ValueError`` if malformed."""
    if not isinstance(body, dict):
        raise ValueError("a completion message is a JSON object")
    session_id, revision = body.get("session_id"), body.get("revision")
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("a completion message names a session_id")
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise ValueError("a completion message has an integer revision")
    return session_id, revision


class ThreadCompletions:
    """Local mode: the completion is a thread of this process (``stratus serve``)."""

    def start(self, service: UploadSessionService, session_id: str, revision: int) -> None:
        def run() -> None:
            try:
                service.finish_queued(session_id, revision)
            except Exception:  # recorded in the session; a retry of complete starts anew
                log.exception("background completion of upload session %s failed", session_id)

        threading.Thread(target=run, name=f"complete-{session_id}", daemon=True).start()


class QueueCompletions:
    """AWS: the completion is a message on the completion function's queue."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self.send = send

    def start(self, service: UploadSessionService, session_id: str, revision: int) -> None:
        self.send(message(session_id, revision))
