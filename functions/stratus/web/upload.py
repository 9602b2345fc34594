"""The legacy upload API that twine speaks (``POST /`` with ``:action=file_upload``)."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..domain.errors import InvalidInput
from ..domain.names import normalize
from .context import app_context, identity
from .errors import AuthRequired, Forbidden
from .routing import Router

router = Router()


def check_write(request: Request, project: str) -> str | None:
    """Return the uploader's name, or raise 401 (anonymous) / 403 (no write permission)."""
    ctx = app_context(request)
    who = identity(request)
    if ctx.policy.can_write(who, project):
        return who.username
    if not who.authenticated:
        raise AuthRequired("Authentication required to upload.")
    raise Forbidden(f"User {who.username!r} may not upload to project {project!r}.")


def _too_large(limit: int) -> Response:
    return PlainTextResponse(
        f"413 Upload larger than {limit} bytes; upload large files directly to storage.",
        status_code=413,
    )


async def _read_form(request: Request):
    ctx = app_context(request)
    limit = ctx.services.settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        return None
    try:
        return await request.form(max_part_size=8 * 1024 * 1024)
    except Exception as exc:  # multipart parser errors: bad input, not a server error
        raise InvalidInput(f"Malformed multipart upload: {exc}") from None


async def handle_upload(request: Request, project_hint: str | None = None) -> Response:
    # Authenticate before reading a large body: bad credentials answer at once.
    identity(request)
    limit = app_context(request).services.settings.max_upload_bytes
    form = await _read_form(request)
    if form is None:
        return _too_large(limit)
    action = form.get(":action")
    if action != "file_upload":
        raise InvalidInput(f"Unsupported :action {action!r}; only 'file_upload' is supported.")
    content = form.get("content")
    if not isinstance(content, UploadFile) or not content.filename:
        raise InvalidInput("Missing file in the 'content' field of the upload.")
    name = str(form.get("name") or project_hint or "")
    version = str(form.get("version") or "")
    if not name or not version:
        raise InvalidInput("The upload must carry the 'name' and 'version' fields.")
    uploader = check_write(request, normalize(name))
    data = await content.read(limit + 1)
    if len(data) > limit:  # a chunked body has no Content-Length to check up front
        return _too_large(limit)
    publisher = app_context(request).publisher
    from starlette.concurrency import run_in_threadpool

    record = await run_in_threadpool(
        publisher.upload,
        name=name,
        version=version,
        filename=content.filename,
        data=data,
        digests={
            key: form.get(key) for key in ("sha256_digest", "md5_digest", "blake2_256_digest")
        },  # type: ignore[misc]
        uploader=uploader,
    )
    return PlainTextResponse(f"OK: stored {record.filename}\n", status_code=200)


@router.post("/")
@router.post("/simple/")
@router.post("/legacy/")
async def legacy_upload(request: Request) -> Response:
    return await handle_upload(request)
