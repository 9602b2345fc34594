"""Browsing: the home page, search, project and release pages, and the static files.

Each page is one catalog query (``stratus.app.browse``) filtered by the same policy
calls as ``/simple/``; a project the visitor may not read is "not found", exactly like
one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from ...app import browse
from ...domain.errors import NotFound
from ...domain.names import normalize
from ..deps import Context
from .common import UiRoute, Viewer, base_url, finish, render, url_for_path, web_ui

router = APIRouter(route_class=UiRoute, include_in_schema=False)
Page = Annotated[int, Query(ge=1, le=100_000)]
MAX_VERSION_LENGTH = 128


@router.get("/")
def home(request: Request, ctx: Context, current: Viewer, page: Page = 1) -> Response:
    listing = browse.home(ctx.services.catalog, ctx.policy, current.who, page)
    return render(request, current, "home.html", listing=listing)


@router.get("/search")
@router.get("/search/")
def search(
    request: Request,
    ctx: Context,
    current: Viewer,
    q: Annotated[str, Query(max_length=browse.MAX_QUERY_LENGTH)] = "",
    page: Page = 1,
) -> Response:
    query = " ".join(q.split())
    listing = browse.search(ctx.services.catalog, ctx.policy, current.who, query, page)
    return render(request, current, "search.html", query=query, listing=listing)


def _moved(request: Request, current: Viewer, path: str) -> Response:
    target = url_for_path(request, path)
    if request.url.query:
        target += f"?{request.url.query}"
    return finish(request, RedirectResponse(target, status_code=301), current)


def _project_page(
    request: Request, ctx: Context, current: Viewer, name: str, version: str | None
) -> Response:
    project = normalize(name)
    if len(name) > 200 or (version is not None and len(version) > MAX_VERSION_LENGTH):
        raise NotFound("No such project.")
    view = browse.project_view(
        ctx.services.catalog, ctx.services.storage, ctx.policy, current.who, project, version
    )
    # Only now (the visitor may read it): send other spellings to the canonical URL.
    wanted = f"/project/{project}/" + (f"{view.release.version}/" if version is not None else "")
    if request.url.path != url_for_path(request, wanted):
        return _moved(request, current, wanted)
    pin = "" if version is None or view.is_latest else f"=={view.release.version}"
    command = f"pip install --index-url {base_url(request)}simple/ {project}{pin}"
    return render(
        request,
        current,
        "project.html",
        view=view,
        install_command=command,
        may_manage=view.may_write,
    )


@router.get("/project/{name}/")
@router.get("/project/{name}")
def project_page(request: Request, ctx: Context, current: Viewer, name: str) -> Response:
    return _project_page(request, ctx, current, name, None)


@router.get("/project/{name}/{version}/")
@router.get("/project/{name}/{version}")
def release_page(
    request: Request, ctx: Context, current: Viewer, name: str, version: str
) -> Response:
    return _project_page(request, ctx, current, name, version)


@router.get("/static/{name}")
def static_file(request: Request, name: str, v: str = "") -> Response:
    files = web_ui(request).static
    found = files.get(name)
    if found is None:
        return Response("404 Not found", status_code=404, media_type="text/plain")
    cache = "public, max-age=31536000, immutable" if v == found.version else "no-cache"
    return Response(
        found.body,
        media_type=found.content_type,
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )
