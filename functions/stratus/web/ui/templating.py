"""Jinja2 templates and the static files of the web UI.

Templates autoescape everything; the one exception is the long description, which was
sanitized when it was rendered at upload (``stratus.app.descriptions``). Jinja2 is
imported and each template compiled on first use, once per process, so a cold start
that serves pip pays nothing for the UI. Static files are read once and served with a
content hash in their URL, so browsers cache them for good.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Environment

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


# Dates are formatted by hand from time.gmtime: a project page formats one per release,
# and this is several times faster than datetime + strftime.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(ts: float) -> str:
    """``Mar 5, 2025`` (UTC)"""
    t = time.gmtime(ts)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year}"


def format_datetime(ts: float) -> str:
    """``2025-03-05 14:07 UTC``"""
    t = time.gmtime(ts)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d} UTC"


def format_isotime(ts: float) -> str:
    t = time.gmtime(ts)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
    )


@cache
def environment() -> Environment:
    """The templates' environment, one per process (templates compile on first use)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(date=format_date, datetime=format_datetime, isotime=format_isotime)
    return env


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    version: str  # content hash, part of the URL


@cache
def load_static() -> dict[str, StaticFile]:
    files = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            body = path.read_bytes()
            content_type = STATIC_TYPES.get(path.suffix) or (
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            )
            version = hashlib.sha256(body).hexdigest()[:12]
            files[path.name] = StaticFile(body, content_type, version)
    return files
