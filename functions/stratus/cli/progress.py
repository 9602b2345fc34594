"""Progress lines of the long ``stratus`` commands, on stderr (stdout may carry data).

A line at most every ``every`` seconds while a step runs, and always its last one
(``imported 300/300 packages``); nothing at all with ``-q``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(
        self,
        *,
        quiet: bool = False,
        every: float = 2.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self.every = every
        self.stream = stream
        self.clock = clock
        self._last = clock()

    def say(self, text: str) -> None:
        """A line now (unless quiet)."""
        if not self.quiet:
            print(text, file=self.stream or sys.stderr, flush=True)
            self._last = self.clock()

    def tick(self, text: str | Callable[[], str], *, final: bool = False) -> None:
        """A line if ``every`` seconds went by since the last one, or if ``final``."""
        if self.quiet:
            return
        if final or self.clock() - self._last >= self.every:
            self.say(text() if callable(text) else text)

    def counter(self, verb: str) -> Callable[[str, int, int], None]:
        """A ``progress(kind, done, total)`` callback: ``<verb> 120/300 <kind>``."""

        def progress(kind: str, done: int, total: int) -> None:
            self.tick(f"{verb} {done}/{total} {kind}", final=done >= total)

        return progress


def add_arguments(parser) -> None:
    """``-q`` and the (hidden) seconds between progress lines."""
    import argparse

    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--progress-seconds", type=float, default=2.0, help=argparse.SUPPRESS)


def from_args(args) -> Progress:
    return Progress(quiet=args.quiet, every=args.progress_seconds)
