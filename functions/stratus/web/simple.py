"""The simple repository API: PEP 503 HTML and PEP 691 JSON (with PEPs 592, 629, 658/714, 700).

Links are relative (``../../files/<project>/<file>``) so the pages work behind any stage
path or custom domain, and never presigned: pip appends ``.metadata`` to file URLs.
"""

from __future__ import annotations

import hashlib
import html
import json
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..app.upstream import ProjectView
from ..domain.errors import NotFound
from ..domain.models import FileRecord, Identity, ProjectSummary
from ..domain.names import normalize
from ..domain.upstream import UpstreamFile
from ..domain.versions import in_order, ranks
from . import negotiation
from .deps import AppContext, Caller, Context
from .fallback import page_view
from .files import download_path, quote_segment
from .routes import route

API_VERSION = "1.1"
router = APIRouter(tags=["simple"])
# The pages are bytes rendered here, described in the OpenAPI by media type only.
PAGE: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "description": "PEP 503 HTML or PEP 691 JSON, chosen by Accept or ?format=",
            "content": {
                "text/html": {},
                negotiation.HTML_V1: {},
                negotiation.JSON_V1: {},
            },
        },
        304: {"description": "Not modified (If-None-Match)"},
        406: {"description": "No acceptable media type"},
    },
}


def _not_acceptable() -> Response:
    return Response(
        "406 Not Acceptable: supported types are text/html, "
        f"{negotiation.HTML_V1} and {negotiation.JSON_V1}.",
        status_code=406,
        media_type="text/plain",
        headers={"Vary": "Accept"},
    )


def _respond(request: Request, body: bytes, media_type: str) -> Response:
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    headers = {
        "Vary": "Accept, Authorization",
        "ETag": etag,
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    content_type = media_type if media_type.endswith("json") else f"{media_type}; charset=utf-8"
    return Response(body, headers=headers, media_type=content_type)


def iso_utc(ts: float) -> str:
    """PEP 700's upload-time, ``2023-11-14T22:13:20.123456Z``. ``isoformat`` (its
    ``+00:00`` swapped for ``Z``), not ``strftime``: the JSON page formats every file's."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


# --- root page ---


def readable_projects(ctx: AppContext, who: Identity) -> list[ProjectSummary]:
    """Every project the caller may read, in the catalog's order (two queries in all)."""
    projects = ctx.services.catalog.list_projects()
    allowed = ctx.policy.readable(who, [p.name for p in projects])
    return [p for p in projects if p.name in allowed]


def render_root_html(projects: list[ProjectSummary]) -> bytes:
    # quote_segment's output holds none of &<>"': the href is its own escape.
    links = "\n".join(
        f'    <a href="{quote_segment(p.name)}/">{html.escape(p.display_name)}</a><br/>'
        for p in projects
    )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{links}\n  </body>\n</html>\n"
    ).encode()


def render_root_json(projects: list[ProjectSummary]) -> bytes:
    return json.dumps(
        {
            "meta": {"api-version": API_VERSION},
            "projects": [{"name": p.display_name} for p in projects],
        },
        separators=(",", ":"),
    ).encode()


@router.get("/simple/", **PAGE)
async def simple_root(
    request: Request, ctx: Context, who: Caller, format: str | None = None
) -> Response:
    media = negotiation.choose(request.headers.get("accept"), format)
    if media is None:
        return _not_acceptable()
    projects = readable_projects(ctx, who)
    if media == negotiation.JSON_V1:
        return _respond(request, render_root_json(projects), media)
    return _respond(request, render_root_html(projects), media)


# --- project page ---


class Link(NamedTuple):
    """One file on a project page: stored here, or an upstream file (fallback).

    A tuple: a page makes one per file on every request, and a tuple is built in C."""

    filename: str
    url: str  # relative to the page (stored, or via this index) or absolute (upstream)
    # ``url`` and ``filename`` escaped for HTML. A URL this index makes is quoted segments
    # (``quote_segment``), which hold none of ``&<>"'``: it is its own escape; so is a
    # filename that its quoting leaves as it is.
    href: str
    text: str
    version: str
    sha256: str | None
    requires_python: str | None = None
    yanked: str | None = None  # None not yanked; "" without a reason
    core_metadata: str | bool = False  # PEP 658/714: its sha256, True (no hash), False
    size: int | None = None
    # PEP 700: ISO 8601 (upstream) or a stored file's POSIX time, formatted by the JSON
    # page only (the HTML page does not show it).
    upload_time: str | float | None = None

    @property
    def upload_time_iso(self) -> str | None:
        if isinstance(self.upload_time, float | int):
            return iso_utc(self.upload_time)
        return self.upload_time or None


def stored_links(project: str, files: list[FileRecord]) -> list[Link]:
    """The links of a project's stored files (``catalog.list_files(project)``). Built by
    position, the project's URL segment quoted once: a page makes these for every file
    on every request."""
    base = "../../" + download_path(project, "")
    links = []
    for f in files:
        name = quote_segment(f.filename)  # equal to the filename: nothing to escape either
        url = base + name
        links.append(
            Link(
                f.filename,
                url,
                url,
                f.filename if name == f.filename else html.escape(f.filename),
                f.version,
                f.sha256,
                f.requires_python,
                f.yanked,
                f.metadata_sha256 or False,
                f.size,
                f.upload_time,
            )
        )
    return links


def upstream_link(project: str, file: UpstreamFile, *, via_index: bool) -> Link:
    """An upstream file, linked straight upstream or through this index (cache fill)."""
    url = "../../" + download_path(project, file.filename) if via_index else file.url
    return Link(
        filename=file.filename,
        url=url,
        href=url if via_index else html.escape(url),
        text=html.escape(file.filename),
        version=file.version,
        sha256=file.sha256,
        requires_python=file.requires_python,
        yanked=file.yanked,
        core_metadata=(file.metadata_sha256 or True) if file.has_metadata else False,
        size=file.size,
        upload_time=file.upload_time,
    )


def page_links(project: str, view: ProjectView) -> list[Link]:
    """The links of a page, sorted by version then filename (stored files win clashes)."""
    links = stored_links(project, view.files)
    links += [upstream_link(project, f, via_index=view.via_index) for f in view.upstream]
    rank = ranks(link.version for link in links)
    links.sort(key=attrgetter("filename"))  # stored files come sorted: a single pass
    links.sort(key=lambda link: rank[link.version])  # stable: by filename within a version
    return links


def _digest_attribute(digest: str) -> str:
    """``sha256=<digest>`` for an HTML attribute. A hex digest (letters and digits) holds
    nothing to escape; anything else (an upstream's) is escaped."""
    if digest.isascii() and digest.isalnum():
        return "sha256=" + digest
    return html.escape("sha256=" + digest)


def render_project_html(project: str, links: list[Link]) -> bytes:
    escape = html.escape
    requires: dict[str, str] = {}  # escaped once a page: most files share one
    lines = []
    for f in links:
        line = f'    <a href="{f.href}'
        if f.sha256:  # quote_segment's output needs no escaping (see Link.href)
            line += "#sha256=" + quote_segment(f.sha256)
        line += '"'
        if f.requires_python:
            spec = requires.get(f.requires_python)
            if spec is None:
                spec = requires[f.requires_python] = escape(f.requires_python)
            line += f' data-requires-python="{spec}"'
        if f.yanked is not None:
            line += f' data-yanked="{escape(f.yanked)}"'
        if f.core_metadata:
            core = "true" if f.core_metadata is True else _digest_attribute(f.core_metadata)
            line += f' data-core-metadata="{core}" data-dist-info-metadata="{core}"'
        lines.append(f"{line}>{f.text}</a><br/>")
    title = escape(f"Links for {project}")
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
        + "\n".join(lines)
        + "\n  </body>\n</html>\n"
    ).encode()


def render_project_json(project: str, links: list[Link]) -> bytes:
    entries = []
    for f in links:
        core = {"sha256": f.core_metadata} if isinstance(f.core_metadata, str) else f.core_metadata
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": f.url,
            "hashes": {"sha256": f.sha256} if f.sha256 else {},
            "requires-python": f.requires_python,
            "yanked": (f.yanked or True) if f.yanked is not None else False,
            "core-metadata": core,
            "dist-info-metadata": core,
        }
        if f.size is not None:
            entry["size"] = f.size
        upload_time = f.upload_time_iso
        if upload_time:
            entry["upload-time"] = upload_time
        entries.append(entry)
    versions = in_order(f.version for f in links)
    return json.dumps(
        {
            "meta": {"api-version": API_VERSION},
            "name": project,
            "versions": versions,
            "files": entries,
        },
        separators=(",", ":"),
    ).encode()


def project_files(ctx: AppContext, project: str) -> list[FileRecord]:
    """The files of a project the caller may read (checked before), or 404."""
    files = ctx.services.catalog.list_files(project)
    if not files:
        raise NotFound(f"No project named {project!r}.")
    return files


@route(router, "GET", "/simple/{project}/", "/simple/{project}", **PAGE)
async def simple_project(
    request: Request, ctx: Context, who: Caller, project: str, format: str | None = None
) -> Response:
    normalized = normalize(project)
    if normalized != project or not request.url.path.endswith("/"):
        # Relative, so it works behind any stage path: /simple/Foo_Bar/ → ../foo-bar/
        name = quote_segment(normalized)  # any name from the path: a header is ASCII
        target = f"../{name}/" if request.url.path.endswith("/") else f"{name}/"
        if request.url.query:
            target += f"?{request.url.query}"
        return Response(status_code=301, headers={"Location": target})
    media = negotiation.choose(request.headers.get("accept"), format)
    if media is None:
        return _not_acceptable()
    view = await page_view(ctx, who, project, request.url.path)  # may ask the upstream
    if isinstance(view, Response):
        return view  # 302 to the upstream
    links = page_links(project, view)
    if media == negotiation.JSON_V1:
        return _respond(request, render_project_json(project, links), media)
    return _respond(request, render_project_html(project, links), media)
