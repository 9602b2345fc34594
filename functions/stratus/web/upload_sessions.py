"""Upload sessions over HTTP (``stratus upload``; modelled on PEP 694, Upload 2.0).

- ``POST /_/upload-sessions/`` ``{"meta": {"api-version": "2.0"}, "name", "version",
  "filename", "size", "hashes": {"sha256": ...}}`` → 201, ``Location`` = the session's
  URL, body = the session document. Checked before any byte moves: credentials, the
  name, version and filename, write permission, size, an existing file (409).
- ``GET`` the session URL → its document: ``status`` (``pending``, ``processing``,
  ``published``, ``error``, ``canceled``), ``expires-at``/``valid-for``, and while
  pending where the bytes go: ``upload`` (one URL, method and headers to send) or
  ``parts`` (``count``, ``size``, ``uploaded``: the part numbers the store has).
- ``POST <session>/part-urls/`` ``{"parts": [1, 2, ...]}`` (at most 100) → ``{"parts":
  [{"number", "size", "url", "method", "headers"}]}``: fresh URLs, asked for in batches.
- ``POST <session>/complete/`` → 200 and the published document; 202 with
  ``Retry-After`` and ``Location`` (the session's URL, to poll) while it is checked in
  the background (files above ``upload_async_complete_bytes``) or another request
  completes it; 400 (bytes missing, wrong size or sha256, unreadable archive) or 409
  (the file exists) as a legacy upload answers. A background check records its answer
  in the session: ``published``, or ``error`` with ``message`` and ``error-status``
  (or ``pending`` again with a notice when bytes are missing).
- ``DELETE`` the session URL → cancels it (its bytes are removed).
- ``PUT /_/storage/upload/<token>`` (local mode only): where the local store's upload
  URLs point, standing in for S3's presigned URLs. No credentials: the signed token
  names the object, the exact size and (whole files) the SHA-256; the body is streamed
  to disk and refused past the size.

Every session route needs the uploader's credentials (or an admin's); a session is
invisible to other users. Write permission is checked again on completion.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from ..app.publish import Publisher
from ..app.services import Services
from ..app.upload_sessions import (
    UploadSessionService,
    part_count,
    part_size_of,
    session_service,
)
from ..domain.errors import Conflict, InvalidInput, NotFound
from ..domain.models import Identity
from ..domain.names import validate
from ..ports import LOCAL_UPLOAD_PATH, UploadReceiver, UploadSession, UploadTarget
from .bodies import bounded_json
from .deps import Caller, Context, may_upload
from .routes import both_slashes, route

router = APIRouter(tags=["upload sessions"])
SESSIONS = "/_/upload-sessions"
MAX_BODY = 8 * 1024
RETRY_AFTER = 2  # seconds a client waits before asking about a processing session again
_WRITE_BUFFER = 1024 * 1024


def build(services: Services, publisher: Publisher) -> UploadSessionService | None:
    return session_service(services, publisher)


def enabled(request: Request) -> UploadSessionService:
    service: UploadSessionService | None = getattr(request.app.state, "upload_sessions", None)
    if service is None:
        raise NotFound("Upload sessions are not enabled on this index.")
    return service


Sessions = Annotated[UploadSessionService, Depends(enabled)]


def _absolute(request: Request, url: str) -> str:
    """Storage URLs as they are; the local store's (``/_/...``) on this app's base URL."""
    if url.startswith("/"):
        return str(request.base_url).rstrip("/") + url
    return url


def _target(request: Request, target: UploadTarget) -> dict[str, Any]:
    return {
        "url": _absolute(request, target.url),
        "method": target.method,
        "headers": dict(target.headers),
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).isoformat(timespec="seconds")


def document(request: Request, service: UploadSessionService, session: UploadSession) -> dict:
    """The session as the client sees it (PEP 694's session status, for one file)."""
    url = str(request.url_for("upload_session", session_id=session.session_id))
    now = service.clock()
    doc: dict[str, Any] = {
        "meta": {"api-version": "2.0"},
        "session-id": session.session_id,
        "status": session.status,
        "name": session.display_name,
        "project": session.project,
        "version": session.version,
        "filename": session.filename,
        "size": session.size,
        "hashes": {"sha256": session.sha256},
        "expires-at": _iso(session.expires),
        "valid-for": max(0, int(session.expires - now)),
        "urls": {
            "session": url,
            "complete": url + "complete/",
            "part-urls": url + "part-urls/",
            "cancel": url,
        },
        "notices": [session.message] if session.message and session.status != "error" else [],
    }
    if session.status == "pending":
        if session.multipart_id:
            doc["mechanism"] = "stratus-presigned-multipart"
            doc["parts"] = {
                "count": part_count(session),
                "size": session.part_size,
                "uploaded": [p.number for p in service.uploaded_parts(session)],
            }
        else:
            doc["mechanism"] = "stratus-presigned-put"
            [(_, target)] = service.targets(session)
            doc["upload"] = _target(request, target)
    elif session.status == "error":
        doc["message"] = session.message
        doc["error-status"] = session.error_status
    elif session.status == "published":
        doc["file-url"] = (
            str(request.base_url).rstrip("/") + f"/files/{session.project}/{session.filename}"
        )
    return doc


def _json(doc: dict, status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=headers or None)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await bounded_json(request, MAX_BODY)
    except ValueError:
        raise InvalidInput(f"The body must be a JSON object of at most {MAX_BODY} bytes.") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.")
    return data


def _text_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"The session needs a {name!r} (a string).")
    return value


@both_slashes(router, SESSIONS, "POST", status_code=201, summary="Start an upload session")
async def create_session(
    request: Request, ctx: Context, who: Caller, service: Sessions
) -> Response:
    data = await _body(request)
    name = _text_field(data, "name")
    version = _text_field(data, "version")
    filename = _text_field(data, "filename")
    hashes = data.get("hashes")
    sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
    project = validate(name)
    request.state.audit = {"target": f"{project}/{filename}", "version": version}
    await run_in_threadpool(may_upload, ctx, who, project)  # the policy may do I/O
    session = await run_in_threadpool(
        service.create,
        uploader=who.username,
        name=name,
        version=version,
        filename=filename,
        size=data.get("size"),
        sha256=sha256,
    )
    request.state.audit.update(session=session.session_id, size=session.size)
    doc = await run_in_threadpool(document, request, service, session)
    return _json(doc, 201, Location=doc["urls"]["session"])


def _session(session_id: str, who: Identity, service: UploadSessionService) -> UploadSession:
    return service.get(session_id, who)


@route(
    router,
    "GET",
    SESSIONS + "/{session_id}/",
    SESSIONS + "/{session_id}",
    name="upload_session",
    summary="An upload session",
)
def get_session(request: Request, session_id: str, who: Caller, service: Sessions) -> Response:
    return _json(document(request, service, _session(session_id, who, service)))


@both_slashes(router, SESSIONS + "/{session_id}/part-urls", "POST", summary="Part upload URLs")
async def part_urls(request: Request, session_id: str, who: Caller, service: Sessions) -> Response:
    data = await _body(request)
    numbers = data.get("parts")
    if not isinstance(numbers, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in numbers
    ):
        raise InvalidInput('The body must be {"parts": [part numbers]}.')
    session = await run_in_threadpool(_session, session_id, who, service)
    if not session.multipart_id:
        raise InvalidInput("This session uploads the file in one request (see 'upload').")
    targets = await run_in_threadpool(service.targets, session, numbers)
    parts = []
    for number, target in targets:
        size = part_size_of(session, number)
        parts.append({"number": number, "size": size, **_target(request, target)})
    return _json({"parts": parts})


@both_slashes(router, SESSIONS + "/{session_id}/complete", "POST", summary="Complete a session")
def complete_session(
    request: Request, session_id: str, ctx: Context, who: Caller, service: Sessions
) -> Response:
    session = _session(session_id, who, service)
    request.state.audit = {"target": f"{session.project}/{session.filename}"}
    may_upload(ctx, who, session.project)  # permissions may have changed since creation
    done = service.complete(session_id, who)
    if done.status == "processing":
        doc = document(request, service, done)
        return _json(doc, 202, Location=doc["urls"]["session"], **{"Retry-After": str(RETRY_AFTER)})
    request.state.audit["sha256"] = done.sha256
    return _json(document(request, service, done))


@both_slashes(router, SESSIONS + "/{session_id}", "DELETE", summary="Cancel an upload session")
def cancel_session(request: Request, session_id: str, who: Caller, service: Sessions) -> Response:
    return _json(document(request, service, service.cancel(session_id, who)))


# --- the local store's upload URLs ---------------------------------------------------------


@router.put(LOCAL_UPLOAD_PATH + "{token}", include_in_schema=False)
async def local_upload(request: Request, token: str, ctx: Context) -> Response:
    storage = ctx.services.storage
    if not isinstance(storage, UploadReceiver):
        raise NotFound("This index stores files in S3; upload to the URLs it gave you.")
    sink = await run_in_threadpool(storage.open_upload, token)
    length = request.headers.get("content-length")
    try:
        if length is not None and (not length.isdigit() or int(length) != sink.limit):
            raise InvalidInput(f"This upload URL takes exactly {sink.limit} bytes.")
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) > sink.limit:
                raise InvalidInput(f"This upload URL takes exactly {sink.limit} bytes.")
            if len(buffer) >= _WRITE_BUFFER:
                await run_in_threadpool(sink.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(sink.write, bytes(buffer))
        await run_in_threadpool(sink.commit)
    except Conflict as exc:  # a one-time target used twice: S3 answers 412 too
        await run_in_threadpool(sink.abort)
        return Response(f"412 {exc}", status_code=412, media_type="text/plain")
    except BaseException:
        await run_in_threadpool(sink.abort)
        raise
    return Response(status_code=200)
