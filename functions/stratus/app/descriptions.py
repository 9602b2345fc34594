"""Long descriptions: rendered to sanitized HTML once, at upload, and stored next to the file.

Rendering follows PyPI (warehouse's ``readme.render``): ``readme_renderer`` picks reST,
Markdown (GFM or CommonMark, the ``variant`` parameter) or plain text from the
``Description-Content-Type``; no content type means reST; anything that fails to render
falls back to escaped plain text. ``readme_renderer`` sanitizes its output with nh3
(an allow-list: no script, no event handler, no ``javascript:`` URL survives).

The renderers (docutils, pygments, comrak) are imported on first use: they are only
needed by uploads, never by a cold start that serves downloads.
"""

from __future__ import annotations

import logging
from email.message import Message

from ..domain.keys import description_key
from ..domain.models import FileRecord
from ..ports import Storage

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/html; charset=utf-8"
_INDENT = " " * 8


def _unfold(text: str) -> str:
    """A description from the old ``Description:`` header: drop the 8-space (and ``|``)
    continuation prefix that ``rfc822_escape`` added."""
    first, *rest = text.split("\n")
    if not rest or not all(line.startswith(_INDENT) for line in rest if line.strip()):
        return text
    rest = [line[len(_INDENT) :] for line in rest]
    if all(line.startswith("|") for line in rest if line):
        rest = [line[1:] for line in rest]
    return "\n".join([first, *rest])


def render(text: str, content_type: str | None) -> str:
    """Sanitized HTML of a long description, as PyPI renders it."""
    from readme_renderer import markdown, rst, txt

    if content_type:
        header = Message()
        header["Content-Type"] = content_type
        kind = header.get_content_type()
        params = {k: v for k, v in header.get_params(failobj=[])[1:] if k == "variant" and v}
    else:
        kind, params = "text/x-rst", {}
    html: str | None = None
    try:
        if kind == "text/markdown":
            html = markdown.render(text, **params)
        elif kind == "text/x-rst":
            html = rst.render(text)
        elif kind == "text/plain":
            plain = txt.render(text)
            html = f"<pre>{plain}</pre>" if plain is not None else None
    except Exception:  # a renderer bug on hostile input must not fail the upload
        log.warning("rendering a %s description failed; falling back to text", kind)
    if html is None:
        html = txt.render(text) or ""
    return html


def render_metadata(source: bytes) -> str | None:
    """The rendered description of a METADATA / PKG-INFO file; None if it has none."""
    from email.parser import BytesHeaderParser

    from packaging.metadata import parse_email

    raw, _unparsed = parse_email(source)
    text = raw.get("description")
    if not text or not text.strip() or text.strip() == "UNKNOWN":
        return None
    if BytesHeaderParser().parsebytes(source).get("Description") is not None:
        text = _unfold(text)  # the old header form, not the message body
    return render(text, raw.get("description_content_type"))


def store_description(storage: Storage, record: FileRecord, source: bytes | None) -> str | None:
    """Render the description of ``source`` and store it next to the file; return its key."""
    if source is None:
        return None
    html = render_metadata(source)
    if html is None:
        return None
    key = description_key(record.project, record.filename)
    storage.put(key, html.encode(), content_type=CONTENT_TYPE)
    return key


def read_description(storage: Storage, record: FileRecord) -> str | None:
    """The stored HTML of a file's description; None if none was stored."""
    from ..domain.errors import NotFound

    try:
        return storage.read(description_key(record.project, record.filename)).decode()
    except NotFound:
        return None
