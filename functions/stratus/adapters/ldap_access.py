"""Users and admins from an LDAP server (pypicloud manual §1.6.4), with ``ldap3``. Read-only.

Options (``pypi.auth = ldap``), as pypicloud reads them::

    auth.ldap.url                      ldap://host:389 or ldaps://host:636 (required)
    auth.ldap.service_dn               account for the lookups; anonymous bind if unset
    auth.ldap.service_password
    auth.ldap.service_username         log in as service_dn under this name, as an admin
    auth.ldap.user_dn_format           e.g. uid={username},ou=people,dc=example,dc=org
    auth.ldap.base_dn                  or: search base_dn (subtree) with user_search_filter,
    auth.ldap.user_search_filter       e.g. (&(objectClass=person)(uid={username}))
    auth.ldap.admin_field              admin if this attribute of the user entry holds
    auth.ldap.admin_value              one of these values (one per line)
    auth.ldap.admin_group_dn           or if the user is a member of this group
    auth.ldap.cache_time               seconds to cache user entries; unset = forever
    auth.ldap.ignore_cert              ldaps: do not verify the server certificate
    auth.ldap.ignore_referrals         do not follow referrals
    auth.ldap.ignore_multiple_results  a search finding several users takes the first
    auth.ldap.fallback = config        groups and package permissions from the config keys
    auth.ldap.timeout                  (Stratus) connect/response timeout, seconds (10)

What comes from where, as in pypicloud: LDAP decides who logs in (a bind as the user's DN
with the given password) and who is an admin; groups and package permissions come from the
fallback (the config-file keys ``group.*`` and ``package.*``; ``user.*`` and
``auth.admins`` are not used to log in or for admin status), or are empty without one.

User entries (DN and admin flag, never a password) are cached per process for
``cache_time``; unknown users are not cached (pypicloud's TimedCache). Password checks always
reach LDAP (the access policy caches successful ones).

Differences from pypicloud, all on the safe or lenient side:
- the username is escaped before it goes into ``user_dn_format`` (RFC 4514) or the search
  filter (RFC 4515), so ``*`` or ``)`` in a login name cannot change the query;
- ``admin_group_dn`` also works with ``base_dn`` + ``user_search_filter``: membership is
  checked for the DN the search found;
- ``admin_value`` matches case-insensitively (as LDAP compares names and DNs);
- LDAP errors never escape ``verify_user`` / ``is_admin`` (they answer False and log);
  ``health`` raises ``BackendUnavailable``; the directory (admin API) reads raise it too;
- ldaps verifies the certificate unless ``ignore_cert`` (ldap3 would not by default).

Nothing touches the network before the first lookup or health check.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..domain.errors import BackendUnavailable, NotFound
from ..domain.permissions import EMPTY_ACL, PackageAcl
from ..ports import UserInfo
from ..settings import as_bool
from .config_access import ConfigAccess

LOG = logging.getLogger(__name__)
T = TypeVar("T")

# LDAP result codes (RFC 4511) this adapter treats specially.
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4
REFERRAL = 10
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49


def _ldap3():
    try:
        import ldap3
    except ImportError as exc:
        raise ModuleNotFoundError(
            "pypi.auth = ldap needs the ldap3 package: pip install 'stratus-index[ldap]'",
            name="ldap3",
        ) from exc
    return ldap3


@dataclass(frozen=True, slots=True)
class LdapUser:
    username: str
    dn: str
    admin: bool


class LdapAccess:
    def __init__(
        self,
        url: str,
        *,
        service_dn: str | None = None,
        service_password: str = "",
        service_username: str | None = None,
        user_dn_format: str | None = None,
        base_dn: str | None = None,
        user_search_filter: str | None = None,
        admin_field: str | None = None,
        admin_value: tuple[str, ...] | list[str] = (),
        admin_group_dn: str | None = None,
        cache_time: float | None = None,
        ignore_cert: bool = False,
        ignore_referrals: bool = False,
        ignore_multiple_results: bool = False,
        fallback: ConfigAccess | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit((url or "").strip())
        if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(
                f"auth.ldap.url must be ldap://host[:port] or ldaps://..., not {url!r}"
            )
        self._use_ssl = parts.scheme.lower() == "ldaps"
        self._host = parts.hostname
        self._port = parts.port or (636 if self._use_ssl else 389)
        if user_dn_format is not None:
            if base_dn is not None or user_search_filter is not None:
                raise ValueError(
                    "Cannot use auth.ldap.user_dn_format with base_dn and user_search_filter"
                )
            self._check_template("user_dn_format", user_dn_format)
        elif base_dn is None or user_search_filter is None:
            raise ValueError(
                "Must provide auth.ldap.user_dn_format or both base_dn and user_search_filter"
            )
        else:
            self._check_template("user_search_filter", user_search_filter)
        if cache_time is not None and cache_time < 0:
            raise ValueError("auth.ldap.cache_time must be >= 0")
        self._service_dn = service_dn
        self._service_password = service_password or ""
        self._user_dn_format = user_dn_format
        self._base_dn = base_dn
        self._user_search_filter = user_search_filter
        self._admin_field = admin_field
        self._admin_values = frozenset(v.casefold() for v in admin_value)
        self._admin_group_dn = admin_group_dn
        self._admin_member_attr: str | None = None
        self._cache_time = cache_time
        self._ignore_cert = ignore_cert
        self._ignore_referrals = ignore_referrals
        self._ignore_multiple_results = ignore_multiple_results
        self._fallback = fallback
        self._timeout = timeout
        self._clock = clock
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: dict[str, tuple[LdapUser, float | None]] = {}
        self._pinned: dict[str, LdapUser] = {}
        if service_username:
            if not service_dn:
                raise ValueError("auth.ldap.service_username needs auth.ldap.service_dn")
            self._pinned[service_username] = LdapUser(service_username, service_dn, True)
        _ldap3()  # without the ldap extra, fail when the deployment starts, not per login

    @staticmethod
    def _check_template(name: str, template: str) -> None:
        try:
            filled = template.format(username="\0")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"auth.ldap.{name}: bad template {template!r}: {exc}") from None
        if "\0" not in filled:
            raise ValueError(f"auth.ldap.{name} must contain {{username}}")

    @classmethod
    def from_options(
        cls, options: Mapping[str, str], *, clock: Callable[[], float] = time.monotonic
    ) -> LdapAccess:
        def get(name: str) -> str | None:
            value = options.get(f"auth.ldap.{name}")
            if value is None:
                return None
            return value.strip() or None

        url = get("url")
        if url is None:
            raise ValueError("pypi.auth = ldap needs auth.ldap.url")
        # pyramid's aslist(flatten=False): one value per line.
        admin_value = [line.strip() for line in (get("admin_value") or "").splitlines()]
        cache_time = get("cache_time")
        fallback_kind = get("fallback")
        fallback = None
        if fallback_kind is not None:
            if fallback_kind.lower() != "config":
                raise ValueError(
                    f"auth.ldap.fallback: only 'config' is supported, not {fallback_kind!r}"
                )
            fallback = ConfigAccess.from_options(options)
        return cls(
            url,
            service_dn=get("service_dn"),
            service_password=options.get("auth.ldap.service_password", ""),
            # service_account: the name of this option in pypicloud before 1.0
            service_username=get("service_username") or get("service_account"),
            user_dn_format=get("user_dn_format"),
            base_dn=get("base_dn"),
            user_search_filter=get("user_search_filter"),
            admin_field=get("admin_field"),
            admin_value=[v for v in admin_value if v],
            admin_group_dn=get("admin_group_dn"),
            cache_time=float(cache_time) if cache_time is not None else None,
            ignore_cert=as_bool(get("ignore_cert"), "auth.ldap.ignore_cert"),
            ignore_referrals=as_bool(get("ignore_referrals"), "auth.ldap.ignore_referrals"),
            ignore_multiple_results=as_bool(
                get("ignore_multiple_results"), "auth.ldap.ignore_multiple_results"
            ),
            fallback=fallback,
            timeout=float(get("timeout") or 10.0),
            clock=clock,
        )

    # --- connections ---------------------------------------------------------------------

    def _server(self) -> Any:
        """A new ldap3 ``Server`` (cheap, no I/O). Not reused: after a failed connect an
        ldap3 Server marks its addresses unusable for minutes, so a reused one would not
        reconnect when LDAP comes back.
        """
        import ssl

        ldap3 = _ldap3()
        tls = ldap3.Tls(validate=ssl.CERT_NONE if self._ignore_cert else ssl.CERT_REQUIRED)
        return ldap3.Server(
            self._host,
            port=self._port,
            use_ssl=self._use_ssl,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=self._timeout,
        )

    def _bind(self, dn: str | None, password: str) -> tuple[Any, dict[str, Any]]:
        """A new connection bound as ``dn`` (anonymous if None): (connection, bind result).

        Raises ``ldap3`` exceptions when the server cannot be reached.
        """
        ldap3 = _ldap3()
        conn = ldap3.Connection(
            self._server(),
            user=dn,
            password=password if dn else None,
            authentication=ldap3.SIMPLE if dn else ldap3.ANONYMOUS,
            read_only=True,
            auto_referrals=not self._ignore_referrals,
            receive_timeout=max(1, math.ceil(self._timeout)),  # ldap3 packs it as an int
            raise_exceptions=False,
        )
        try:
            conn.open()
            conn.bind()
        except Exception:
            with contextlib.suppress(Exception):
                conn.unbind()
            raise
        return conn, dict(conn.result or {})

    def _service_connection(self) -> Any:
        if self._conn is None:
            conn, result = self._bind(self._service_dn, self._service_password)
            if not conn.bound:
                conn.unbind()
                raise BackendUnavailable(
                    f"LDAP service bind as {self._service_dn or 'anonymous'} failed: "
                    f"{result.get('description')} {result.get('message') or ''}".strip()
                )
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.unbind()

    def _with_service(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation`` on the service connection; reconnect and retry once on failure.

        Raises ``BackendUnavailable`` when LDAP cannot be reached or refuses the service bind.
        """
        from ldap3.core.exceptions import LDAPException

        with self._conn_lock:
            for attempt in (1, 2):
                try:
                    return operation(self._service_connection())
                except LDAPException as exc:
                    self._drop_connection()
                    if attempt == 2:
                        raise BackendUnavailable(
                            f"LDAP server {self._host}:{self._port}: {exc}"
                        ) from exc
                    LOG.info("LDAP connection lost (%s); reconnecting", exc)
            raise AssertionError("unreachable")  # pragma: no cover

    def _search(
        self, base: str, scope: str, search_filter: str, attributes: list[str], size_limit: int = 0
    ) -> list[tuple[str, dict[str, list[Any]]]] | None:
        """Entries as (dn, raw attributes); None when the base does not exist."""

        def run(conn: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            conn.search(
                base, search_filter, search_scope=scope, attributes=attributes,
                size_limit=size_limit,
            )  # fmt: skip
            return dict(conn.result or {}), list(conn.response or [])

        result, response = self._with_service(run)
        code = result.get("result")
        if code == NO_SUCH_OBJECT:
            return None
        if code == REFERRAL:
            LOG.info("LDAP search of %r answered a referral; ignored", base)
            return None
        if code not in (SUCCESS, SIZE_LIMIT_EXCEEDED):
            raise BackendUnavailable(
                f"LDAP search of {base!r} failed: {result.get('description')} "
                f"{result.get('message') or ''}".strip()
            )
        return [
            (item["dn"], dict(item.get("raw_attributes") or {}))
            for item in response
            if item.get("type") == "searchResEntry"
        ]

    # --- user entries ----------------------------------------------------------------------

    @staticmethod
    def _values(attributes: Mapping[str, list[Any]], name: str) -> list[str]:
        for key, values in attributes.items():
            if key.lower() == name.lower():
                return [
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
                ]
        return []

    def _fetch(self, username: str) -> LdapUser | None:
        """Look the user up in LDAP (no cache). Raises ``BackendUnavailable``."""
        from ldap3 import BASE, SUBTREE
        from ldap3.utils.conv import escape_filter_chars
        from ldap3.utils.dn import escape_rdn

        attributes = [self._admin_field] if self._admin_field else ["1.1"]  # 1.1: no attributes
        if self._user_dn_format is not None:
            dn = self._user_dn_format.format(username=escape_rdn(username))
            entries = self._search(dn, BASE, "(objectClass=*)", attributes)
        else:
            assert self._base_dn is not None and self._user_search_filter is not None
            search_filter = self._user_search_filter.format(username=escape_filter_chars(username))
            # Two are enough to know the search is ambiguous.
            entries = self._search(self._base_dn, SUBTREE, search_filter, attributes, size_limit=2)
        if not entries:
            LOG.debug("LDAP user %r not found", username)
            return None
        if len(entries) > 1:
            found = [dn for dn, _ in entries]
            if not self._ignore_multiple_results:
                LOG.error(
                    "LDAP: more than one entry for user %r (%s); login refused", username, found
                )
                return None
            LOG.warning(
                "LDAP: more than one entry for user %r (%s); using the first", username, found
            )
        dn, attrs = entries[0]
        admin = False
        if self._admin_field is not None:
            values = self._values(attrs, self._admin_field)
            admin = any(v.casefold() in self._admin_values for v in values)
        if not admin and self._admin_group_dn:
            admin = self._in_admin_group(dn)
        return LdapUser(username, dn, admin)

    def _in_admin_group(self, user_dn: str) -> bool:
        from ldap3 import BASE
        from ldap3.utils.conv import escape_filter_chars

        group = self._admin_group_dn
        assert group is not None
        if self._admin_member_attr is None:
            entries = self._search(group, BASE, "(objectClass=*)", ["objectClass"])
            if not entries:
                LOG.warning("LDAP admin group %r does not exist", group)
                return False
            classes = {c.lower() for c in self._values(entries[0][1], "objectClass")}
            self._admin_member_attr = (
                "uniqueMember" if "groupofuniquenames" in classes else "member"
            )
        search_filter = f"({self._admin_member_attr}={escape_filter_chars(user_dn)})"
        return bool(self._search(group, BASE, search_filter, ["1.1"]))

    def _lookup(self, username: str) -> LdapUser | None:
        """The user entry, from the cache when fresh. Raises ``BackendUnavailable``."""
        pinned = self._pinned.get(username)
        if pinned is not None:
            return pinned
        now = self._clock()
        with self._cache_lock:
            cached = self._cache.get(username)
        if cached is not None and (cached[1] is None or cached[1] > now):
            return cached[0]
        user = self._fetch(username)
        with self._cache_lock:
            if user is None or self._cache_time == 0:
                self._cache.pop(username, None)
            else:
                expires = None if self._cache_time is None else now + self._cache_time
                self._cache[username] = (user, expires)
        return user

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # --- AccessBackend ----------------------------------------------------------------------

    def verify_user(self, username: str, password: str) -> bool:
        # An empty password would make the bind an unauthenticated one (RFC 4513 5.1.2),
        # which servers accept: never let it through.
        if not username or not password:
            return False
        try:
            user = self._lookup(username)
        except BackendUnavailable as exc:
            LOG.warning("LDAP lookup of %r failed: %s", username, exc)
            return False
        if user is None:
            return False
        try:
            conn, result = self._bind(user.dn, password)
        except Exception as exc:
            LOG.warning("LDAP bind as %r failed: %s", user.dn, exc)
            return False
        try:
            code = result.get("result")
            if code != INVALID_CREDENTIALS and not conn.bound:
                LOG.warning("LDAP bind as %r refused: %s", user.dn, result.get("description"))
            return bool(conn.bound) and code == SUCCESS
        finally:
            with contextlib.suppress(Exception):
                conn.unbind()

    def groups(self, username: str) -> frozenset[str]:
        if self._fallback is None:
            return frozenset()
        return self._fallback.groups(username)

    def is_admin(self, username: str) -> bool:
        if not username:
            return False
        try:
            user = self._lookup(username)
        except BackendUnavailable as exc:
            LOG.warning("LDAP lookup of %r failed: %s", username, exc)
            return False
        return user is not None and user.admin

    def package_acl(self, project: str) -> PackageAcl:
        if self._fallback is None:
            return EMPTY_ACL
        return self._fallback.package_acl(project)

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        if self._fallback is None:
            return dict.fromkeys(projects, EMPTY_ACL)
        return self._fallback.package_acls(projects)

    def health(self) -> None:
        def whoami(conn: Any) -> dict[str, Any]:
            conn.extend.standard.who_am_i()
            return dict(conn.result or {})

        result = self._with_service(whoami)
        if result.get("result") != SUCCESS:
            raise BackendUnavailable(
                f"LDAP server {self._host}:{self._port}: {result.get('description')}"
            )
        if self._fallback is not None:
            self._fallback.health()

    # --- AccessDirectory (read-only) --------------------------------------------------------

    def list_users(self) -> list[UserInfo]:
        """Users named in the fallback config (``user.*`` keys, group members) that LDAP
        knows, plus ``service_username``. LDAP is not enumerated.
        """
        names: set[str] = set(self._pinned)
        if self._fallback is not None:
            names.update(user.username for user in self._fallback.list_users())
            for group in self._fallback.list_groups():
                names.update(self._fallback.group_members(group))
        users = []
        for name in sorted(names):
            user = self._lookup(name)
            if user is not None:
                users.append(UserInfo(username=name, admin=user.admin))
        return users

    def get_user(self, username: str) -> UserInfo | None:
        user = self._lookup(username) if username else None
        if user is None:
            return None
        return UserInfo(username=username, admin=user.admin, groups=sorted(self.groups(username)))

    def list_groups(self) -> list[str]:
        return self._fallback.list_groups() if self._fallback is not None else []

    def group_members(self, group: str) -> list[str]:
        if self._fallback is None:
            raise NotFound(f"No group {group!r} (LDAP has no groups without auth.ldap.fallback)")
        return self._fallback.group_members(group)

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        if self._fallback is None:
            return {}
        return self._fallback.user_package_permissions(username)

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]:
        if self._fallback is None:
            return {}
        return self._fallback.group_package_permissions(group)
