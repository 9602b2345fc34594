"""The Python heap's peak while a call runs (tracemalloc): for tests that prove work on
large inputs streams instead of reading them whole."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable


def heap_peak[T](call: Callable[[], T]) -> tuple[T, int]:
    """``call()``'s result and the most bytes Python held at once while it ran."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
