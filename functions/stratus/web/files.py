"""Stable download URLs: ``/files/<project>/<filename>`` and its PEP 658 ``.metadata``.

On AWS they answer 302 to a short-lived presigned URL; locally they send the file.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from ..domain.errors import NotFound
from ..domain.keys import METADATA_SUFFIX, file_key, metadata_key
from ..domain.names import normalize
from .context import app_context, identity
from .errors import AuthRequired
from .routing import Router

router = Router()


@router.get("/files/{project}/{filename}")
def download(request: Request, project: str, filename: str) -> Response:
    ctx = app_context(request)
    who = identity(request)
    project = normalize(project)
    if not ctx.policy.can_read(who, project):
        if not who.authenticated:
            raise AuthRequired(f"Authentication required to read {project!r}.")
        raise NotFound(f"No file {filename!r} in project {project!r}.")
    is_metadata = filename.endswith(METADATA_SUFFIX)
    dist_name = filename[: -len(METADATA_SUFFIX)] if is_metadata else filename
    record = ctx.services.catalog.get_file(project, dist_name)
    if record is None or (is_metadata and not record.metadata_sha256):
        raise NotFound(f"No file {filename!r} in project {project!r}.")
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
    return FileResponse(
        target.path,
        media_type=media,
        headers={"Cache-Control": cache},
        filename=None if is_metadata else filename,
    )
