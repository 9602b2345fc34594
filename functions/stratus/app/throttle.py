"""Brute-force protection: too many failed logins for one user or one source → 429.

Per process (a Lambda container, or the local server). Failures are counted in a
sliding window; past the limit the key is locked out until the window passes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} seconds.")
        self.retry_after = retry_after


class LoginThrottle:
    def __init__(
        self,
        *,
        per_user: int = 5,
        per_source: int = 20,
        window: float = 300.0,
        clock=time.monotonic,
    ) -> None:
        self.limits = {"user": per_user, "source": per_source}
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str | None, source: str | None) -> list[tuple[str, str]]:
        keys = []
        if username:
            keys.append(("user", username))
        if source:
            keys.append(("source", source))
        return keys

    def check(self, username: str | None, source: str | None) -> None:
        """Raise :class:`TooManyAttempts` if either key is locked out."""
        now = self.clock()
        with self._lock:
            for key in self._keys(username, source):
                failures = self._failures.get(key)
                if not failures:
                    continue
                while failures and failures[0] <= now - self.window:
                    failures.popleft()
                if len(failures) >= self.limits[key[0]]:
                    raise TooManyAttempts(max(1, math.ceil(failures[0] + self.window - now)))

    def failed(self, username: str | None, source: str | None) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:
                self._failures.clear()
            for key in self._keys(username, source):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str | None) -> None:
        """A correct password clears the user's failures (not the source's)."""
        if username:
            with self._lock:
                self._failures.pop(("user", username), None)
