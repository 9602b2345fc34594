"""Fill a MutableAccessBackend with :data:`SAMPLE` through its own API (for the builders).

Hashes are made once per process: cheap sha256_crypt (as ``ppc-gen-password`` made them)
for most users, one argon2 hash from ``stratus.domain.passwords`` for the admin.
"""

from __future__ import annotations

from functools import cache

from passlib.hash import sha256_crypt

from stratus.domain import passwords
from stratus.ports import MutableAccessBackend

from . import ADMINS, GROUPS, PACKAGES, PASSWORDS


def cheap_hash(password: str) -> str:
    return sha256_crypt.using(rounds=1000).hash(password)


@cache
def sample_hashes() -> dict[str, str]:
    return {
        user: passwords.hash_password(pw) if user in ADMINS else cheap_hash(pw)
        for user, pw in PASSWORDS.items()
    }


def populate(backend: MutableAccessBackend) -> MutableAccessBackend:
    hashes = sample_hashes()
    for user in PASSWORDS:
        backend.create_user(user, hashes[user], admin=user in ADMINS)
    for group, members in GROUPS.items():
        backend.create_group(group)
        for member in members:
            backend.add_member(member, group)
    for project, kinds in PACKAGES.items():
        for kind, entries in kinds.items():
            for name, perms in entries.items():
                for perm in perms:
                    backend.set_permission(project, kind, name, perm, True)
    return backend
