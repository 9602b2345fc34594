"""Password hashing through the passlib API (libpass).

New hashes are argon2id at libsodium's "interactive" cost. Hashes made by pypicloud's
``ppc-gen-password`` (sha256_crypt, sha512_crypt), bcrypt and pbkdf2 keep verifying;
:func:`needs_upgrade` says when a verified password should be re-hashed as argon2id.
"""

from __future__ import annotations

from functools import cache

ARGON2ID_PREFIX = "$argon2id$"


@cache
def context():
    from passlib.context import CryptContext

    return CryptContext(
        schemes=[
            "argon2",
            "bcrypt",
            "sha512_crypt",
            "sha256_crypt",
            "pbkdf2_sha512",
            "pbkdf2_sha256",
        ],
        default="argon2",
        argon2__type="ID",
        argon2__rounds=2,
        argon2__memory_cost=65536,  # KiB: 64 MiB, libsodium's interactive limit
        argon2__parallelism=1,
    )


def hash_password(password: str) -> str:
    return context().hash(password)


def verify(password: str, hashed: str | None) -> bool:
    """Check ``password``; with ``hashed`` None, spend the same time and return False.

    The time of a failed check does not tell an unknown user (``hashed`` None) from a
    wrong password: both pay one argon2id verification (passlib's ``dummy_verify``).
    """
    ctx = context()
    if not hashed:
        ctx.dummy_verify()
        return False
    try:
        return bool(ctx.verify(password, hashed))
    except (ValueError, TypeError):
        # Unknown or malformed hash in the config: treat as a failed login, do not crash.
        ctx.dummy_verify()
        return False


def needs_upgrade(hashed: str | None) -> bool:
    """Whether a (verified) stored hash is of a legacy scheme to replace by argon2id.

    Only the scheme counts: an argon2id hash made with other costs (stronger ones,
    say) is kept as it is.
    """
    if not hashed or hashed.startswith(ARGON2ID_PREFIX):
        return False
    try:
        return context().identify(hashed) is not None
    except (ValueError, TypeError):
        return False
