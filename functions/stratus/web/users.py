"""User self-service: registration and password change (pypicloud §1.10.2), API tokens.

``PUT /api/user/<name>/`` registers (the first user becomes admin when none exists;
otherwise registration must be enabled, or a signup token from ``/admin/token`` given);
``POST /api/user/password`` changes one's password; ``/api/tokens/`` creates, lists and
revokes API tokens (secret shown once).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from ..app import accounts, tokens
from ..app.accounts import check_password
from ..domain import passwords
from ..domain.errors import InvalidInput, NotFound
from ..domain.models import Identity
from ..domain.names import normalize
from ..ports import MutableAccessBackend
from .bodies import body, documented
from .deps import Context, Directory, User
from .errors import Forbidden
from .routes import both_slashes
from .schemas import (
    ChangePasswordBody,
    NewToken,
    NewTokenBody,
    PasswordChanged,
    RegisterBody,
    Registered,
    Revoked,
    Token,
    TokenList,
)

router = APIRouter(tags=["users and tokens"])


def unscoped_user(who: User) -> Identity:
    """A logged-in user with their full rights (not a token scoped to some projects)."""
    if who.upload_scope is not None:
        raise Forbidden("A scoped API token cannot manage passwords or tokens.")
    return who


FullUser = Annotated[Identity, Depends(unscoped_user)]


def token_store(ctx: Context) -> MutableAccessBackend:
    if ctx.services.tokens is None:
        raise InvalidInput("API tokens are not available on this deployment.")
    return ctx.services.tokens


TokenStore = Annotated[MutableAccessBackend, Depends(token_store)]


@both_slashes(
    router, "/api/user/{username}", "PUT", status_code=201, openapi_extra=documented(RegisterBody)
)
async def register(
    ctx: Context,
    backend: Directory,
    username: str,
    params: Annotated[RegisterBody, Depends(body(RegisterBody))],
) -> Registered:
    status = await run_in_threadpool(
        lambda: accounts.register(
            backend,
            username,
            params.password,
            token=params.token,
            signing_key=ctx.services.signing_key,
        )
    )
    return Registered(username=username, status=status)


@both_slashes(router, "/api/user/password", "POST", openapi_extra=documented(ChangePasswordBody))
async def change_password(
    ctx: Context,
    who: FullUser,
    backend: Directory,
    params: Annotated[ChangePasswordBody, Depends(body(ChangePasswordBody))],
) -> PasswordChanged:
    check_password(params.new_password)
    assert who.username is not None
    if not await run_in_threadpool(backend.verify_user, who.username, params.old_password):
        raise Forbidden("The old password is wrong.")
    hashed = await run_in_threadpool(passwords.hash_password, params.new_password)
    await run_in_threadpool(backend.set_password_hash, who.username, hashed)
    ctx.policy.forget(who.username)
    return PasswordChanged(username=who.username, changed=True)


# --- API tokens ---


@both_slashes(
    router, "/api/tokens", "POST", status_code=201, openapi_extra=documented(NewTokenBody)
)
async def create_token(
    who: FullUser,
    store: TokenStore,
    params: Annotated[NewTokenBody, Depends(body(NewTokenBody))],
) -> NewToken:
    owner = params.username or who.username
    assert owner is not None
    if owner != who.username and not who.is_admin:
        raise Forbidden("Only admins create tokens for other users.")
    scope = sorted({normalize(p) for p in params.projects}) if params.projects else None
    secret, record = tokens.new_token(
        owner, params.name, projects=scope, expires_in=params.expires_in
    )
    await run_in_threadpool(store.add_token, record)
    return NewToken(token=secret, **tokens.public(record))


@both_slashes(router, "/api/tokens", "GET")
def list_tokens(who: User, store: TokenStore, username: str | None = None) -> TokenList:
    owner = username or who.username
    if owner != who.username and not who.is_admin:
        raise Forbidden("Only admins list other users' tokens.")
    assert owner is not None
    return TokenList(tokens=[Token(**tokens.public(t)) for t in store.list_tokens(owner)])


@both_slashes(router, "/api/tokens/{token_id}", "DELETE")
def revoke_token(who: User, store: TokenStore, token_id: str) -> Revoked:
    record = store.get_token(token_id)
    if record is None or (record.username != who.username and not who.is_admin):
        raise NotFound(f"No token {token_id!r}.")
    store.delete_token(token_id)
    return Revoked(revoked=token_id)
