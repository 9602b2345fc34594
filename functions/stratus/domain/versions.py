"""Version ordering (PEP 440) for pages that sort releases on every request."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from packaging.version import InvalidVersion, Version


@lru_cache(maxsize=65536)
def _parsed(version: str) -> Version | None:
    """The version, parsed once per process (pages sort releases on every request)."""
    try:
        return Version(version)
    except InvalidVersion:  # pragma: no cover - versions are validated at upload
        return None


def version_key(version: str) -> tuple:
    """Sort key of a version string: PEP 440 order, any invalid ones last, by text."""
    parsed = _parsed(version)
    return (0, parsed) if parsed is not None else (1, version)


def is_prerelease(version: str) -> bool:
    parsed = _parsed(version)
    return parsed is not None and parsed.is_prerelease


def in_order(versions: Iterable[str]) -> list[str]:
    """The distinct version strings, in PEP 440 order (any invalid ones last, by text)."""
    return list(_in_order(frozenset(versions)))


def ranks(versions: Iterable[str]) -> dict[str, int]:
    """Each distinct version's place in PEP 440 order (:func:`in_order`): a page sorts
    its files by these integers, compared in C, not by ``Version`` objects. Versions that
    PEP 440 holds equal (``1.0`` and ``1.0.0``) share a place, as they share a
    ``version_key``."""
    out: dict[str, int] = {}
    rank, previous = -1, None
    for version in _in_order(frozenset(versions)):
        key = _parsed(version) or version
        if key != previous:
            rank, previous = rank + 1, key
        out[version] = rank
    return out


# A project's versions change with its uploads only, and its page is sorted on every
# request: the order of a set of versions is kept (a set's hash and equality cost far
# less than sorting it again). An entry holds its version strings: ~90 bytes a version.
@lru_cache(maxsize=128)
def _in_order(versions: frozenset[str]) -> tuple[str, ...]:
    """Sorted as ``Version`` objects alone, not ``version_key`` tuples: a tuple comparison
    calls ``Version.__eq__`` and then ``__lt__``; this, ``__lt__`` only."""
    valid: list[str] = []
    invalid: list[str] = []
    for version in versions:
        (valid if _parsed(version) is not None else invalid).append(version)
    valid.sort(key=_parsed)  # type: ignore[arg-type]  # None was filtered out above
    invalid.sort()
    return (*valid, *invalid)
