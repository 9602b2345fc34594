"""API tokens (twine's ``__token__`` convention) and pypicloud's signed registration tokens.

An API token is ``stratus_<id>_<secret>``. Only SHA-256 of the secret is stored, so
checking one costs a lookup and a hash, never a password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

from ..domain.errors import InvalidInput
from ..ports import TokenRecord

PREFIX = "stratus_"
# Ids of tokens minted by trusted publishing start so (random ids are hex: never do).
MINTED_ID_PREFIX = "oidc"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(
    username: str,
    name: str,
    *,
    projects: Iterable[str] | None = None,
    expires_in: float | None = None,
    now: float | None = None,
) -> tuple[str, TokenRecord]:
    """Return (the full token to show once, the record to store)."""
    if not name or len(name) > 100:
        raise InvalidInput("A token needs a name of 1 to 100 characters.")
    if expires_in is not None and expires_in <= 0:
        raise InvalidInput("expires_in must be a positive number of seconds.")
    created = time.time() if now is None else now
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(
        token_id=token_id,
        username=username,
        name=name,
        secret_sha256=_digest(secret),
        created=created,
        expires=created + expires_in if expires_in else None,
        projects=sorted(set(projects)) if projects is not None else None,
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
    full, record = new_token(principal, name, projects=scope, expires_in=expires_in, now=now)
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


def public(record: TokenRecord) -> dict[str, object]:
    """What listing shows: everything but the hash."""
    return {
        "id": record.token_id,
        "name": record.name,
        "username": record.username,
        "created": int(record.created),
        "expires": int(record.expires) if record.expires else None,
        "projects": record.projects,
        "upload_only": record.upload_only,
    }


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
