"""pypicloud's fallback rules: what ``/simple/<project>/`` (and ``/pypi/<project>/json``)
answers, and what a download of a file that is not stored here does.

One pure function per question, so the simple page, the JSON API and downloads agree and
the table (pypicloud's "Fallbacks" page, ``seeds/000_*``) is tested cell by cell. The
structure follows pypicloud's views (``_simple_serve``, ``_simple_redirect``,
``_simple_redirect_always_show``, ``_simple_cache``, ``_simple_cache_always_show``), which
also settles the combinations the table leaves out (no read but ``cache_update``).

Projects whose upstream is blocked (``pypi.private_projects``, origin controls) are
decided with ``Mode.NONE``: they never fall back and never show upstream files
(``effective_mode``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from .models import Identity
from .permissions import principals


class Mode(StrEnum):
    """``pypi.fallback``."""

    NONE = "none"
    REDIRECT = "redirect"
    CACHE = "cache"


class Answer(StrEnum):
    """What a project page request gets."""

    PAGE = "page"  # the files stored here, nothing else
    PAGE_UPSTREAM_DIRECT = "page+upstream-direct"  # plus upstream-only files, linked upstream
    PAGE_UPSTREAM_CACHED = "page+upstream-cached"  # plus upstream-only files, via this index
    REDIRECT = "redirect"  # 302 to fallback_base_url + the request path
    LOGIN = "login"  # 401 with WWW-Authenticate: credentials are needed
    NOT_FOUND = "not-found"  # 404


class DownloadAnswer(StrEnum):
    """What a download of a file that is not stored here gets."""

    FILL = "fill"  # fetch it from the upstream, store it, serve it
    LOGIN = "login"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not-found"  # 404


def parse_mode(value: str) -> Mode:
    try:
        return Mode(value.strip().lower())
    except ValueError:
        raise ValueError(
            f"pypi.fallback must be one of none, redirect, cache (not {value!r})"
        ) from None


def _refuse(logged_in: bool, otherwise: Answer) -> Answer:
    """Anonymous callers are asked for credentials; logged-in ones get ``otherwise``."""
    return otherwise if logged_in else Answer.LOGIN


def decide(
    mode: Mode,
    always_show_upstream: bool,
    *,
    stored: bool,
    may_read: bool,
    may_update_cache: bool,
    logged_in: bool,
) -> Answer:
    """The answer to a project page request (pypicloud's table)."""
    if mode is Mode.NONE:
        if not may_read:
            return _refuse(logged_in, Answer.NOT_FOUND)
        return Answer.PAGE if stored else Answer.NOT_FOUND
    if mode is Mode.REDIRECT:
        if not stored:
            return Answer.REDIRECT
        if not may_read:
            return _refuse(logged_in, Answer.REDIRECT)
        return Answer.PAGE_UPSTREAM_DIRECT if always_show_upstream else Answer.PAGE
    # Mode.CACHE
    if not always_show_upstream:
        if not may_read:
            return _refuse(logged_in, Answer.NOT_FOUND)
        if stored:
            return Answer.PAGE
        if not may_update_cache:
            return _refuse(logged_in, Answer.NOT_FOUND)
        return Answer.PAGE_UPSTREAM_CACHED
    if not may_read:
        return _refuse(logged_in, Answer.REDIRECT)
    if may_update_cache:
        return Answer.PAGE_UPSTREAM_CACHED
    if stored:
        return _refuse(logged_in, Answer.PAGE_UPSTREAM_DIRECT)
    return _refuse(logged_in, Answer.REDIRECT)


def decide_download(
    mode: Mode, *, may_read: bool, may_update_cache: bool, logged_in: bool
) -> DownloadAnswer:
    """A download of a file that is not stored here (the file exists upstream or not)."""
    if not may_read:
        return DownloadAnswer.NOT_FOUND if logged_in else DownloadAnswer.LOGIN
    if mode is not Mode.CACHE:
        return DownloadAnswer.NOT_FOUND
    if not may_update_cache:
        return DownloadAnswer.FORBIDDEN if logged_in else DownloadAnswer.LOGIN
    return DownloadAnswer.FILL


def may_update_cache(identity: Identity, cache_update: Iterable[str]) -> bool:
    """``pypi.cache_update``: the groups allowed to fill the cache (admins always are)."""
    return identity.is_admin or not principals(identity).isdisjoint(cache_update)


def effective_mode(mode: Mode, upstream_allowed: bool) -> Mode:
    """A project whose upstream is blocked is decided as if there were no fallback."""
    return mode if upstream_allowed else Mode.NONE


def shows_upstream(answer: Answer) -> bool:
    return answer in (Answer.PAGE_UPSTREAM_DIRECT, Answer.PAGE_UPSTREAM_CACHED)


# --- private projects -------------------------------------------------------------------


def parse_patterns(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``pypi.private_projects``: glob patterns matched against normalized names."""
    return tuple(value.strip().lower() for value in values if value.strip())


def is_private(project: str, patterns: tuple[str, ...]) -> bool:
    """Whether a (normalized) project name matches one of the private patterns."""
    return any(fnmatchcase(project, pattern) for pattern in patterns)


# --- the upstream -----------------------------------------------------------------------

DEFAULT_BASE_URL = "https://pypi.org"


def base_url(fallback_base_url: str | None, fallback_url: str | None) -> str:
    """The upstream's base URL as pypicloud derives it.

    ``pypi.fallback_base_url`` wins. Without it the deprecated ``pypi.fallback_url`` (the
    upstream's simple index, e.g. ``https://pypi.org/simple``) gives the base by dropping
    its ``/simple`` part; without either it is ``https://pypi.org``.
    """
    chosen = (fallback_base_url or "").strip()
    if not chosen and (fallback_url or "").strip():
        chosen = fallback_url.strip().rstrip("/")  # type: ignore[union-attr]
        if chosen.endswith("/simple"):
            chosen = chosen[: -len("/simple")]
    chosen = (chosen or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"pypi.fallback_base_url must be an http(s) URL, not {chosen!r}")
    return chosen


def redirect_url(base: str, path: str) -> str:
    """Where a 302 sends the client: the base URL plus the request path (``/simple/p/``)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def mirror_name(base: str) -> str:
    """The name the upstream's cached pages and cached files are kept under.

    Derived from the URL (host, port and path), so pointing ``fallback_base_url``
    elsewhere starts a fresh page cache instead of serving another server's pages.
    """
    parts = urlsplit(base)
    return (parts.netloc + parts.path.rstrip("/")).lower()


UPSTREAM_UPLOADER_PREFIX = "upstream:"  # no user is named so: HTTP Basic names have no ":"


def upstream_uploader(mirror: str) -> str:
    """The ``uploader`` of a file stored by a cache fill from ``mirror``."""
    return UPSTREAM_UPLOADER_PREFIX + mirror


def is_from_upstream(uploader: str | None) -> bool:
    return bool(uploader) and uploader.startswith(UPSTREAM_UPLOADER_PREFIX)  # type: ignore[union-attr]
