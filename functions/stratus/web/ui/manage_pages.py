"""Administration in the browser: users, groups, registration, signup links, and each
project's permissions and files.

``/manage/`` is for admins. ``/manage/project/<name>/`` is for admins (permissions and
files) and for the project's writers (its files only: yank, un-yank, delete). Changes
need a mutable access backend, as the admin API's do; on a read-only one the pages show
what there is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...app import tokens
from ...app.accounts import NAME, check_username
from ...domain import names
from ...domain.errors import InvalidInput, NotFound
from ...domain.permissions import PERMISSION_NAMES, check_group_name
from ...domain.versions import version_key
from ...ports import MutableAccessBackend, UserInfo
from ..deps import AppContext, Context
from ..errors import Forbidden
from .common import (
    AdminViewer,
    Member,
    UiRoute,
    Visitor,
    audit_target,
    base_url,
    field_text,
    read_form,
    redirect,
    render,
    url_for_path,
)

router = APIRouter(route_class=UiRoute, include_in_schema=False)
SIGNUP_TOKEN_SECONDS = 7 * 24 * 3600  # pypicloud's auth.token_expire default


def _mutable(ctx: AppContext) -> MutableAccessBackend:
    backend = ctx.services.mutable_access
    if backend is None:
        raise InvalidInput("The access backend is read-only: change it in its own configuration.")
    return backend


def _users_with_groups(ctx: AppContext) -> list[UserInfo]:
    """Every user with its groups: one query per group, not one per user."""
    directory = ctx.services.access
    members: dict[str, list[str]] = {}
    groups = directory.list_groups()
    for group in groups:
        for user in directory.group_members(group):
            members.setdefault(user, []).append(group)
    return [
        UserInfo(u.username, u.admin, sorted(members.get(u.username, [])))
        for u in directory.list_users()
    ]


def _manage_page(
    request: Request, ctx: AppContext, current: Visitor, signup: dict | None = None
) -> Response:
    backend = ctx.services.mutable_access
    users = _users_with_groups(ctx)
    by_group: dict[str, list[str]] = {g: [] for g in ctx.services.access.list_groups()}
    for user in users:
        for group in user.groups:
            by_group.setdefault(group, []).append(user.username)
    return render(
        request,
        current,
        "manage.html",
        active="manage",
        users=users,
        pending=backend.pending_users() if backend else [],
        groups=sorted(by_group.items()),
        allow_register=backend.allow_register() if backend else False,
        mutable=backend is not None,
        signup=signup,
        signup_available=backend is not None and bool(ctx.services.signing_key),
        projects=ctx.services.catalog.list_projects(),
    )


@router.get("/manage/")
@router.get("/manage")
def manage(request: Request, ctx: Context, current: AdminViewer) -> Response:
    return _manage_page(request, ctx, current)


async def _admin_change(
    request: Request, ctx: AppContext, current: Visitor, change: Callable[..., object], *args
) -> None:
    """Check the form, then run ``change(backend, *args)`` in a thread."""
    await read_form(request, current)
    backend = _mutable(ctx)
    await run_in_threadpool(change, backend, *args)


@router.post("/manage/users/{username}/approve")
async def approve(request: Request, ctx: Context, current: AdminViewer, username: str) -> Response:
    await _admin_change(request, ctx, current, lambda b, u: b.approve_user(u), username)
    return redirect(request, current, "/manage/#users", "approved")


@router.post("/manage/users/{username}/admin")
async def set_admin(
    request: Request, ctx: Context, current: AdminViewer, username: str
) -> Response:
    form = await read_form(request, current)
    if username == current.who.username:
        raise InvalidInput("You cannot change your own admin flag.")
    admin = field_text(form, "admin") == "true"
    await run_in_threadpool(_mutable(ctx).set_admin, username, admin)
    ctx.policy.forget(username)
    return redirect(request, current, "/manage/#users", "admin")


@router.post("/manage/users/{username}/delete")
async def delete_user(
    request: Request, ctx: Context, current: AdminViewer, username: str
) -> Response:
    await read_form(request, current)
    if username == current.who.username:
        raise InvalidInput("You cannot delete yourself.")
    await run_in_threadpool(_mutable(ctx).delete_user, username)
    ctx.policy.forget(username)
    return redirect(request, current, "/manage/#users", "deleted-user")


@router.post("/manage/users/{username}/groups")
async def set_groups(
    request: Request, ctx: Context, current: AdminViewer, username: str
) -> Response:
    form = await read_form(request, current)
    wanted = {g for g in re.split(r"[\s,]+", field_text(form, "groups", max_length=2000)) if g}
    for group in wanted:
        check_group_name(group)
        if not NAME.match(group):
            raise InvalidInput(f"Invalid group name {group!r}.")
    backend = _mutable(ctx)

    def apply() -> None:
        info = backend.get_user(username)
        if info is None:
            raise NotFound(f"No user {username!r}.")
        for group in sorted(wanted - set(info.groups)):
            backend.add_member(username, group)
        for group in sorted(set(info.groups) - wanted):
            backend.remove_member(username, group)

    await run_in_threadpool(apply)
    ctx.policy.forget(username)
    return redirect(request, current, "/manage/#users", "groups")


@router.post("/manage/groups")
async def create_group(request: Request, ctx: Context, current: AdminViewer) -> Response:
    form = await read_form(request, current)
    group = field_text(form, "group", max_length=100)
    audit_target(request, f"group:{group}")
    check_group_name(group)
    if not NAME.match(group):
        raise InvalidInput(f"Invalid group name {group!r}: letters, digits, '.', '_', '@', '-'.")
    await run_in_threadpool(_mutable(ctx).create_group, group)
    return redirect(request, current, "/manage/#groups", "group-created")


@router.post("/manage/groups/{group}/delete")
async def delete_group(
    request: Request, ctx: Context, current: AdminViewer, group: str
) -> Response:
    await _admin_change(request, ctx, current, lambda b, g: b.delete_group(g), group)
    ctx.policy.forget()  # every member's cached groups
    return redirect(request, current, "/manage/#groups", "group-deleted")


@router.post("/manage/registration")
async def registration(request: Request, ctx: Context, current: AdminViewer) -> Response:
    form = await read_form(request, current)
    allow = field_text(form, "allow") == "true"
    await run_in_threadpool(_mutable(ctx).set_allow_register, allow)
    return redirect(request, current, "/manage/#registration", "registration")


@router.post("/manage/signup-token")
async def signup_token(request: Request, ctx: Context, current: AdminViewer) -> Response:
    form = await read_form(request, current)
    username = field_text(form, "username", max_length=100)
    check_username(username)
    _mutable(ctx)
    key = ctx.services.signing_key
    if not key:
        raise InvalidInput("Set auth.signing_key to issue signup tokens.")
    seconds = int(ctx.services.settings.extra.get("auth.token_expire", SIGNUP_TOKEN_SECONDS))
    token = tokens.signup_token(username, key, seconds)
    query = urlencode({"username": username, "token": token})
    signup = {
        "username": username,
        "url": f"{base_url(request)}register?{query}",
        "expires": time.time() + seconds,
    }
    return await run_in_threadpool(_manage_page, request, ctx, current, signup)


# --- one project --------------------------------------------------------------------------


def _manageable(ctx: AppContext, current: Visitor, name: str) -> str:
    """The normalized project if the visitor is an admin or may write it; else 404/403."""
    project = names.normalize(name)
    if current.who.is_admin:
        names.validate(name)
        return project
    if not ctx.policy.can_write(current.who, project):
        if ctx.policy.can_read(current.who, project):
            raise Forbidden(f"You may not manage the project {project!r}.")
        raise NotFound(f"No project named {project!r}.")
    return project


@router.get("/manage/project/{name}/")
@router.get("/manage/project/{name}")
def manage_project(request: Request, ctx: Context, current: Member, name: str) -> Response:
    project = _manageable(ctx, current, name)
    if request.url.path != url_for_path(request, f"/manage/project/{project}/"):
        return redirect(request, current, f"/manage/project/{project}/")
    files = ctx.services.catalog.list_files(project)
    if not files and not current.who.is_admin:
        raise NotFound(f"No project named {project!r}.")
    files.sort(key=lambda f: (version_key(f.version), f.filename), reverse=True)
    settings = ctx.services.settings
    return render(
        request,
        current,
        "manage_project.html",
        active="manage",
        project=project,
        display_name=next((f.display_name for f in files if f.display_name), project),
        acl=ctx.services.access.package_acl(project) if current.who.is_admin else None,
        files=files,
        mutable=ctx.services.mutable_access is not None,
        default_read=list(settings.default_read),
        default_write=list(settings.default_write),
    )


@router.post("/manage/project/{name}/permissions")
async def set_permission(
    request: Request, ctx: Context, current: AdminViewer, name: str
) -> Response:
    project = _manageable(ctx, current, name)
    form = await read_form(request, current)
    kind, who, perm = (field_text(form, k, max_length=100) for k in ("kind", "name", "perm"))
    audit_target(request, project)
    if kind not in ("user", "group") or perm not in PERMISSION_NAMES or not NAME.match(who):
        raise InvalidInput("Choose user or group, a valid name, and read or write.")
    grant = field_text(form, "grant") == "true"
    backend = _mutable(ctx)
    await run_in_threadpool(
        backend.set_permission, project, kind, who, PERMISSION_NAMES[perm], grant
    )
    return redirect(request, current, f"/manage/project/{project}/#permissions", "permission")


@router.post("/manage/project/{name}/files/{filename}/{action}")
async def file_action(
    request: Request, ctx: Context, current: Member, name: str, filename: str, action: str
) -> Response:
    project = _manageable(ctx, current, name)
    if action not in ("yank", "unyank", "delete"):
        raise NotFound("No such action.")
    form = await read_form(request, current)
    publisher = ctx.publisher
    if action == "delete":
        await run_in_threadpool(publisher.delete, project, filename)
        if not await run_in_threadpool(ctx.services.catalog.list_files, project):
            return redirect(request, current, "/", "deleted-file")  # the project is gone
        done = "deleted-file"
    else:
        reason = field_text(form, "reason", max_length=500) if action == "yank" else None
        await run_in_threadpool(publisher.yank, project, filename, reason)
        done = "yanked" if action == "yank" else "unyanked"
    return redirect(request, current, f"/manage/project/{project}/#files", done)
