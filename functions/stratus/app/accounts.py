"""User self-registration (pypicloud manual §1.10.2).

The first user to register becomes the admin, exactly once: the backend's
``create_first_admin`` decides atomically, so of twenty concurrent first registrations
one gets an admin and the others are handled as ordinary registrations (pending, if
registration is enabled; refused otherwise).
"""

from __future__ import annotations

from ..domain import passwords
from ..domain.errors import PermissionDenied
from ..ports import MutableAccessBackend

ADMIN = "admin"
APPROVED = "approved"
PENDING = "pending"


def _registration_disabled() -> PermissionDenied:
    return PermissionDenied("Registration is disabled on this server.")


def register(
    backend: MutableAccessBackend, username: str, password: str, *, invited: bool = False
) -> str:
    """Create ``username``; return ``ADMIN``, ``APPROVED`` or ``PENDING``.

    ``invited``: the caller showed a valid signup token for this name (approved at once).
    Raise ``PermissionDenied`` when registration is disabled and ``Conflict`` when the
    name exists. The checks that can refuse run before the (costly) password hash.
    """
    candidate = False
    if not invited:
        if not backend.has_admin():
            candidate = True
        elif not backend.allow_register():
            raise _registration_disabled()
    hashed = passwords.hash_password(password)
    if invited:
        backend.create_user(username, hashed)
        return APPROVED
    if candidate:
        if backend.create_first_admin(username, hashed):
            return ADMIN
        if not backend.allow_register():  # another first user won the race
            raise _registration_disabled()
    backend.create_user(username, hashed, pending=True)
    return PENDING
