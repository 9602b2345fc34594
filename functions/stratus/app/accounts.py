"""User accounts: name and password rules, and registration (pypicloud §1.10.2).

The first user to register when no admin exists becomes the admin, exactly once: the
backend's ``create_first_admin`` decides atomically, so of twenty concurrent first
registrations one gets an admin and the others are handled as ordinary registrations
(pending if registration is open; refused otherwise). Afterwards a user registers with
a signup token (approved at once) or, when registration is open, waits for an admin's
approval. Used by the JSON API and by the web UI alike.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from ..domain import passwords
from ..domain.errors import Conflict, InvalidInput, PermissionDenied
from ..ports import MutableAccessBackend
from . import tokens

ADMIN: Final = "admin"
APPROVED: Final = "approved"
PENDING: Final = "pending"
Status = Literal["admin", "approved", "pending"]

# User names; the web UI also holds group names to it (it lists them space-separated).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
RESERVED = {"everyone", "authenticated", "__token__"}


def check_username(username: str) -> None:
    if not NAME.match(username) or username in RESERVED:
        raise InvalidInput(
            f"Invalid username {username!r}: 1-100 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit; 'everyone', 'authenticated' and '__token__' "
            "are reserved."
        )


def check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("Passwords must have at least 8 characters.")


def _registration_disabled() -> PermissionDenied:
    return PermissionDenied("Registration is disabled on this server.")


def register(
    backend: MutableAccessBackend,
    username: str,
    password: str,
    *,
    token: str | None = None,
    signing_key: str | None = None,
) -> Status:
    """Create the user; return its status: ``ADMIN``, ``APPROVED`` or ``PENDING``.

    Raises ``InvalidInput`` (bad name or password), ``PermissionDenied`` (bad token, or
    registration closed) and ``Conflict`` (the name is taken). The checks that can refuse
    run before the (costly) password hash; call it from a worker thread.
    """
    check_username(username)
    check_password(password)
    invited = False
    if token:
        if not signing_key or tokens.check_signup_token(token, signing_key) != username:
            raise PermissionDenied("Invalid or expired registration token.")
        invited = True
    candidate = False
    if not invited:
        if not backend.has_admin():
            candidate = True
        elif not backend.allow_register():
            raise _registration_disabled()
    hashed = passwords.hash_password(password)
    try:
        if invited:
            backend.create_user(username, hashed)
            return APPROVED
        if candidate:
            if backend.create_first_admin(username, hashed):
                return ADMIN
            if not backend.allow_register():  # another first user won the race
                raise _registration_disabled()
        backend.create_user(username, hashed, pending=True)
    except Conflict:
        raise Conflict(f"User {username!r} already exists.") from None
    return PENDING
