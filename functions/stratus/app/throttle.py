"""Brute-force protection: too many failed logins for one account or one source → 429.

An *account* is what a login tries to prove: ``user:<name>`` for a password,
``token:<token id>`` for an API token (never the user name ``__token__``, which every
token login shares: failures there would lock out every token login for everyone). A
*source* is the client address.

Per process (a Lambda container, or the local server). Failures are counted in a
sliding window; past the limit the key is locked out until the window passes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} seconds.")
        self.retry_after = retry_after


def user_account(username: str) -> str:
    return f"user:{username}"


def token_account(token_id: str) -> str:
    return f"token:{token_id}"


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int = 5,
        per_source: int = 20,
        window: float = 300.0,
        clock=time.monotonic,
    ) -> None:
        self.limits = {"account": per_account, "source": per_source}
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, accounts: Iterable[str], source: str | None) -> list[tuple[str, str]]:
        keys = [("account", account) for account in accounts if account]
        if source:
            keys.append(("source", source))
        return keys

    def check(self, accounts: Iterable[str], source: str | None) -> None:
        """Raise :class:`TooManyAttempts` if any of the keys is locked out."""
        now = self.clock()
        with self._lock:
            for key in self._keys(accounts, source):
                failures = self._failures.get(key)
                if not failures:
                    continue
                while failures and failures[0] <= now - self.window:
                    failures.popleft()
                if len(failures) >= self.limits[key[0]]:
                    raise TooManyAttempts(max(1, math.ceil(failures[0] + self.window - now)))

    def failed(self, accounts: Iterable[str], source: str | None) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:
                self._failures.clear()
            for key in self._keys(accounts, source):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, accounts: Iterable[str]) -> None:
        """A correct credential clears its accounts' failures (not the source's)."""
        with self._lock:
            for account in accounts:
                self._failures.pop(("account", account), None)
