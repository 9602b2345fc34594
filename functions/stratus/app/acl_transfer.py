"""Export and import of access control data in pypicloud's ``ppc-export`` format (§1.8.2).

The format is pypicloud's ``IAccessBackend.dump`` / ``IMutableAccessBackend.dump``::

    {
      "allow_register": false,
      "version": "<exporter version>",
      "groups": {"<group>": ["<member>", ...]},
      "users": [{"username": "<user>", "admin": false, "password": "<passlib hash>"}],
      "packages": {
        "users": {"<package>": {"<user>": ["read", "write"]}},
        "groups": {"<package>": {"<group>": ["read"]}}
      },
      "pending_users": [{"username": "<user>", "password": "<passlib hash>"}]
    }

``pending_users`` is written for mutable backends only (as pypicloud). ``ppc-export -o``
writes it as gzip-compressed JSON, plain JSON (indented) to stdout; the admin download
``acl.json.gz`` is compact JSON, gzip-compressed. API tokens are not part of the format
and are never exported.

Beyond pypicloud, ``dump`` also exports the permissions of the special groups
``everyone`` and ``authenticated`` (pypicloud only walks the groups that exist, so its
SQL backend dropped them); the format is unchanged, and pypicloud's own ``load`` reads
them.

``load`` is pypicloud's idempotent merge: users that do not exist are created (approved,
with the exported hash), existing ones keep their password and pending state and get the
exported admin flag; groups are created and missing members added (never removed);
pending users that do not exist are registered; permissions are granted (never revoked)
on the normalized project name (PEP 503, as Stratus keys them); ``allow_register`` is
set. Pending users are loaded before the group memberships (so a pending member keeps
its groups); a member that is neither in the file nor in the backend is skipped with a
warning, as pypicloud's SQL backend skipped it. The data is validated first: a malformed
file raises ``ValueError`` before anything changes.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from .. import __version__
from ..domain.errors import NotFound
from ..domain.names import normalize
from ..domain.permissions import (
    AUTHENTICATED,
    EVERYONE,
    PERMISSION_NAMES,
    PermissionName,
    permission_names,
)
from ..ports import AccessDirectory, MutableAccessBackend

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
SPECIAL_GROUPS = (EVERYONE, AUTHENTICATED)
# ``progress(kind, done, total)``: e.g. ("packages", 120, 300) after the 120th of 300.
Progress = Callable[[str, int, int], None]


def _quiet(kind: str, done: int, total: int) -> None:
    pass


def dump(backend: AccessDirectory, progress: Progress | None = None) -> dict[str, Any]:
    """All access control data of ``backend`` in pypicloud's format (see the module doc).

    Password hashes come from ``get_password_hash`` where the backend has it.
    ``progress(kind, done, total)`` hears of each group, user and pending user exported.
    """
    report = progress or _quiet
    allow_register = getattr(backend, "allow_register", None)
    data: dict[str, Any] = {
        "allow_register": bool(allow_register()) if callable(allow_register) else False,
        "version": __version__,
        "groups": {},
    }
    # Backends that never see hashes (LDAP, remote server) export None, as pypicloud's do.
    get_hash = getattr(backend, "get_password_hash", lambda username: None)
    packages: dict[str, dict[str, dict[str, list[PermissionName]]]] = {"users": {}, "groups": {}}

    def group_permissions(group: str) -> None:
        for package, perms in sorted(backend.group_package_permissions(group).items()):
            if perms:
                packages["groups"].setdefault(package, {})[group] = permission_names(perms)

    groups = backend.list_groups()
    for done, group in enumerate(groups, 1):
        data["groups"][group] = backend.group_members(group)
        group_permissions(group)
        report("groups", done, len(groups))
    for group in SPECIAL_GROUPS:
        if group not in groups:
            group_permissions(group)
    users = []
    listed = backend.list_users()
    for done, user in enumerate(listed, 1):
        username = user.username
        users.append(
            {"username": username, "admin": bool(user.admin), "password": get_hash(username)}
        )
        for package, perms in sorted(backend.user_package_permissions(username).items()):
            if perms:
                packages["users"].setdefault(package, {})[username] = permission_names(perms)
        report("users", done, len(listed))
    data["users"] = users
    data["packages"] = packages
    pending_users = getattr(backend, "pending_users", None)
    if callable(pending_users):
        names = pending_users()
        data["pending_users"] = []
        for done, name in enumerate(names, 1):
            data["pending_users"].append({"username": name, "password": get_hash(name)})
            report("pending users", done, len(names))
    return data


def _letter(perm: str, where: str) -> str:
    letter = PERMISSION_NAMES.get(perm)
    if letter is None:
        raise ValueError(f"{where}: permission must be 'read' or 'write', not {perm!r}")
    return letter


def _validate(data: Any) -> None:
    """Raise ``ValueError`` for anything ``load`` cannot apply, before it changes anything."""
    if not isinstance(data, Mapping):
        raise ValueError("ACL data must be a JSON object")
    for key in ("users", "groups", "packages", "allow_register"):
        if key not in data:
            raise ValueError(f"ACL data has no {key!r}")
    for key in ("users", "pending_users"):
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise ValueError(f"{key!r} must be a list")
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("username"), str):
                raise ValueError(f"{key!r}: every entry needs a 'username'")
            if not isinstance(entry.get("password") or "", str):
                raise ValueError(f"{key!r}: {entry['username']}: 'password' must be a string")
    if not isinstance(data["groups"], Mapping) or not all(
        isinstance(members, list) for members in data["groups"].values()
    ):
        raise ValueError("'groups' must map each group to a list of members")
    packages = data["packages"]
    if not isinstance(packages, Mapping):
        raise ValueError("'packages' must be an object")
    for kind in ("users", "groups"):
        section = packages.get(kind, {})
        if not isinstance(section, Mapping):
            raise ValueError(f"'packages.{kind}' must be an object")
        for package, entries in section.items():
            if not isinstance(entries, Mapping):
                raise ValueError(f"'packages.{kind}.{package}' must be an object")
            for name, perms in entries.items():
                if not isinstance(perms, list):
                    raise ValueError(f"'packages.{kind}.{package}.{name}' must be a list")
                for perm in perms:
                    _letter(perm, f"packages.{kind}.{package}.{name}")


def load(
    backend: MutableAccessBackend, data: Mapping[str, Any], progress: Progress | None = None
) -> None:
    """Merge ``data`` (pypicloud's format) into ``backend``, idempotently (see module doc).

    ``progress(kind, done, total)`` hears of each user, pending user, group and package
    applied.
    """
    _validate(data)
    report = progress or _quiet
    approved = {user.username for user in backend.list_users()}
    pending = set(backend.pending_users())

    for done, user in enumerate(data["users"], 1):
        username = user["username"]
        admin = bool(user.get("admin", False))
        if username not in approved and username not in pending:
            backend.create_user(username, user.get("password") or "", admin=admin)
            approved.add(username)
        else:
            backend.set_admin(username, admin)
        report("users", done, len(data["users"]))

    pending_users = data.get("pending_users", [])
    for done, user in enumerate(pending_users, 1):
        username = user["username"]
        if username not in approved and username not in pending:
            backend.create_user(username, user.get("password") or "", pending=True)
            pending.add(username)
        report("pending users", done, len(pending_users))

    for done, (group, members) in enumerate(data["groups"].items(), 1):
        backend.create_group(group)
        current = set(backend.group_members(group))
        for member in members:
            if member in current:
                continue
            if member not in approved and member not in pending:
                log.warning("ACL import: group %r: no user %r, member skipped", group, member)
                continue
            try:
                backend.add_member(member, group)
            except NotFound:
                log.warning("ACL import: group %r: no user %r, member skipped", group, member)
        report("groups", done, len(data["groups"]))

    sections = {
        "group": data["packages"].get("groups", {}),
        "user": data["packages"].get("users", {}),
    }
    projects = sorted({*sections["group"], *sections["user"]})
    for done, package in enumerate(projects, 1):
        for kind, section in sections.items():
            for name, perms in section.get(package, {}).items():
                for perm in perms:
                    letter = _letter(perm, package)
                    backend.set_permission(normalize(package), kind, name, letter, True)
        report("packages", done, len(projects))

    backend.set_allow_register(bool(data["allow_register"]))


# --- files ------------------------------------------------------------------------------


def decode(raw: bytes) -> dict[str, Any]:
    """The data of an export, gzip-compressed (recognized by its magic bytes) or not."""
    if raw[:2] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("ACL data must be a JSON object")
    return data


def read_acl_file(path: str | Path | IO[bytes] | None = None) -> dict[str, Any]:
    """Read an export: a ``.json.gz`` or ``.json`` file, a binary stream, or stdin.

    ``None`` or ``"-"`` reads stdin (``ppc-export config.ini | stratus import-acl``).
    The content decides whether to decompress, not the name.
    """
    if path is None or str(path) == "-":
        return decode(sys.stdin.buffer.read())
    if isinstance(path, (str, Path)):
        return decode(Path(path).read_bytes())
    return decode(path.read())


def gzip_bytes(data: Mapping[str, Any]) -> bytes:
    """Compact JSON, gzip-compressed: the admin download ``acl.json.gz`` (as pypicloud)."""
    return gzip.compress(json.dumps(data, separators=(",", ":")).encode("utf-8"))


def write_acl_file(data: Mapping[str, Any], path: str | Path | IO[bytes] | None = None) -> None:
    """Write an export: gzip-compressed JSON to a ``*.gz`` path (``ppc-export -o``), else
    indented JSON (to the path, or to stdout for ``None`` / ``"-"``)."""
    if path is None or str(path) == "-":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        sys.stdout.flush()
        return
    if isinstance(path, (str, Path)):
        target = Path(path)
        if target.name.endswith(".gz"):
            target.write_bytes(gzip.compress(json.dumps(data).encode("utf-8")))
        else:
            target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return
    path.write(json.dumps(data, indent=2).encode("utf-8") + b"\n")


__all__ = [
    "decode",
    "dump",
    "gzip_bytes",
    "load",
    "read_acl_file",
    "write_acl_file",
]
