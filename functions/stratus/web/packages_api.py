"""pypicloud's JSON API (manual §1.10.1-1.10.2) plus yank/unyank.

``GET /api/package/``, ``GET /api/package/<p>/``, ``POST|DELETE /api/package/<p>/<file>``,
``POST /api/package/<p>/<file>/yank`` (form field ``reason``) and ``.../unyank``,
``GET /pypi/<p>/json``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from packaging.version import InvalidVersion, Version
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..domain.errors import NotFound
from ..domain.models import FileRecord
from ..domain.names import normalize
from .context import app_context, identity
from .routing import Router
from .simple import readable_files
from .upload import check_write, handle_upload

router = Router()


def _version(v: str) -> Version:
    try:
        return Version(v)
    except InvalidVersion:  # pragma: no cover - validated at upload
        return Version("0")


def _file_url(request: Request, record: FileRecord) -> str:
    return str(request.base_url).rstrip("/") + f"/files/{record.project}/{record.filename}"


@router.get("/api/package/")
@router.get("/api/package")
def list_packages(request: Request, verbose: bool = False) -> Response:
    ctx = app_context(request)
    who = identity(request)
    projects = [p for p in ctx.services.catalog.list_projects() if ctx.policy.can_read(who, p.name)]
    if not verbose:
        return JSONResponse({"packages": [p.name for p in projects]})
    summaries = []
    for p in projects:
        versions = sorted(
            {f.version for f in ctx.services.catalog.list_files(p.name)}, key=_version
        )
        stable = [v for v in versions if not _version(v).is_prerelease]
        summaries.append(
            {
                "name": p.name,
                "stable": stable[-1] if stable else None,
                "unstable": versions[-1] if versions else None,
                "last_modified": int(p.last_modified),
            }
        )
    return JSONResponse({"packages": summaries})


@router.get("/api/package/{project}/")
@router.get("/api/package/{project}")
def package_versions(request: Request, project: str) -> Response:
    project = normalize(project)
    who = identity(request)
    files = readable_files(request, who, project)
    ctx = app_context(request)
    return JSONResponse(
        {
            "packages": [
                {
                    "name": f.display_name or f.project,
                    "filename": f.filename,
                    "last_modified": int(f.upload_time),
                    "version": f.version,
                    "url": _file_url(request, f),
                    "yanked": f.yanked,
                }
                for f in sorted(files, key=lambda f: (_version(f.version), f.filename))
            ],
            "write": ctx.policy.can_write(who, project),
        }
    )


@router.post("/api/package/{project}/{filename}")
async def upload_file(request: Request, project: str, filename: str) -> Response:
    return await handle_upload(request, project_hint=project)


@router.delete("/api/package/{project}/{filename}")
def delete_file(request: Request, project: str, filename: str) -> Response:
    project = normalize(project)
    check_write(request, project)
    app_context(request).publisher.delete(project, filename)
    return JSONResponse({"deleted": filename})


async def _set_yank(request: Request, project: str, filename: str, yank: bool) -> Response:
    project = normalize(project)
    check_write(request, project)
    reason: str | None = None
    if yank:
        form = await request.form()
        reason = str(form.get("reason") or "")
    from starlette.concurrency import run_in_threadpool

    record = await run_in_threadpool(app_context(request).publisher.yank, project, filename, reason)
    return JSONResponse({"filename": record.filename, "yanked": record.yanked})


@router.post("/api/package/{project}/{filename}/yank")
async def yank(request: Request, project: str, filename: str) -> Response:
    return await _set_yank(request, project, filename, True)


@router.post("/api/package/{project}/{filename}/unyank")
async def unyank(request: Request, project: str, filename: str) -> Response:
    return await _set_yank(request, project, filename, False)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@router.get("/pypi/{project}/json")
@router.get("/pypi/{project}/json/")
def pypi_json(request: Request, project: str) -> Response:
    project = normalize(project)
    files = readable_files(request, identity(request), project)
    releases: dict[str, list[dict]] = defaultdict(list)
    for f in sorted(files, key=lambda f: f.filename):
        releases[f.version].append(
            {
                "filename": f.filename,
                "url": _file_url(request, f),
                "packagetype": f.packagetype,
                "size": f.size,
                "upload_time": _iso(f.upload_time),
                "upload_time_iso_8601": _iso(f.upload_time) + "Z",
                "digests": {"sha256": f.sha256, "md5": f.md5, "blake2b_256": f.blake2_256},
                "md5_digest": f.md5,
                "requires_python": f.requires_python,
                "yanked": f.yanked is not None,
                "yanked_reason": f.yanked or None,
            }
        )
    ordered = sorted(releases, key=_version)
    unyanked = [v for v in ordered if any(not x["yanked"] for x in releases[v])]
    latest = (unyanked or ordered)[-1]
    newest = max((f for f in files if f.version == latest), key=lambda f: f.upload_time)
    if not releases:
        raise NotFound(f"No project named {project!r}.")
    return JSONResponse(
        {
            "info": {
                "name": newest.display_name or project,
                "version": latest,
                "summary": newest.summary,
                "requires_python": newest.requires_python,
                "package_url": str(request.base_url).rstrip("/") + f"/simple/{project}/",
            },
            "releases": {v: releases[v] for v in ordered},
            "urls": releases[latest],
        }
    )
