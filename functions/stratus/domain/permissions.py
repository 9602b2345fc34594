"""Permission resolution as pypicloud's access control defines it (manual §1.6.1-1.6.2).

A user's permissions on a package are the union of
- its own entry (``package.<p>.user.<u>``),
- the entries of every group it belongs to, including the special groups ``everyone``
  (everybody, anonymous included) and ``authenticated`` (every logged-in user);
and, when the package has no explicit user or group entries at all, of the
``default_read`` / ``default_write`` groups. Admins read and write everything.

What a request may do is then cut down to what its credential carries
(:func:`within_credential`): an API token may lack the read or upload capability, and a
scoped token uploads only to its projects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidInput
from .models import READ_CAP, UPLOAD_CAP, Identity

EVERYONE = "everyone"
AUTHENTICATED = "authenticated"
READ = "r"
WRITE = "w"
LETTERS = (READ, WRITE)
KINDS = ("user", "group")  # who an ACL entry names
# pypicloud's words for the permissions (admin API, ACL files) and their letters here.
PermissionName = Literal["read", "write"]
_NAMED: tuple[tuple[PermissionName, str], ...] = (("read", READ), ("write", WRITE))
PERMISSION_NAMES: dict[str, str] = dict(_NAMED)


def permission_names(perms: Iterable[str]) -> list[PermissionName]:
    """``{"w", "r"}`` → ``["read", "write"]`` (pypicloud's order)."""
    return [name for name, letter in _NAMED if letter in perms]


def permission_letter(word: str) -> str | None:
    """``"read"``/``"r"`` → ``"r"``, ``"write"``/``"w"`` → ``"w"``; None for anything else."""
    return PERMISSION_NAMES.get(word) or (word if word in LETTERS else None)


def perm_string(perms: Iterable[str]) -> str:
    """``{"w", "r"}`` → ``"rw"`` (the stored form)."""
    granted = set(perms)
    return "".join(p for p in LETTERS if p in granted)


def check_permission_args(kind: str, perm: str) -> None:
    """What ``set_permission`` accepts: kind "user"|"group", perm "r"|"w"."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be 'user' or 'group', not {kind!r}")
    if perm not in LETTERS:
        raise InvalidInput(f"perm must be 'r' or 'w', not {perm!r}")


def check_group_name(group: str) -> None:
    """Groups an admin may create: any name but the special ones."""
    if group in (EVERYONE, AUTHENTICATED):
        raise InvalidInput(f"{group!r} is a reserved name")


def parse_perm(value: str) -> frozenset[str]:
    """``"r"`` / ``"rw"`` / ``"w"`` to a set of single-letter permissions."""
    value = value.strip().lower()
    if not value or set(value) - {"r", "w"}:
        raise ValueError(f"permission must be 'r', 'rw' or 'w', not {value!r}")
    return frozenset(value)


def principals(identity: Identity) -> frozenset[str]:
    """The groups an identity belongs to, special groups included."""
    groups = set(identity.groups)
    groups.add(EVERYONE)
    if identity.authenticated:
        groups.add(AUTHENTICATED)
    return frozenset(groups)


@dataclass(frozen=True, slots=True)
class PackageAcl:
    """Explicit permissions on one package."""

    users: Mapping[str, frozenset[str]]
    groups: Mapping[str, frozenset[str]]

    @property
    def empty(self) -> bool:
        return not self.users and not self.groups


EMPTY_ACL = PackageAcl({}, {})


def acls_from_entries(
    projects: Iterable[str], entries: Iterable[tuple[str, str, str, Iterable[str]]]
) -> dict[str, PackageAcl]:
    """``{project: PackageAcl}`` for ``projects`` from (project, "user"|"group", name, perms)
    rows; other projects' rows are skipped, a project without rows gets ``EMPTY_ACL``."""
    found: dict[str, tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]] = {
        p: ({}, {}) for p in projects
    }
    for project, kind, name, perms in entries:
        if project in found:
            found[project][0 if kind == "user" else 1][name] = frozenset(perms)
    return {p: PackageAcl(u, g) if u or g else EMPTY_ACL for p, (u, g) in found.items()}


def effective(
    identity: Identity,
    acl: PackageAcl,
    default_read: Iterable[str],
    default_write: Iterable[str],
) -> frozenset[str]:
    """The permissions (subset of {"r", "w"}) that ``identity`` has on a package."""
    if identity.admin_user:
        return frozenset({READ, WRITE})
    groups = principals(identity)
    perms: set[str] = set()
    if identity.username is not None:
        perms |= acl.users.get(identity.username, frozenset())
    for group, granted in acl.groups.items():
        if group in groups:
            perms |= granted
    if acl.empty:
        if groups.intersection(default_read):
            perms.add(READ)
        if groups.intersection(default_write):
            perms.add(WRITE)  # as pypicloud: default_write grants "w" only
    return frozenset(perms)


def within_credential(identity: Identity, project: str, perms: frozenset[str]) -> frozenset[str]:
    """``perms`` (the user's on ``project``) limited to what the credential allows."""
    allowed = set(perms)
    if not identity.may(READ_CAP):
        allowed.discard(READ)
    if not identity.may(UPLOAD_CAP) or (
        identity.upload_scope is not None and project not in identity.upload_scope
    ):
        allowed.discard(WRITE)
    return frozenset(allowed)
