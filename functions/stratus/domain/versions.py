"""Version ordering (PEP 440) for pages that sort releases on every request."""

from __future__ import annotations

from functools import lru_cache

from packaging.version import InvalidVersion, Version


@lru_cache(maxsize=65536)
def version_key(version: str) -> tuple:
    """Sort key of a version string (parsed once per process: pages are sorted per request)."""
    try:
        return (0, Version(version))
    except InvalidVersion:  # pragma: no cover - versions are validated at upload
        return (1, version)


@lru_cache(maxsize=65536)
def is_prerelease(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:  # pragma: no cover
        return False
