"""uvicorn's httptools protocol with header and body timeouts and a header size limit.

Per connection (limits from ``server.ServerLimits``):

- a header timeout: the request line and headers must be complete within
  ``header_timeout`` seconds of the connection (or of the request's first byte, on a
  kept-alive connection); otherwise 408 and the connection is closed;
- a body timeout: while a body is being received, ``body_timeout`` seconds without a
  byte close the connection (not while the app has not read what came yet, or has not
  asked for the body of an ``Expect: 100-continue`` request);
- a header size limit: request line and headers over ``max_header_bytes`` answer 400.

It extends uvicorn's httptools protocol (``uvicorn[standard]``, which ``stratus serve``
needs): uvicorn's own ``timeout_keep_alive`` is reset by every byte received.

The deadlines cost next to nothing per request: arming one sets a time, and a single
event-loop timer per connection checks it when it fires (and sets itself again for a
later deadline). A timer made and cancelled for every phase of every request cost more
than the rest of the guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .server import ServerLimits


class HeaderTooLarge(Exception):
    pass


_TIMEOUT_BODY = b"408 Request headers not received in time.\n"
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts and a header size limit."""

    limits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: float | None = None  # loop time of the current phase's deadline
        self._on_deadline: Callable[[], None] = self._header_timeout
        self._timer: asyncio.TimerHandle | None = None  # fires at _timer_at, or earlier
        self._timer_at = 0.0
        self._header_bytes = 0
        self._in_body = False

    # --- the deadline and its timer ---

    def _cancel_deadline(self) -> None:
        self._deadline = None  # the timer, when it fires, finds nothing to do

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        deadline = self.loop.time() + seconds
        self._deadline, self._on_deadline = deadline, callback
        if self._timer is not None and self._timer_at <= deadline:
            return  # fires before the deadline and then sets itself for it
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(deadline, self._check), deadline

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:  # moved on since the timer was set
            self._timer, self._timer_at = self.loop.call_at(deadline, self._check), deadline
            return
        self._deadline = None
        self._on_deadline()

    def _header_timeout(self) -> None:
        if not self.transport.is_closing():
            self.logger.warning("Closing %s: request headers not received in time.", self.client)
            self.transport.write(_TIMEOUT_408)
            self.transport.close()

    def _body_timeout(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        app_behind = (self.flow is not None and self.flow.read_paused) or (
            cycle is not None and (bool(cycle.body) or cycle.waiting_for_100_continue)
        )
        if app_behind:
            # The app has not read what came (or not asked for the body yet: Expect:
            # 100-continue): the client is not to blame.
            self._arm(self.limits.body_timeout, self._body_timeout)
            return
        self.logger.warning("Closing %s: request body stalled.", self.client)
        self.transport.close()

    # --- connection and parser hooks ---

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_body = False
        if self._deadline is None:  # a new request on a kept-alive connection
            self._arm(self.limits.header_timeout, self._header_timeout)

    # Header bytes are counted where they arrive, without a helper call per header.
    # HeaderTooLarge: httptools reports it, and uvicorn answers 400 and closes.

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url) + 4
        if self._header_bytes > self.limits.max_header_bytes:
            raise HeaderTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.limits.max_header_bytes:
            raise HeaderTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._arm(self.limits.body_timeout, self._body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._in_body:
            self._arm(self.limits.body_timeout, self._body_timeout)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel_deadline()
        super().on_message_complete()


def protocol_with(limits: ServerLimits) -> type[GuardedHttpProtocol]:
    """A protocol class carrying ``limits`` (uvicorn instantiates the class itself)."""
    return type("StratusHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})
