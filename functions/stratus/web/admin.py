"""pypicloud's admin API (manual §1.10.3), same routes, parameters and JSON shapes.

Every route needs an admin (a router dependency, resolved before any body is read).
Changes need a mutable access backend; on a read-only one (config file, remote, LDAP)
they answer 400 and the read routes still work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..app import tokens
from ..app.accounts import check_password, check_username
from ..domain import passwords
from ..domain.errors import BackendUnavailable, InvalidInput, NotFound
from ..domain.names import normalize
from ..domain.permissions import PERMISSION_NAMES, check_group_name, permission_names
from ..domain.runs import RunStatus
from .bodies import body, documented
from .deps import Context, Directory, require_admin
from .routes import both_slashes
from .schemas import (
    AdminFlagBody,
    AllowBody,
    GroupDetail,
    GroupPermissions,
    PackageAclBody,
    PackagePermissions,
    PasswordBody,
    RebuildStatus,
    SignupToken,
    UserDetail,
    UserPermissions,
    UserSummary,
)

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
DONE = {"response_class": Response, "responses": {200: {"description": "Done (empty body)"}}}


def route(path: str, method: str, **options):
    return both_slashes(router, path, method, **options)


def _ok() -> Response:
    return Response(status_code=200)


def _status(request: Request, run: RunStatus) -> RebuildStatus:
    url = str(request.url_for("rebuild_status", run_id=run.run_id))
    return RebuildStatus(**run.as_dict(), status_url=url)


REBUILD_STARTED = {
    "status_code": 202,
    "responses": {202: {"description": "Started; poll status_url"}},
}


@route("/rebuild", "GET", **REBUILD_STARTED)
@route("/rebuild", "POST", **REBUILD_STARTED)
def rebuild(
    request: Request, ctx: Context, dry_run: bool = False, deep: bool = False
) -> RebuildStatus:
    """Start a reconcile run in the background (pypicloud's rebuild, asynchronous)."""
    runner = ctx.services.rebuild
    if runner is None:
        raise BackendUnavailable("Background rebuilds are not configured on this deployment.")
    return _status(request, runner.start(dry_run=dry_run, deep=deep))


@router.get("/rebuild/{run_id}/", name="rebuild_status")
@router.get("/rebuild/{run_id}", include_in_schema=False, name="rebuild_status_no_slash")
def rebuild_status(request: Request, ctx: Context, run_id: str) -> RebuildStatus:
    runner = ctx.services.rebuild
    run = runner.runs.get(run_id) if runner is not None else None
    if run is None:
        raise NotFound(f"No rebuild run {run_id!r} (statuses are kept for 14 days).")
    return _status(request, run)


@router.get(
    "/acl.json.gz",
    response_class=Response,
    responses={200: {"content": {"application/gzip": {}}, "description": "The ACL, gzipped"}},
)
def acl_download(ctx: Context) -> Response:
    from ..app.acl_transfer import dump, gzip_bytes

    return Response(
        gzip_bytes(dump(ctx.services.access)),
        media_type="application/gzip",
        headers={"Content-Disposition": 'attachment; filename="acl.json.gz"'},
    )


@route("/register", "POST", openapi_extra=documented(AllowBody), **DONE)
async def toggle_register(
    backend: Directory, params: Annotated[AllowBody, Depends(body(AllowBody))]
) -> Response:
    await run_in_threadpool(backend.set_allow_register, params.allow)
    return _ok()


@route("/pending_users", "GET")
def pending_users(backend: Directory) -> list[str]:
    return backend.pending_users()


@route("/token/{username}", "GET")
def signup_token(request: Request, ctx: Context, username: str) -> SignupToken:
    key = ctx.services.signing_key
    if not key:
        raise InvalidInput("Set auth.signing_key to issue registration tokens.")
    expire = int(ctx.services.settings.extra.get("auth.token_expire", 7 * 24 * 3600))
    token = tokens.signup_token(username, key, expire)
    base = str(request.base_url).rstrip("/")
    return SignupToken(token=token, token_url=f"{base}/login#/?token={token}")


# --- users ---


@route("/user", "GET")
def users(ctx: Context) -> list[UserSummary]:
    return [
        UserSummary(username=u.username, admin=u.admin) for u in ctx.services.access.list_users()
    ]


@route("/user/{username}", "GET")
def user(ctx: Context, username: str) -> UserDetail:
    info = ctx.services.access.get_user(username)
    if info is None:
        raise NotFound(f"No user {username!r}.")
    return UserDetail(username=info.username, admin=info.admin, groups=info.groups)


@route("/user/{username}/permissions", "GET")
def user_permissions(ctx: Context, username: str) -> list[PackagePermissions]:
    perms = ctx.services.access.user_package_permissions(username)
    return [
        PackagePermissions(package=p, permissions=permission_names(v))
        for p, v in sorted(perms.items())
    ]


@route("/user/{username}", "DELETE", **DONE)
def delete_user(ctx: Context, backend: Directory, username: str) -> Response:
    backend.delete_user(username)
    ctx.policy.forget(username)
    return _ok()


@route("/user/{username}", "PUT", openapi_extra=documented(PasswordBody), **DONE)
async def create_user(
    backend: Directory,
    username: str,
    params: Annotated[PasswordBody, Depends(body(PasswordBody))],
) -> Response:
    check_username(username)
    check_password(params.password)
    hashed = await run_in_threadpool(passwords.hash_password, params.password)
    await run_in_threadpool(backend.create_user, username, hashed)
    return _ok()


@route("/user/{username}/approve", "POST", **DONE)
def approve(backend: Directory, username: str) -> Response:
    backend.approve_user(username)
    return _ok()


@route("/user/{username}/admin", "POST", openapi_extra=documented(AdminFlagBody), **DONE)
async def set_admin(
    ctx: Context,
    backend: Directory,
    username: str,
    params: Annotated[AdminFlagBody, Depends(body(AdminFlagBody))],
) -> Response:
    await run_in_threadpool(backend.set_admin, username, params.admin)
    ctx.policy.forget(username)
    return _ok()


@route("/user/{username}/group/{group}", "PUT", **DONE)
def add_member(ctx: Context, backend: Directory, username: str, group: str) -> Response:
    backend.add_member(username, group)
    ctx.policy.forget(username)
    return _ok()


@route("/user/{username}/group/{group}", "DELETE", **DONE)
def remove_member(ctx: Context, backend: Directory, username: str, group: str) -> Response:
    backend.remove_member(username, group)
    ctx.policy.forget(username)
    return _ok()


# --- groups ---


@route("/group", "GET")
def groups(ctx: Context) -> list[str]:
    return ctx.services.access.list_groups()


@route("/group/{group}", "GET")
def group(ctx: Context, group: str) -> GroupDetail:
    directory = ctx.services.access
    perms = directory.group_package_permissions(group)
    return GroupDetail(
        members=directory.group_members(group),
        packages=[
            PackagePermissions(package=p, permissions=permission_names(v))
            for p, v in sorted(perms.items())
        ],
    )


@route("/group/{group}", "PUT", **DONE)
def create_group(backend: Directory, group: str) -> Response:
    check_group_name(group)
    backend.create_group(group)
    return _ok()


@route("/group/{group}", "DELETE", **DONE)
def delete_group(ctx: Context, backend: Directory, group: str) -> Response:
    backend.delete_group(group)
    ctx.policy.forget()  # every member's cached groups
    return _ok()


# --- package permissions ---


@route("/package/{package}", "GET")
def package_permissions(ctx: Context, package: str) -> PackageAclBody:
    acl = ctx.services.access.package_acl(normalize(package))
    return PackageAclBody(
        user=[
            UserPermissions(username=u, permissions=permission_names(p))
            for u, p in sorted(acl.users.items())
        ],
        group=[
            GroupPermissions(group=g, permissions=permission_names(p))
            for g, p in sorted(acl.groups.items())
        ],
    )


def _edit_permission(
    backend: Directory, package: str, kind: str, name: str, perm: str, grant: bool
) -> Response:
    if kind not in ("user", "group") or perm not in PERMISSION_NAMES:
        raise NotFound("Expected /admin/package/<package>/(user|group)/<name>/(read|write)/")
    backend.set_permission(normalize(package), kind, name, PERMISSION_NAMES[perm], grant)
    return _ok()


@route("/package/{package}/{kind}/{name}/{perm}", "PUT", **DONE)
def grant(backend: Directory, package: str, kind: str, name: str, perm: str) -> Response:
    return _edit_permission(backend, package, kind, name, perm, True)


@route("/package/{package}/{kind}/{name}/{perm}", "DELETE", **DONE)
def revoke(backend: Directory, package: str, kind: str, name: str, perm: str) -> Response:
    return _edit_permission(backend, package, kind, name, perm, False)
