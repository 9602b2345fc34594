"""User self-service: registration and password change (pypicloud §1.10.2), API tokens.

``PUT /api/user/<name>/`` registers (the first user becomes admin when none exists;
otherwise registration must be enabled, or a signup token from ``/admin/token`` given);
``POST /api/user/password`` changes one's password; ``/api/tokens/`` creates, lists and
revokes API tokens (secret shown once).
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..app import tokens
from ..domain import passwords
from ..domain.errors import Conflict, InvalidInput, NotFound
from ..domain.names import normalize
from ..ports import MutableAccessBackend
from ..wiring import signing_key
from .context import app_context, require_user
from .errors import Forbidden
from .params import read_params, required
from .routing import Router

router = Router()
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
RESERVED = {"everyone", "authenticated", "__token__"}


def mutable_backend(request: Request) -> MutableAccessBackend:
    backend = app_context(request).services.mutable_access
    if backend is None:
        raise InvalidInput(
            "The access backend is read-only; use pypi.auth = sqlite, dynamo or "
            "aws_secrets_manager to manage users through the API."
        )
    return backend


def check_username(username: str) -> None:
    if not _USERNAME.match(username) or username in RESERVED:
        raise InvalidInput(
            f"Invalid username {username!r}: 1-100 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit; 'everyone', 'authenticated' and '__token__' "
            "are reserved."
        )


def check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("Passwords must have at least 8 characters.")


@router.put("/api/user/{username}/")
@router.put("/api/user/{username}")
async def register(request: Request, username: str) -> Response:
    backend = mutable_backend(request)
    params = await read_params(request)
    password = required(params, "password")
    check_username(username)
    check_password(password)
    ctx = app_context(request)
    token = params.get("token")
    approved = admin = False
    if token:
        key = signing_key(ctx.services.settings.extra)
        if not key or tokens.check_signup_token(str(token), key) != username:
            raise Forbidden("Invalid or expired registration token.")
        approved = True
    elif not await run_in_threadpool(backend.has_admin):
        approved = admin = True  # pypicloud: the first user becomes the admin
    elif not await run_in_threadpool(backend.allow_register):
        raise Forbidden("Registration is disabled on this server.")
    hashed = await run_in_threadpool(passwords.hash_password, password)
    try:
        await run_in_threadpool(
            lambda: backend.create_user(username, hashed, admin=admin, pending=not approved)
        )
    except Conflict:
        raise Conflict(f"User {username!r} already exists.") from None
    status = "admin" if admin else ("approved" if approved else "pending")
    return JSONResponse({"username": username, "status": status}, status_code=201)


@router.post("/api/user/password")
@router.post("/api/user/password/")
async def change_password(request: Request) -> Response:
    who = require_user(request)
    if who.upload_scope is not None:
        raise Forbidden("A scoped API token cannot change a password.")
    backend = mutable_backend(request)
    params = await read_params(request)
    old, new = required(params, "old_password"), required(params, "new_password")
    check_password(new)
    assert who.username is not None
    if not await run_in_threadpool(backend.verify_user, who.username, old):
        raise Forbidden("The old password is wrong.")
    hashed = await run_in_threadpool(passwords.hash_password, new)
    await run_in_threadpool(backend.set_password_hash, who.username, hashed)
    app_context(request).policy.forget(who.username)
    return JSONResponse({"username": who.username, "changed": True})


# --- API tokens ---


def _token_store(request: Request) -> MutableAccessBackend:
    store = app_context(request).services.tokens
    if store is None:
        raise InvalidInput("API tokens are not available on this deployment.")
    return store


@router.post("/api/tokens/")
@router.post("/api/tokens")
async def create_token(request: Request) -> Response:
    who = require_user(request)
    if who.upload_scope is not None:
        raise Forbidden("A scoped API token cannot create tokens.")
    params = await read_params(request)
    owner = str(params.get("username") or who.username)
    if owner != who.username and not who.is_admin:
        raise Forbidden("Only admins create tokens for other users.")
    projects = params.get("projects")
    if isinstance(projects, str):
        projects = [p for p in re.split(r"[\s,]+", projects) if p]
    scope = sorted({normalize(p) for p in projects}) if projects else None
    expires_in = params.get("expires_in")
    try:
        expires = float(expires_in) if expires_in not in (None, "") else None
    except ValueError:
        raise InvalidInput("expires_in must be a number of seconds.") from None
    secret, record = tokens.new_token(
        owner, str(params.get("name") or ""), projects=scope, expires_in=expires
    )
    await run_in_threadpool(_token_store(request).add_token, record)
    return JSONResponse({"token": secret, **tokens.public(record)}, status_code=201)


@router.get("/api/tokens/")
@router.get("/api/tokens")
def list_tokens(request: Request, username: str | None = None) -> Response:
    who = require_user(request)
    owner = username or who.username
    if owner != who.username and not who.is_admin:
        raise Forbidden("Only admins list other users' tokens.")
    assert owner is not None
    return JSONResponse(
        {"tokens": [tokens.public(t) for t in _token_store(request).list_tokens(owner)]}
    )


@router.delete("/api/tokens/{token_id}")
@router.delete("/api/tokens/{token_id}/")
def revoke_token(request: Request, token_id: str) -> Response:
    who = require_user(request)
    store = _token_store(request)
    record = store.get_token(token_id)
    if record is None or (record.username != who.username and not who.is_admin):
        raise NotFound(f"No token {token_id!r}.")
    store.delete_token(token_id)
    return JSONResponse({"revoked": token_id})
