"""The legacy upload API that twine speaks (``POST /`` with ``:action=file_upload``).

The multipart body is read by hand after authentication (a declared ``Form`` parameter
would make FastAPI read it before any dependency ran) and with a size limit;
``UPLOAD_FORM`` describes it in the OpenAPI.

Authorization comes before the body too: the project is named in the path
(``/api/package/<project>/...``: the per-project check) or only inside the body (the
legacy API: first "may this caller upload anything at all", the per-project check once
the form is parsed). An anonymous or read-only caller gets 401/403 before a byte of the
body is read. The body is streamed into python-multipart's spooled temporary files and
refused (413) past ``pypi.max_upload_bytes``: at once from ``Content-Length``, or while
counting the bytes of a chunked body.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import PlainTextResponse, Response

from ..domain.distributions import parse_version_field
from ..domain.errors import InvalidInput
from ..domain.models import Identity
from ..domain.names import normalize
from ..domain.names import validate as validate_name
from .bodies import BodyTooLarge, bounded
from .deps import AppContext, Caller, Context, may_upload, may_upload_anything
from .routes import route

router = APIRouter(tags=["upload"])

UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [":action", "name", "version", "content"],
                    "properties": {
                        ":action": {"type": "string", "enum": ["file_upload"]},
                        "name": {"type": "string", "description": "Project name"},
                        "version": {"type": "string"},
                        "content": {"type": "string", "format": "binary"},
                        "sha256_digest": {"type": "string"},
                        "md5_digest": {"type": "string"},
                        "blake2_256_digest": {"type": "string"},
                    },
                }
            }
        },
    }
}
UPLOAD_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"text/plain": {}}, "description": "Stored"},
    400: {"description": "Invalid upload (text message)"},
    401: {"description": "Authentication required"},
    403: {"description": "No write permission on the project"},
    409: {"description": "The file exists already"},
    413: {"description": "Larger than pypi.max_upload_bytes: use `stratus upload`"},
}


# What a 413 suggests instead, however the size showed (Content-Length, chunks, the file).
USE_STRATUS_UPLOAD = (
    "This index's limit for this API. Upload it with `stratus upload --repository-url "
    "<this URL> <files>` (pip install stratus-index): its upload sessions send the bytes "
    "straight to storage, any size."
)


def _too_large(limit: int) -> Response:
    return PlainTextResponse(
        f"413 Upload larger than {limit} bytes. {USE_STRATUS_UPLOAD}",
        status_code=413,
        headers={"Connection": "close"},
    )


async def _read_form(request: Request, limit: int) -> FormData:
    body = bounded(request, limit, USE_STRATUS_UPLOAD)
    try:
        return await body.form(max_part_size=8 * 1024 * 1024)
    except BodyTooLarge:
        raise
    except Exception as exc:  # multipart parser errors: bad input, not a server error
        raise InvalidInput(f"Malformed multipart upload: {exc}") from None


async def handle_upload(
    request: Request, ctx: AppContext, who: Identity, project_hint: str | None = None
) -> Response:
    # ``who`` is resolved before this runs: bad credentials answer before the body is read,
    # and so does a caller who may not upload (there) at all.
    if project_hint is not None:
        await run_in_threadpool(may_upload, ctx, who, normalize(project_hint))
    else:
        await run_in_threadpool(may_upload_anything, ctx, who)
    limit = ctx.services.settings.max_upload_bytes
    form = await _read_form(request, limit)
    try:
        return await _publish(request, ctx, who, form, limit, project_hint)
    finally:
        await form.close()  # the spooled temporary files


async def _publish(
    request: Request,
    ctx: AppContext,
    who: Identity,
    form: FormData,
    limit: int,
    project_hint: str | None,
) -> Response:
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
    project = validate_name(name)  # bounded, no CR/LF or look-alikes, before any use
    parse_version_field(version)
    request.state.audit = {"target": f"{project}/{content.filename}", "version": version}
    await run_in_threadpool(may_upload, ctx, who, project)
    data = await content.read(limit + 1)
    if len(data) > limit:  # a chunked body has no Content-Length to check up front
        return _too_large(limit)
    if ctx.services.settings.allow_overwrite:  # tell an overwrite apart in the audit log
        existing = await run_in_threadpool(ctx.services.catalog.get_file, project, content.filename)
        if existing is not None:
            request.state.audit.update(action="overwrite", replaced_sha256=existing.sha256)
    digests = {key: form.get(key) for key in ("sha256_digest", "md5_digest", "blake2_256_digest")}
    record = await run_in_threadpool(
        ctx.publisher.upload,
        name=name,
        version=version,
        filename=content.filename,
        data=data,
        digests={k: v for k, v in digests.items() if isinstance(v, str)},
        uploader=who.username,
    )
    request.state.audit["sha256"] = record.sha256
    return PlainTextResponse(f"OK: stored {record.filename}\n", status_code=200)


@route(
    router,
    "POST",
    "/",
    "/simple/",
    "/legacy/",
    response_class=PlainTextResponse,
    openapi_extra=UPLOAD_FORM,
    responses=UPLOAD_RESPONSES,
    summary="Upload a distribution (twine's legacy upload API)",
)
async def legacy_upload(request: Request, ctx: Context, who: Caller) -> Response:
    return await handle_upload(request, ctx, who)
