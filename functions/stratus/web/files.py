"""Stable download URLs: ``/files/<project>/<filename>`` and its PEP 658 ``.metadata``.

On AWS they answer 302 to a short-lived presigned URL; locally they send the file.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter
from starlette.responses import FileResponse, RedirectResponse, Response

from ..domain.errors import NotFound
from ..domain.keys import METADATA_SUFFIX, file_key, metadata_key
from ..domain.models import FileRecord
from ..domain.names import normalize
from .deps import Context, Reader, may_read
from .fallback import missing_file
from .routes import route

router = APIRouter(tags=["files"])

# Starlette's FileResponse reads 64 KiB at a time, each read in a worker thread and each
# chunk a trip through the middleware and the server: ~1600 of them for a 100 MB file.
# uvicorn has no sendfile (the ASGI pathsend extension), so the next best is big chunks.
# 1 MiB: a 100 MB download is ~4x faster than with 64 KiB (benchmarks/bench_download.py)
# and uvicorn's flow control holds about one chunk per download in memory.
DOWNLOAD_CHUNK = 1024 * 1024


class LargeFileResponse(FileResponse):
    """A FileResponse sending DOWNLOAD_CHUNK bytes a message (ranges, HEAD as Starlette)."""

    chunk_size = DOWNLOAD_CHUNK


def file_path(record: FileRecord) -> str:
    """``files/<project>/<filename>`` of a stored file (:func:`download_path`)."""
    return download_path(record.project, record.filename)


def download_path(project: str, filename: str) -> str:
    """``files/<project>/<filename>``, each segment percent-encoded (relative: no slash):
    a stored file, or an upstream file downloaded through this index (cache fill).

    Uploads only accept safe filenames, but entries indexed from the bucket or from older
    versions may hold any character; a ``#`` or ``?`` must not cut the URL short.
    """
    return f"files/{quote_segment(project)}/{quote_segment(filename)}"


# What ``quote(s, safe="")`` leaves as it is: ASCII letters, digits and ``_.-~``.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def quote_segment(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``: every character but the unreserved ones
    percent-encoded. A name made only of those (every valid distribution filename and
    project name, every hex digest) is returned as it is, without quote's per-character
    work: a project page quotes each of its files on every request."""
    if _UNRESERVED.fullmatch(text):
        return text
    return quote(text, safe="")


DOWNLOAD = {
    "response_class": Response,
    "responses": {
        200: {"content": {"application/octet-stream": {}}, "description": "The file (local)"},
        302: {"description": "Redirect to a short-lived storage URL (AWS), or the upstream"},
    },
}


# The alias is pypicloud's ``GET /api/package/<p>/<file>`` (its download_package).
@route(
    router, "GET", "/files/{project}/{filename}", "/api/package/{project}/{filename}", **DOWNLOAD
)
def download(ctx: Context, who: Reader, project: str, filename: str) -> Response:
    project = normalize(project)
    missing = f"No file {filename!r} in project {project!r}."
    may_read(ctx, who, project, missing)
    is_metadata = filename.endswith(METADATA_SUFFIX)
    dist_name = filename[: -len(METADATA_SUFFIX)] if is_metadata else filename
    record = ctx.services.catalog.get_file(project, dist_name)
    if record is None:  # not stored: the upstream fallback decides (fill, 401/403/404)
        answered = missing_file(ctx, who, project, filename)
        if isinstance(answered, Response):
            return answered
        record = answered  # stored meanwhile or filled just now
    if record is None or (is_metadata and not record.metadata_sha256):
        raise NotFound(missing)
    key = metadata_key(project, dist_name) if is_metadata else file_key(project, dist_name)
    target = ctx.services.storage.download(key, filename)
    max_age = ctx.services.settings.package_max_age
    cache = f"private, max-age={max_age}" if max_age else "no-cache"
    if target.url is not None:
        return RedirectResponse(target.url, status_code=302, headers={"Cache-Control": "no-store"})
    assert target.path is not None
    if not target.path.is_file():
        raise NotFound(f"The file {filename!r} is indexed but missing from storage.")
    media = "text/plain; charset=utf-8" if is_metadata else "application/octet-stream"
    return LargeFileResponse(
        target.path,
        media_type=media,
        headers={"Cache-Control": cache},
        filename=None if is_metadata else filename,
    )
