"""User accounts: name and password rules, and registration (pypicloud §1.10.2).

The first user to register when no admin exists becomes the admin; afterwards a user
registers with a signup token (approved at once) or, when registration is open, waits
for an admin's approval. Used by the JSON API and by the web UI alike.
"""

from __future__ import annotations

import re

from ..domain import passwords
from ..domain.errors import Conflict, InvalidInput, NotAllowed
from ..ports import MutableAccessBackend
from . import tokens

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


def register(
    backend: MutableAccessBackend,
    username: str,
    password: str,
    *,
    token: str | None = None,
    signing_key: str | None = None,
) -> str:
    """Create the user; return its status: "admin", "approved" or "pending".

    Raises ``InvalidInput`` (bad name or password), ``NotAllowed`` (bad token, or
    registration closed) and ``Conflict`` (the name is taken). Hashes the password:
    call it from a worker thread.
    """
    check_username(username)
    check_password(password)
    approved = admin = False
    if token:
        if not signing_key or tokens.check_signup_token(token, signing_key) != username:
            raise NotAllowed("Invalid or expired registration token.")
        approved = True
    elif not backend.has_admin():
        approved = admin = True  # pypicloud: the first user becomes the admin
    elif not backend.allow_register():
        raise NotAllowed("Registration is disabled on this server.")
    hashed = passwords.hash_password(password)
    try:
        backend.create_user(username, hashed, admin=admin, pending=not approved)
    except Conflict:
        raise Conflict(f"User {username!r} already exists.") from None
    return "admin" if admin else ("approved" if approved else "pending")
