"""The upstream fallback over HTTP (``app.upstream``, ``app.fill``, ``app.fetch``).

- ``project_view``: what ``/simple/<p>/`` and ``/pypi/<p>/json`` answer (pypicloud's
  table): a page, 401 with a challenge, 404, or 302 to ``fallback_base_url`` + the path.
- ``missing_file``: a download of a file that is not stored: 401/403/404, or the upstream
  file cache-filled (locally streamed to the client while it is stored; on AWS small files
  inline, large ones queued for the fill function while the client goes to the upstream).
- Routes: ``POST /api/fetch`` (pypicloud §1.10.2) and pypicache's ``POST /requirements.txt``;
  ``GET``/``PUT /admin/package/<p>/origin/`` (origin controls, admins only).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ..app.fill import INLINE_FILL_MAX_BYTES
from ..app.upstream import FallbackServices, ProjectView
from ..domain import origins
from ..domain.errors import InvalidInput, NotFound
from ..domain.fallback import Answer, DownloadAnswer, Mode
from ..domain.keys import METADATA_CONTENT_TYPE, METADATA_SUFFIX
from ..domain.models import FileRecord, Identity
from ..domain.names import normalize
from ..domain.upstream import FillJob
from ..settings import as_bool
from .bodies import BodyTooLarge, body, bounded, documented, parse_fields
from .deps import AppContext, Caller, Context, may_read, require_admin
from .errors import AuthRequired, Forbidden
from .routes import both_slashes

router = APIRouter(tags=["fallback"])
admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _fallback(ctx: AppContext) -> FallbackServices | None:
    return ctx.services.fallback


# --- pages ------------------------------------------------------------------------------------


def project_view(ctx: AppContext, who: Identity, project: str, path: str) -> ProjectView | Response:
    """The decision for a project page; raises 401/404, returns a 302 or what to list."""
    missing = f"No project named {project!r}."
    fb = _fallback(ctx)
    if fb is None:  # no fallback wired (tests of other features): stored files only
        may_read(ctx, who, project, missing)
        files = ctx.services.catalog.list_files(project)
        if not files:
            raise NotFound(missing)
        return ProjectView(Answer.PAGE, files=files)
    view = fb.fallback.view(who, project, may_read=ctx.policy.can_read(who, project), path=path)
    if view.answer is Answer.LOGIN:
        raise AuthRequired(f"Authentication required to read {project!r}.")
    if view.answer is Answer.REDIRECT:
        assert view.redirect is not None
        return RedirectResponse(view.redirect, status_code=302)
    if view.answer is Answer.NOT_FOUND or (not view.files and not view.upstream):
        raise NotFound(missing)
    return view


async def page_view(
    ctx: AppContext, who: Identity, project: str, path: str
) -> ProjectView | Response:
    """``project_view`` for an async route: in a worker thread only when it may wait on
    the upstream. Without a fallback it reads the catalog on the loop, as the other pages
    do (a thread per request is most of a warm page's cost under Mangum)."""
    fb = _fallback(ctx)
    if fb is None or fb.pages is None:
        return project_view(ctx, who, project, path)
    return await run_in_threadpool(project_view, ctx, who, project, path)


# --- downloads --------------------------------------------------------------------------------


def missing_file(
    ctx: AppContext, who: Identity, project: str, filename: str
) -> Response | FileRecord:
    """A download of a file the catalog does not hold (the caller may read the project).

    Returns the response, or the file's record once it is stored (meanwhile, or by an
    inline fill): the caller then serves it as any stored file.
    """
    not_found = f"No file {filename!r} in project {project!r}."
    fb = _fallback(ctx)
    if fb is None:
        raise NotFound(not_found)
    is_metadata = filename.endswith(METADATA_SUFFIX)
    dist_name = filename.removesuffix(METADATA_SUFFIX)
    decided = fb.fallback.missing_file(who, project, dist_name, may_read=True)
    if decided.answer is DownloadAnswer.LOGIN:
        raise AuthRequired(f"Authentication required to fetch {dist_name!r} from the upstream.")
    if decided.answer is DownloadAnswer.FORBIDDEN:
        raise Forbidden(
            f"User {who.username!r} may not fill the cache from the upstream index "
            "(pypi.cache_update)."
        )
    if decided.answer is not DownloadAnswer.FILL or decided.file is None:
        raise NotFound(not_found)
    file = decided.file
    if is_metadata:
        data = fb.fallback.upstream_metadata(file)
        return Response(data, media_type=METADATA_CONTENT_TYPE)
    assert fb.filler is not None
    filler = fb.filler
    job = FillJob.for_file(project, file, who.username)
    stored = filler.check(job)
    if stored is not None:
        return stored  # stored meanwhile
    if not filler.queued:  # local: stream to the client while storing
        # dist_name passed distributions.parse: plain ASCII, nothing to escape
        headers = {"Content-Disposition": f'attachment; filename="{dist_name}"'}
        if file.size is not None:
            headers["Content-Length"] = str(file.size)
        return StreamingResponse(
            filler.stream(job), media_type="application/octet-stream", headers=headers
        )
    if file.size is not None and file.size <= INLINE_FILL_MAX_BYTES:
        stored = filler.fill_locked(job)
        if stored is not None:
            return stored
    else:
        filler.dispatch(job)  # one fill per file; the others find the lock taken
    # This request goes to the upstream's copy (a Lambda response carries at most 6 MB).
    return RedirectResponse(file.url, status_code=302, headers={"Cache-Control": "no-store"})


# --- /api/fetch, /requirements.txt ------------------------------------------------------------


class FetchOutcome(BaseModel):
    fetched: list[dict[str, str]]
    failed: list[dict[str, str]]


def _flag(fields: dict[str, object], name: str, default: bool) -> bool:
    """A boolean parameter (pypicloud reads these with pyramid's ``asbool``, as
    ``settings.as_bool`` does): ``default`` when absent or empty; any other word is a 400."""
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        return as_bool(value, name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _may_fetch(ctx: AppContext, who: Identity) -> FallbackServices:
    """Authorization before any body is read: fallback = cache and ``cache_update``."""
    fb = _fallback(ctx)
    if fb is None or fb.filler is None or fb.pages is None or fb.fallback.mode is not Mode.CACHE:
        raise InvalidInput("Fetching from the upstream needs pypi.fallback = cache.")
    if not fb.fallback.may_update_cache(who):
        if not who.authenticated:
            raise AuthRequired("Authentication required to fetch from the upstream.")
        raise Forbidden(f"User {who.username!r} may not fill the cache (pypi.cache_update).")
    return fb


async def _bounded_fields(request: Request) -> dict[str, object]:
    """The form (urlencoded or multipart, file parts read as text) or JSON body, at most
    ``MAX_TEXT`` (+ a little) bytes."""
    from ..app.fetch import MAX_TEXT  # packaging.requirements: off the cold start

    limit = MAX_TEXT + 4096
    try:
        request = bounded(request, limit)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await parse_fields(request)
        form = await request.form(max_files=1, max_fields=10)
    except BodyTooLarge:
        raise InvalidInput(f"The request body is larger than {limit} bytes.") from None
    fields: dict[str, object] = {}
    for key, value in form.items():
        if isinstance(value, str):
            fields[key] = value
        else:  # curl -F requirements=@requirements.txt
            try:
                fields[key] = (await value.read()).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{key}: not UTF-8 text.") from None
    return fields


async def _fetch(request: Request, ctx: AppContext, who: Identity) -> FetchOutcome:
    from ..app.fetch import fetch_requirements

    fb = _may_fetch(ctx, who)
    fields = await _bounded_fields(request)
    text = fields.get("requirements")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("Missing parameter 'requirements' (requirements.txt text).")
    assert fb.pages is not None and fb.filler is not None  # as _may_fetch checked
    report = await run_in_threadpool(
        fetch_requirements,
        text,
        who,
        pages=fb.pages,
        filler=fb.filler,
        may_read=lambda project: ctx.policy.can_read(who, project),
        wheel=_flag(fields, "wheel", True),
        prerelease=_flag(fields, "prerelease", False),
    )
    return FetchOutcome(**report.as_dict())


FETCH_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {},
            "multipart/form-data": {},
            "application/json": {},
        },
    }
}


@both_slashes(router, "/api/fetch", "POST", openapi_extra=FETCH_DOC)
async def api_fetch(request: Request, ctx: Context, who: Caller) -> FetchOutcome:
    """Cache the best upstream match of each requirement (``requirements``, ``wheel``,
    ``prerelease``), pypicloud's ``POST /api/fetch``."""
    return await _fetch(request, ctx, who)


@router.post("/requirements.txt", openapi_extra=FETCH_DOC)
async def requirements_txt(request: Request, ctx: Context, who: Caller) -> FetchOutcome:
    """pypicache's ``curl -F requirements=@requirements.txt .../requirements.txt``."""
    return await _fetch(request, ctx, who)


# --- origin controls (admins) -----------------------------------------------------------------


class OriginBody(BaseModel):
    upstream: Literal["allow", "block"] | None = None
    publish: Literal["allow", "block"] | None = None


class OriginState(BaseModel):
    project: str
    upstream: str
    publish: str
    set_by: str | None  # "admin", "first-upload", "first-cache-fill"; None: never set
    private: bool  # matches pypi.private_projects: never from the upstream


def _origin_state(fb: FallbackServices, project: str) -> OriginState:
    controls = fb.origins.controls(project)
    private = fb.origins.is_private(project)
    current = controls or origins.OriginControls()
    return OriginState(
        project=project,
        upstream=origins.BLOCK if private else current.upstream,
        publish=current.publish,
        set_by=controls.set_by if controls else None,
        private=private,
    )


def _origin_services(ctx: AppContext) -> FallbackServices:
    fb = _fallback(ctx)
    if fb is None:
        raise InvalidInput("Origin controls are not configured on this server.")
    return fb


@both_slashes(admin_router, "/package/{project}/origin", "GET")
def get_origin(ctx: Context, project: str) -> OriginState:
    return _origin_state(_origin_services(ctx), normalize(project))


@both_slashes(
    admin_router, "/package/{project}/origin", "PUT", openapi_extra=documented(OriginBody)
)
async def put_origin(
    ctx: Context, project: str, params: Annotated[OriginBody, Depends(body(OriginBody))]
) -> OriginState:
    fb = _origin_services(ctx)
    name = normalize(project)
    given = {k: v for k, v in params.model_dump().items() if v is not None}
    current = await run_in_threadpool(fb.origins.controls, name)
    controls = origins.from_request(given, current)
    await run_in_threadpool(fb.origins.set_controls, name, controls)
    return _origin_state(fb, name)


router.include_router(admin_router)
