"""API tokens (twine's ``__token__`` convention) and pypicloud's signed registration tokens.

An API token is ``stratus_<id>_<secret>``. Only SHA-256 of the secret is stored, so
checking one costs a lookup and a hash, never a password hash.

What a token allows (never more than its user may do):

- ``projects``: None, or the (normalized) projects it may upload to;
- ``expires``: None, or when it stops working;
- ``capabilities``: a subset of ``domain.models.CAPABILITIES`` — ``read`` (install),
  ``upload``, ``manage`` (the user's tokens and password) and ``admin`` (admin powers, if
  the user is an admin). A scoped token carries neither ``manage`` nor ``admin``.

:class:`TokenManager` creates, lists and revokes tokens for a caller, and refuses
(``PermissionDenied``) whatever would widen the caller's own credential: a token creates
only tokens with a scope, an expiry and capabilities no wider than its own; a scoped
token or one without ``manage`` manages no tokens at all. Tokens minted by trusted
publishing (:func:`new_upload_token`, kept in their own store) carry ``upload`` only;
other trusted server-side minting uses :meth:`TokenManager.issue`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..domain.errors import InvalidInput, NotFound, PermissionDenied
from ..domain.models import (
    ADMIN_CAP,
    CAPABILITIES,
    MANAGE_CAP,
    READ_CAP,
    UPLOAD_CAP,
    Identity,
)
from ..domain.names import validate
from ..ports import AccessBackend, AccessDirectory, TokenRecord, TokenStore

PREFIX = "stratus_"
# Ids of tokens minted by trusted publishing start so (random ids are hex: never do).
MINTED_ID_PREFIX = "oidc"
TOKEN_USER = "__token__"  # the user name twine sends with an API token
# What a scoped token made before capabilities existed (or without naming any) may do.
SCOPED_CAPABILITIES = frozenset({READ_CAP, UPLOAD_CAP})
UNSCOPED_ONLY = frozenset({MANAGE_CAP, ADMIN_CAP})
MAX_TOKEN_PROJECTS = 100


def scope_of(projects: Iterable[str] | None) -> list[str] | None:
    """Validated, normalized, sorted project names (None stays None: unscoped)."""
    if projects is None:
        return None
    scope = sorted({validate(str(p)) for p in projects})
    if len(scope) > MAX_TOKEN_PROJECTS:
        raise InvalidInput(f"A token may name at most {MAX_TOKEN_PROJECTS} projects.")
    return scope


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def capabilities_of(record: TokenRecord) -> frozenset[str]:
    """What the token may do (see the module docstring)."""
    if record.capabilities is not None:
        caps = frozenset(record.capabilities) & CAPABILITIES
    else:
        caps = CAPABILITIES if record.projects is None else SCOPED_CAPABILITIES
    return caps if record.projects is None else caps - UNSCOPED_ONLY


def check_capabilities(capabilities: Iterable[str], scoped: bool) -> frozenset[str]:
    caps = frozenset(capabilities)
    unknown = caps - CAPABILITIES
    if unknown:
        raise InvalidInput(
            f"Unknown token capabilities {sorted(unknown)}; choose from {sorted(CAPABILITIES)}."
        )
    if not caps:
        raise InvalidInput("A token needs at least one capability.")
    if scoped and caps & UNSCOPED_ONLY:
        raise InvalidInput(
            f"A token limited to projects cannot carry {sorted(caps & UNSCOPED_ONLY)}."
        )
    return caps


def new_token(
    username: str,
    name: str,
    *,
    projects: Iterable[str] | None = None,
    expires_in: float | None = None,
    capabilities: Iterable[str] | None = None,
    now: float | None = None,
    expires_at: float | None = None,
) -> tuple[str, TokenRecord]:
    """Return (the full token to show once, the record to store).

    ``capabilities`` None: every capability for an unscoped token, read and upload for
    a scoped one. ``expires_at`` (epoch seconds) instead of ``expires_in``: an end in
    absolute time.
    """
    if not name or len(name) > 100:
        raise InvalidInput("A token needs a name of 1 to 100 characters.")
    if expires_in is not None and expires_in <= 0:
        raise InvalidInput("expires_in must be a positive number of seconds.")
    scope = sorted(set(projects)) if projects is not None else None
    if capabilities is None:
        caps = CAPABILITIES if scope is None else SCOPED_CAPABILITIES
    else:
        caps = check_capabilities(capabilities, scope is not None)
    created = time.time() if now is None else now
    if expires_at is None and expires_in:
        expires_at = created + expires_in
    if expires_at is not None and expires_at <= created:
        raise InvalidInput("The token would expire before it is made.")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(
        token_id=token_id,
        username=username,
        name=name,
        secret_sha256=_digest(secret),
        created=created,
        expires=expires_at,
        projects=scope,
        capabilities=sorted(caps),
    )
    return f"{PREFIX}{token_id}_{secret}", record


def new_upload_token(
    principal: str,
    name: str,
    projects: Iterable[str],
    *,
    expires_in: float,
    now: float | None = None,
) -> tuple[str, TokenRecord]:
    """A trusted-publishing token: may upload to exactly ``projects``, nothing else."""
    scope = sorted(set(projects))
    if not scope:
        raise InvalidInput("An upload token needs at least one project.")
    full, record = new_token(
        principal, name, projects=scope, expires_in=expires_in, capabilities=[UPLOAD_CAP], now=now
    )
    parts = split(full)
    assert parts is not None
    record.token_id = MINTED_ID_PREFIX + parts[0]
    record.upload_only = True
    return f"{PREFIX}{record.token_id}_{parts[1]}", record


def is_minted(token_id: str) -> bool:
    return token_id.startswith(MINTED_ID_PREFIX)


def split(token: str) -> tuple[str, str] | None:
    """(token_id, secret) of something shaped like an API token, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not token_id or not secret:
        return None
    return token_id, secret


def matches(record: TokenRecord, secret: str, now: float | None = None) -> bool:
    """Constant-time check of the secret, and not expired."""
    if record.expires is not None and (time.time() if now is None else now) >= record.expires:
        return False
    return hmac.compare_digest(record.secret_sha256, _digest(secret))


def public(record: TokenRecord) -> dict[str, Any]:
    """What listing shows: everything but the hash."""
    return {
        "id": record.token_id,
        "name": record.name,
        "username": record.username,
        "created": int(record.created),
        "expires": int(record.expires) if record.expires else None,
        "projects": record.projects,
        "upload_only": record.upload_only,
        "capabilities": sorted(capabilities_of(record)),
    }


def holds_users(store: TokenStore | None, access: AccessBackend) -> bool:
    """Whether the token store is the access backend (its users are the tokens' users).

    Otherwise (a config file, LDAP or a remote server for users) the store holds tokens
    of users it does not know, and the access backend vouches for them.
    """
    return store is access


def user_exists(access: AccessBackend, username: str) -> bool:
    """Whether a read-only access backend still knows ``username`` (every backend has a
    directory; one without is trusted)."""
    if isinstance(access, AccessDirectory):
        return access.get_user(username) is not None
    return True


def require_manage(who: Identity) -> None:
    """Raise ``PermissionDenied`` unless the credential may manage tokens."""
    if not who.may_manage:
        raise PermissionDenied(
            "This credential cannot manage API tokens: a token limited to projects, or "
            "without the 'manage' capability, is refused. Use your password or an "
            "unrestricted token."
        )


class TokenManager:
    """Token management on behalf of a caller (``who``), on one token store."""

    def __init__(
        self,
        store: TokenStore,
        access: AccessBackend,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.access = access
        self.clock = clock

    def issue(
        self,
        owner: str,
        name: str,
        *,
        projects: Iterable[str] | None = None,
        expires_in: float | None = None,
        capabilities: Iterable[str] | None = None,
        expires_at: float | None = None,
        now: float | None = None,
    ) -> tuple[str, TokenRecord]:
        """Make and store a token for ``owner`` (no caller checks: trusted callers only).

        Raise ``NotFound`` for an unknown owner.
        """
        scope = scope_of(projects)
        secret, record = new_token(
            owner,
            name,
            projects=scope,
            expires_in=expires_in,
            capabilities=capabilities,
            now=self.clock() if now is None else now,
            expires_at=expires_at,
        )
        if holds_users(self.store, self.access):
            self.store.add_token(record)  # NotFound for an unknown owner
        else:
            if not user_exists(self.access, owner):
                raise NotFound(f"No user {owner!r}.")
            self.store.add_token(record, external_user=True)
        return secret, record

    def create(
        self,
        who: Identity,
        name: str,
        *,
        owner: str | None = None,
        projects: Iterable[str] | None = None,
        expires_in: float | None = None,
        admin: bool | None = None,
        capabilities: Iterable[str] | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token for ``owner`` (default: the caller), never wider than ``who``.

        ``admin`` False makes a token without admin rights (of an admin user, say);
        True asks for them (only an admin credential may grant them). Left out, an
        unscoped token gets every capability the caller's credential has, a scoped one
        read and upload. Without ``expires_in``, a token made by an expiring token
        expires with it.
        """
        require_manage(who)
        assert who.username is not None
        owner = owner or who.username
        if owner != who.username and not who.is_admin:
            raise PermissionDenied("Only admins create tokens for other users.")
        scope = scope_of(projects)
        scoped = scope is not None
        if who.upload_scope is not None and (scope is None or not set(scope) <= who.upload_scope):
            raise PermissionDenied("A token cannot create a token for more projects than its own.")
        if capabilities is not None:
            caps = set(check_capabilities(capabilities, scoped))
        elif scoped:
            caps = set(SCOPED_CAPABILITIES)
        else:
            caps = set(who.capabilities)  # as much as the caller, no more
        if admin is True:
            if scoped:
                raise InvalidInput("A token limited to projects cannot carry admin rights.")
            if not who.is_admin:
                raise PermissionDenied("Only an admin credential creates admin tokens.")
            caps.add(ADMIN_CAP)
        elif admin is False:
            caps.discard(ADMIN_CAP)
        wider = caps - who.capabilities
        if wider:
            raise PermissionDenied(
                f"A token cannot grant {sorted(wider)}: the credential creating it lacks them."
            )
        now = self.clock()
        expires_at = now + expires_in if expires_in else None
        if who.expires is not None:
            if expires_at is None:
                expires_at = who.expires  # expires with the token that creates it
            elif expires_at > who.expires:
                raise PermissionDenied(
                    "A token cannot outlive the token that creates it "
                    f"(at most {max(0, int(who.expires - now))} seconds)."
                )
        return self.issue(
            owner,
            name,
            projects=scope,
            expires_in=expires_in,
            capabilities=caps,
            expires_at=expires_at,
            now=now,
        )

    def list(self, who: Identity, owner: str | None = None) -> list[TokenRecord]:
        require_manage(who)
        owner = owner or who.username
        if owner != who.username and not who.is_admin:
            raise PermissionDenied("Only admins list other users' tokens.")
        assert owner is not None
        return self.store.list_tokens(owner)

    def revoke(self, who: Identity, token_id: str) -> TokenRecord:
        """Remove one of the caller's tokens (an admin: anyone's); ``NotFound`` otherwise."""
        require_manage(who)
        record = self.store.get_token(token_id)
        if record is None or (record.username != who.username and not who.is_admin):
            raise NotFound(f"No token {token_id!r}.")
        self.store.delete_token(token_id)
        return record


# --- pypicloud registration ("signup") tokens: username:expiry:hmac ---


def signup_token(
    username: str, signing_key: str, expire_seconds: int, now: float | None = None
) -> str:
    expires = int((time.time() if now is None else now) + expire_seconds)
    payload = f"{username}:{expires}"
    mac = hmac.new(signing_key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}:{mac}"


def check_signup_token(token: str, signing_key: str, now: float | None = None) -> str | None:
    """The username a valid, unexpired signup token was issued for, else None."""
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    username, expires, mac = parts
    expected = hmac.new(
        signing_key.encode(), f"{username}:{expires}".encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return username
