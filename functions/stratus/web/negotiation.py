"""PEP 691 content negotiation for the simple API."""

from __future__ import annotations

from functools import lru_cache

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    HTML: HTML,
    "text/*": HTML,
    "*/*": HTML,
}
_FORMATS = {"json": JSON_V1, "html": HTML_V1}


@lru_cache(maxsize=256)
def choose(accept: str | None, format_param: str | None = None) -> str | None:
    """The response type for an ``Accept`` header (and optional ``?format=``), or None (406).

    Highest q wins; among equal q, the more specific type; no header means HTML.
    """
    if format_param:
        return _FORMATS.get(format_param.lower())
    if not accept or not accept.strip():
        return HTML
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        if media not in _ALIASES:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        specificity = 0 if media.startswith("*") else 1 if media.endswith("/*") else 2
        rank = (q, specificity, -position)
        if best is None or rank > best:
            best, chosen = rank, _ALIASES[media]
    return chosen
