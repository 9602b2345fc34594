"""Routes added on the first request that needs them, for a cold start a request waits for.

FastAPI analyses a route when it is added (signature, dependencies, pydantic fields). The
surfaces no pip, uv or twine request uses (the admin, user and token APIs, the packages
and JSON APIs, upload sessions, trusted publishing, the API docs, the web UI's pages) are
most of the app's routes and ~70 ms of a cold start's CPU. A Lambda init paid on demand
is a cold start the triggering request waits for, and most of those requests are
installs; so there the app starts with the other surfaces and a ``DeferredRoutes`` route
last. It answers every request no route answers in full (which would otherwise be a 404
or a 405), adds the deferred routes (once, ~90 ms), takes itself out and lets the router
dispatch the request again. The app's routes and their order are
then the same as an app built at once, which is what the local server and an init paid
ahead (SnapStart, provisioned concurrency) get.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send


class DeferredRoutes(BaseRoute):
    """A catch-all last route that calls ``add`` (which adds the deferred routes) on first
    use, then leaves."""

    def __init__(self, router: Router, add: Callable[[], None]) -> None:
        self.router = router
        self._add = add
        self._lock = threading.Lock()
        self.added = False

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.added or scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        return Match.FULL, {}

    def ensure_added(self) -> None:
        """Add the deferred routes in place of this one (idempotent, thread-safe)."""
        with self._lock:
            if self.added:
                return
            routes = self.router.routes
            position = routes.index(self)
            del routes[position]
            before = len(routes)
            try:
                self._add()
            except BaseException:
                del routes[before:]  # nothing half-added: the next request tries again
                routes.insert(position, self)
                raise
            self.added = True

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ensure_added()
        await self.router(scope, receive, send)
