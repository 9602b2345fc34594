"""pypicloud's admin API (manual §1.10.3), same routes, parameters and JSON shapes.

Every route needs an admin. Changes need a mutable access backend; on a read-only one
(config file, remote, LDAP) they answer 400 and the read routes still work.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..app import tokens
from ..domain import passwords
from ..domain.errors import InvalidInput, NotFound
from ..domain.names import normalize
from ..wiring import signing_key
from .context import app_context, require_admin
from .params import as_bool, read_params, required
from .routing import Router
from .users import check_password, check_username, mutable_backend

router = Router(prefix="/admin")
_PERM_NAMES = {"read": "r", "write": "w"}


def _perm_list(perms: frozenset[str] | set[str]) -> list[str]:
    return [name for name, letter in _PERM_NAMES.items() if letter in perms]


def _directory(request: Request):
    return app_context(request).services.access


def _ok() -> Response:
    return Response(status_code=200)


def route(path: str, method: str):
    """Register ``path`` with and without the trailing slash, as pypicloud accepts both."""

    def wrap(func):
        router.add_api_route(path + "/", func, methods=[method])
        router.add_api_route(path, func, methods=[method], include_in_schema=False)
        return func

    return wrap


@route("/rebuild", "GET")
def rebuild(request: Request) -> Response:
    require_admin(request)
    from ..app.reconcile import reconcile

    services = app_context(request).services
    report = reconcile(services.catalog, services.storage)
    return JSONResponse(report.as_dict())


@router.get("/acl.json.gz")
def acl_download(request: Request) -> Response:
    require_admin(request)
    from ..app.acl_transfer import dump, gzip_bytes

    return Response(
        gzip_bytes(dump(_directory(request))),
        media_type="application/gzip",
        headers={"Content-Disposition": 'attachment; filename="acl.json.gz"'},
    )


@route("/register", "POST")
async def toggle_register(request: Request) -> Response:
    require_admin(request)
    allow = as_bool(required(await read_params(request), "allow"), "allow")
    await run_in_threadpool(mutable_backend(request).set_allow_register, allow)
    return _ok()


@route("/pending_users", "GET")
def pending_users(request: Request) -> Response:
    require_admin(request)
    return JSONResponse(mutable_backend(request).pending_users())


@route("/token/{username}", "GET")
def signup_token(request: Request, username: str) -> Response:
    require_admin(request)
    extra = app_context(request).services.settings.extra
    key = signing_key(extra)
    if not key:
        raise InvalidInput("Set auth.signing_key to issue registration tokens.")
    expire = int(extra.get("auth.token_expire", 7 * 24 * 3600))
    token = tokens.signup_token(username, key, expire)
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"token": token, "token_url": f"{base}/login#/?token={token}"})


# --- users ---


@route("/user", "GET")
def users(request: Request) -> Response:
    require_admin(request)
    return JSONResponse(
        [{"username": u.username, "admin": u.admin} for u in _directory(request).list_users()]
    )


@route("/user/{username}", "GET")
def user(request: Request, username: str) -> Response:
    require_admin(request)
    info = _directory(request).get_user(username)
    if info is None:
        raise NotFound(f"No user {username!r}.")
    return JSONResponse({"username": info.username, "admin": info.admin, "groups": info.groups})


@route("/user/{username}/permissions", "GET")
def user_permissions(request: Request, username: str) -> Response:
    require_admin(request)
    perms = _directory(request).user_package_permissions(username)
    return JSONResponse(
        [{"package": p, "permissions": _perm_list(v)} for p, v in sorted(perms.items())]
    )


@route("/user/{username}", "DELETE")
def delete_user(request: Request, username: str) -> Response:
    require_admin(request)
    mutable_backend(request).delete_user(username)
    app_context(request).policy.forget(username)
    return _ok()


@route("/user/{username}", "PUT")
async def create_user(request: Request, username: str) -> Response:
    require_admin(request)
    backend = mutable_backend(request)
    password = required(await read_params(request), "password")
    check_username(username)
    check_password(password)
    hashed = await run_in_threadpool(passwords.hash_password, password)
    await run_in_threadpool(backend.create_user, username, hashed)
    return _ok()


@route("/user/{username}/approve", "POST")
def approve(request: Request, username: str) -> Response:
    require_admin(request)
    mutable_backend(request).approve_user(username)
    return _ok()


@route("/user/{username}/admin", "POST")
async def set_admin(request: Request, username: str) -> Response:
    require_admin(request)
    admin = as_bool(required(await read_params(request), "admin"), "admin")
    await run_in_threadpool(mutable_backend(request).set_admin, username, admin)
    app_context(request).policy.forget(username)
    return _ok()


@route("/user/{username}/group/{group}", "PUT")
def add_member(request: Request, username: str, group: str) -> Response:
    require_admin(request)
    mutable_backend(request).add_member(username, group)
    app_context(request).policy.forget(username)
    return _ok()


@route("/user/{username}/group/{group}", "DELETE")
def remove_member(request: Request, username: str, group: str) -> Response:
    require_admin(request)
    mutable_backend(request).remove_member(username, group)
    app_context(request).policy.forget(username)
    return _ok()


# --- groups ---


@route("/group", "GET")
def groups(request: Request) -> Response:
    require_admin(request)
    return JSONResponse(_directory(request).list_groups())


@route("/group/{group}", "GET")
def group(request: Request, group: str) -> Response:
    require_admin(request)
    directory = _directory(request)
    perms = directory.group_package_permissions(group)
    return JSONResponse(
        {
            "members": directory.group_members(group),
            "packages": [
                {"package": p, "permissions": _perm_list(v)} for p, v in sorted(perms.items())
            ],
        }
    )


@route("/group/{group}", "PUT")
def create_group(request: Request, group: str) -> Response:
    require_admin(request)
    if group in ("everyone", "authenticated"):
        raise InvalidInput(f"{group!r} is a reserved name")
    mutable_backend(request).create_group(group)
    return _ok()


@route("/group/{group}", "DELETE")
def delete_group(request: Request, group: str) -> Response:
    require_admin(request)
    mutable_backend(request).delete_group(group)
    app_context(request).policy.forget()  # every member's cached groups
    return _ok()


# --- package permissions ---


@route("/package/{package}", "GET")
def package_permissions(request: Request, package: str) -> Response:
    require_admin(request)
    acl = _directory(request).package_acl(normalize(package))
    return JSONResponse(
        {
            "user": [
                {"username": u, "permissions": _perm_list(p)} for u, p in sorted(acl.users.items())
            ],
            "group": [
                {"group": g, "permissions": _perm_list(p)} for g, p in sorted(acl.groups.items())
            ],
        }
    )


def _edit_permission(request: Request, package: str, kind: str, name: str, perm: str, grant: bool):
    require_admin(request)
    if kind not in ("user", "group") or perm not in _PERM_NAMES:
        raise NotFound("Expected /admin/package/<package>/(user|group)/<name>/(read|write)/")
    mutable_backend(request).set_permission(
        normalize(package), kind, name, _PERM_NAMES[perm], grant
    )
    return _ok()


@route("/package/{package}/{kind}/{name}/{perm}", "PUT")
def grant(request: Request, package: str, kind: str, name: str, perm: str) -> Response:
    return _edit_permission(request, package, kind, name, perm, True)


@route("/package/{package}/{kind}/{name}/{perm}", "DELETE")
def revoke(request: Request, package: str, kind: str, name: str, perm: str) -> Response:
    return _edit_permission(request, package, kind, name, perm, False)
