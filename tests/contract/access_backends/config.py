"""The config-file backend holding the sample, with each hash scheme a deployment may have."""

from __future__ import annotations

from passlib.hash import sha256_crypt, sha512_crypt

from stratus.adapters.config_access import ConfigAccess, read_ini
from stratus.domain import passwords

from . import ADMINS, GROUPS, PACKAGES, PASSWORDS

HASHERS = {
    "stevearc": lambda pw: sha256_crypt.using(rounds=5000).hash(pw),  # old ppc-gen-password
    "dsa": lambda pw: sha512_crypt.using(rounds=5000).hash(pw),  # ppc-gen-password 1.x
}


def sample_ini() -> str:
    lines = ["[app:main]"]
    for user, pw in PASSWORDS.items():
        lines.append(f"user.{user} = {HASHERS.get(user, passwords.hash_password)(pw)}")
    lines.append(f"auth.admins = {' '.join(ADMINS)}")
    for group, members in GROUPS.items():
        lines.append(f"group.{group} =\n    " + "\n    ".join(members))
    for project, kinds in PACKAGES.items():
        for kind, entries in kinds.items():
            for name, perm in entries.items():
                lines.append(f"package.{project}.{kind}.{name} = {perm}")
    return "\n".join(lines) + "\n"


def build(request, tmp_path):
    path = tmp_path / "access.ini"
    path.write_text(sample_ini())
    return ConfigAccess.from_options(read_ini(path))
