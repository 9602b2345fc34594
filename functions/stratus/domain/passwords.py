"""Password hashing through the passlib API (libpass).

New hashes are argon2id at libsodium's "interactive" cost; hashes made by pypicloud's
``ppc-gen-password`` (sha256_crypt, sha512_crypt) and pbkdf2 keep verifying.
"""

from __future__ import annotations

from functools import cache


@cache
def context():
    from passlib.context import CryptContext

    return CryptContext(
        schemes=["argon2", "sha512_crypt", "sha256_crypt", "pbkdf2_sha512", "pbkdf2_sha256"],
        default="argon2",
        argon2__type="ID",
        argon2__rounds=2,
        argon2__memory_cost=65536,  # KiB: 64 MiB, libsodium's interactive limit
        argon2__parallelism=1,
    )


def hash_password(password: str) -> str:
    return context().hash(password)


def verify(password: str, hashed: str | None) -> bool:
    """Check ``password``; with ``hashed`` None, spend the same time and return False."""
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
