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
from ..app.tokens import TokenManager
from ..domain import passwords
from ..domain.errors import InvalidInput
from ..domain.models import Identity
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


def managing_user(who: User) -> Identity:
    """A logged-in user whose credential may manage the account: a password, or a token
    neither scoped to projects nor without the ``manage`` capability (403 otherwise)."""
    tokens.require_manage(who)
    return who


FullUser = Annotated[Identity, Depends(managing_user)]


def token_manager(ctx: Context) -> TokenManager:
    if ctx.services.tokens is None:
        raise InvalidInput("API tokens are not available on this deployment.")
    return TokenManager(ctx.services.tokens, ctx.services.access)


Tokens = Annotated[TokenManager, Depends(token_manager)]


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
def create_token(
    who: FullUser,
    manager: Tokens,
    params: Annotated[NewTokenBody, Depends(body(NewTokenBody))],
) -> NewToken:
    secret, record = manager.create(
        who,
        params.name,
        owner=params.username,
        projects=params.projects,
        expires_in=params.expires_in,
        admin=params.admin,
        capabilities=params.capabilities,
    )
    return NewToken(token=secret, **tokens.public(record))


@both_slashes(router, "/api/tokens", "GET")
def list_tokens(who: FullUser, manager: Tokens, username: str | None = None) -> TokenList:
    return TokenList(tokens=[Token(**tokens.public(t)) for t in manager.list(who, username)])


@both_slashes(router, "/api/tokens/{token_id}", "DELETE")
def revoke_token(ctx: Context, who: FullUser, manager: Tokens, token_id: str) -> Revoked:
    manager.revoke(who, token_id)
    ctx.policy.forget_token(token_id)
    return Revoked(revoked=token_id)
