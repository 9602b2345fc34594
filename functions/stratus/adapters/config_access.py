"""Access rules from a pypicloud-style config file (pypicloud manual §1.6.2). Read-only.

Implements ``AccessBackend`` and ``AccessDirectory`` (plus ``get_password_hash``, so
``stratus.app.acl_transfer.dump`` can export it in pypicloud's format).

Keys (in any INI section, as pypicloud users have them)::

    user.<name> = <passlib hash>
    group.<group> = <whitespace separated users>
    package.<project>.user.<name> = r | rw
    package.<project>.group.<group> = r | rw
    auth.admins = <whitespace separated users>
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..domain import passwords
from ..domain.errors import NotFound
from ..domain.names import normalize
from ..domain.permissions import EMPTY_ACL, PackageAcl, parse_perm
from ..ports import UserInfo


def read_ini(path: str | Path) -> dict[str, str]:
    """All keys of all sections of an INI file, case preserved, ``%(here)s`` expanded."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    with open(path, encoding="utf-8") as fh:
        parser.read_file(fh)
    here = str(Path(path).resolve().parent)
    options: dict[str, str] = {}
    items = list(parser.defaults().items())
    for section in parser.sections():
        items.extend(parser.items(section))
    for key, value in items:
        options[key] = value.replace("%(here)s", here)
    return options


class ConfigAccess:
    def __init__(
        self,
        users: Mapping[str, str],
        groups: Mapping[str, frozenset[str]],
        admins: frozenset[str],
        acls: Mapping[str, PackageAcl],
    ) -> None:
        self._users = dict(users)
        self._admins = admins
        self._acls = dict(acls)
        self._groups = {group: frozenset(members) for group, members in groups.items()}
        self._user_groups: dict[str, frozenset[str]] = {}
        for group, members in groups.items():
            for member in members:
                self._user_groups[member] = self._user_groups.get(member, frozenset()) | {group}

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> ConfigAccess:
        users: dict[str, str] = {}
        groups: dict[str, frozenset[str]] = {}
        user_perms: dict[str, dict[str, frozenset[str]]] = {}
        group_perms: dict[str, dict[str, frozenset[str]]] = {}
        for key, value in options.items():
            if key.startswith("user."):
                users[key[len("user.") :]] = value.strip()
            elif key.startswith("group."):
                groups[key[len("group.") :]] = frozenset(value.split())
            elif key.startswith("package."):
                project, kind, principal = cls._split_package_key(key)
                target = user_perms if kind == "user" else group_perms
                try:
                    perm = parse_perm(value)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
                target.setdefault(project, {})[principal] = perm
        acls = {
            project: PackageAcl(user_perms.get(project, {}), group_perms.get(project, {}))
            for project in set(user_perms) | set(group_perms)
        }
        admins = frozenset(options.get("auth.admins", "").split())
        return cls(users, groups, admins, acls)

    @staticmethod
    def _split_package_key(key: str) -> tuple[str, str, str]:
        # package.<project>.user.<name>: project names may contain dots, so split from the right.
        body = key[len("package.") :]
        for kind in ("user", "group"):
            marker = f".{kind}."
            idx = body.rfind(marker)
            if idx > 0:
                return normalize(body[:idx]), kind, body[idx + len(marker) :]
        raise ValueError(f"{key}: expected package.<project>.user.<name> or .group.<name>")

    def connect(self) -> None:
        """Load the password hashing now if any user can log in (a Lambda init)."""
        if self._users:
            passwords.context()

    def verify_user(self, username: str, password: str) -> bool:
        return passwords.verify(password, self._users.get(username))

    def groups(self, username: str) -> frozenset[str]:
        return self._user_groups.get(username, frozenset())

    def is_admin(self, username: str) -> bool:
        return username in self._admins

    def package_acl(self, project: str) -> PackageAcl:
        return self._acls.get(project, EMPTY_ACL)

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        return {p: self._acls.get(p, EMPTY_ACL) for p in projects}

    def health(self) -> None:
        return None

    def get_password_hash(self, username: str) -> str | None:
        return self._users.get(username)

    # --- AccessDirectory ---
    def list_users(self) -> list[UserInfo]:
        return [UserInfo(username=name, admin=name in self._admins) for name in sorted(self._users)]

    def get_user(self, username: str) -> UserInfo | None:
        if username not in self._users:
            return None
        return UserInfo(
            username=username,
            admin=username in self._admins,
            groups=sorted(self.groups(username)),
        )

    def list_groups(self) -> list[str]:
        return sorted(self._groups)

    def group_members(self, group: str) -> list[str]:
        members = self._groups.get(group)
        if members is None:
            raise NotFound(f"No group {group!r}.")
        return sorted(members)

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        return {
            project: acl.users[username]
            for project, acl in self._acls.items()
            if acl.users.get(username)
        }

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]:
        return {
            project: acl.groups[group]
            for project, acl in self._acls.items()
            if acl.groups.get(group)
        }
