"""pypicloud's JSON API (manual §1.10.1-1.10.2) plus yank/unyank.

``GET /api/package/``, ``GET /api/package/<p>/``, ``POST|DELETE /api/package/<p>/<file>``,
``POST /api/package/<p>/<file>/yank`` (form field ``reason``) and ``.../unyank``,
``GET /pypi/<p>/json``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from packaging.version import InvalidVersion, Version
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..domain.models import FileRecord
from ..domain.names import normalize
from .bodies import body, documented
from .deps import Caller, Context, ReadableProject, WritableProject
from .fallback import project_view
from .files import download_path, file_path
from .routes import route
from .schemas import (
    Deleted,
    PackageFile,
    PackageNames,
    PackageSummaries,
    PackageSummary,
    PackageVersions,
    PypiFile,
    PypiInfo,
    PypiProject,
    YankBody,
    YankState,
)
from .simple import project_files, readable_projects
from .upload import UPLOAD_FORM, UPLOAD_RESPONSES, handle_upload

router = APIRouter(tags=["packages"])


def _version(v: str) -> Version:
    try:
        return Version(v)
    except InvalidVersion:  # pragma: no cover - validated at upload
        return Version("0")


def _file_url(request: Request, record: FileRecord) -> str:
    return str(request.base_url).rstrip("/") + "/" + file_path(record)


@route(router, "GET", "/api/package/", "/api/package")
def list_packages(
    ctx: Context, who: Caller, verbose: bool = False
) -> PackageNames | PackageSummaries:
    projects = readable_projects(ctx, who)
    if not verbose:
        return PackageNames(packages=[p.name for p in projects])
    summaries = []
    for p in projects:
        versions = sorted(
            {f.version for f in ctx.services.catalog.list_files(p.name)}, key=_version
        )
        stable = [v for v in versions if not _version(v).is_prerelease]
        summaries.append(
            PackageSummary(
                name=p.name,
                stable=stable[-1] if stable else None,
                unstable=versions[-1] if versions else None,
                last_modified=int(p.last_modified),
            )
        )
    return PackageSummaries(packages=summaries)


@route(router, "GET", "/api/package/{project}/", "/api/package/{project}")
def package_versions(
    request: Request, ctx: Context, who: Caller, project: ReadableProject
) -> PackageVersions:
    files = project_files(ctx, project)
    return PackageVersions(
        packages=[
            PackageFile(
                name=f.display_name or f.project,
                filename=f.filename,
                last_modified=int(f.upload_time),
                version=f.version,
                url=_file_url(request, f),
                yanked=f.yanked,
            )
            for f in sorted(files, key=lambda f: (_version(f.version), f.filename))
        ],
        write=ctx.policy.can_write(who, project),
    )


@router.post(
    "/api/package/{project}/{filename}",
    response_class=Response,
    openapi_extra=UPLOAD_FORM,
    responses=UPLOAD_RESPONSES,
    summary="Upload a distribution",
)
async def upload_file(request: Request, ctx: Context, who: Caller, project: str) -> Response:
    return await handle_upload(request, ctx, who, project_hint=project)


@router.delete("/api/package/{project}/{filename}")
def delete_file(ctx: Context, project: WritableProject, filename: str) -> Deleted:
    ctx.publisher.delete(project, filename)
    return Deleted(deleted=filename)


@router.post("/api/package/{project}/{filename}/yank", openapi_extra=documented(YankBody))
async def yank(
    ctx: Context,
    project: WritableProject,
    filename: str,
    params: Annotated[YankBody, Depends(body(YankBody))],
) -> YankState:
    record = await run_in_threadpool(ctx.publisher.yank, project, filename, params.reason)
    return YankState(filename=record.filename, yanked=record.yanked)


@router.post("/api/package/{project}/{filename}/unyank")
def unyank(ctx: Context, project: WritableProject, filename: str) -> YankState:
    record = ctx.publisher.yank(project, filename, None)
    return YankState(filename=record.filename, yanked=record.yanked)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


PYPI_JSON = {"response_model": PypiProject, "responses": {302: {"description": "To the upstream"}}}


@route(router, "GET", "/pypi/{project}/json", "/pypi/{project}/json/", **PYPI_JSON)
def pypi_json(request: Request, ctx: Context, who: Caller, project: str) -> PypiProject | Response:
    project = normalize(project)
    view = project_view(ctx, who, project, request.url.path)  # the fallback decision
    if isinstance(view, Response):
        return view  # 302 to the upstream
    files = view.files
    releases: dict[str, list[PypiFile]] = defaultdict(list)
    for f in sorted(files, key=lambda f: f.filename):
        releases[f.version].append(
            PypiFile(
                filename=f.filename,
                url=_file_url(request, f),
                packagetype=f.packagetype,
                size=f.size,
                upload_time=_iso(f.upload_time),
                upload_time_iso_8601=_iso(f.upload_time) + "Z",
                digests={"sha256": f.sha256, "md5": f.md5, "blake2b_256": f.blake2_256},
                md5_digest=f.md5,
                requires_python=f.requires_python,
                yanked=f.yanked is not None,
                yanked_reason=f.yanked or None,
            )
        )
    base = str(request.base_url).rstrip("/")
    for u in view.upstream:  # upstream files next to the stored ones (local wins clashes)
        releases[u.version].append(
            PypiFile(
                filename=u.filename,
                url=f"{base}/{download_path(project, u.filename)}" if view.via_index else u.url,
                packagetype="bdist_wheel" if u.filename.endswith(".whl") else "sdist",
                size=u.size or 0,
                upload_time=(u.upload_time or "")[:19],
                upload_time_iso_8601=u.upload_time or "",
                digests={"sha256": u.sha256},
                md5_digest=None,
                requires_python=u.requires_python,
                yanked=u.yanked is not None,
                yanked_reason=u.yanked or None,
            )
        )
    ordered = sorted(releases, key=_version)
    unyanked = [v for v in ordered if any(not x.yanked for x in releases[v])]
    latest = (unyanked or ordered)[-1]
    newest = max(
        (f for f in files if f.version == latest), key=lambda f: f.upload_time, default=None
    )
    requires_python = next((x.requires_python for x in releases[latest]), None)
    return PypiProject(
        info=PypiInfo(
            name=(newest.display_name if newest else "") or project,
            version=latest,
            summary=newest.summary if newest else None,
            requires_python=newest.requires_python if newest else requires_python,
            package_url=f"{base}/simple/{quote(project, safe='')}/",
        ),
        releases={v: releases[v] for v in ordered},
        urls=releases[latest],
    )
