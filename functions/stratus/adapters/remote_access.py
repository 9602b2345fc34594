"""Access control delegated to another HTTP server (pypicloud manual §1.6.6). Read-only.

Every question is a ``GET <auth.backend_server><auth.uri.X>?<params>`` answered with JSON,
exactly as pypicloud's ``RemoteAccessBackend`` asks it, so a server written for pypicloud
serves Stratus unchanged:

==============================  ===========  ====================================  ======
option (default uri)            params       answer                                used by
==============================  ===========  ====================================  ======
``auth.uri.verify``             username,    ``true`` / ``false``                  login
(``/verify``)                   password
``auth.uri.groups``             username     ``["group", ...]``; without params:   login,
(``/groups``)                   (optional)   every group                           health
``auth.uri.group_members``      group        ``["user", ...]``                     admin
``auth.uri.admin``              username     ``true`` / ``false``                  login
``auth.uri.group_permissions``  package      ``{"group": ["read", "write"]}``      ACL
``auth.uri.user_permissions``   package      ``{"user": ["read"]}``                ACL
``auth.uri.user_package_``      username     ``[{"package": p, "permissions":      admin
``permissions``                              [...]}]``
``auth.uri.group_package_``     group        idem                                  admin
``permissions``
``auth.uri.user_data``          username     ``[{"username", "admin"}]``; with a   admin
(``/user_data``)                (optional)   username: one dict plus ``groups``
==============================  ===========  ====================================  ======

Details:

- HTTP basic auth with ``auth.user`` / ``auth.password`` when ``auth.user`` is set (the
  header is not forwarded if the server redirects).
- The ``package`` sent is the PEP 503 normalized name; package names in answers are
  normalized too. Permission lists may hold ``read``/``write`` (or ``r``/``w``).
- Only a JSON ``true`` verifies a password or makes an admin.
- As in pypicloud the password travels as a query parameter: use ``https`` and keep the
  remote server from logging query strings. Error messages here never include it.
- A remote failure (unreachable, timeout, HTTP error, not JSON) makes ``verify_user``
  return False (logged) and every other question raise ``BackendUnavailable``;
  ``health()`` asks ``groups`` without params and raises the same way.
- ``groups``/``admin`` and the two ACL answers are cached for ``cache_seconds`` (default
  10; ``auth.cache_seconds``) per process. Password checks are not cached here (the
  policy caches successful ones), nor are admin-page answers.
- The client is the standard library's ``urllib`` (no dependency), one connection per
  request (``Connection: close``), ``timeout`` seconds (``auth.timeout``, default 5).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..domain.errors import BackendUnavailable, NotFound
from ..domain.names import normalize
from ..domain.permissions import PackageAcl, permission_letter
from ..ports import UserInfo

log = logging.getLogger(__name__)

DEFAULT_URIS: dict[str, str] = {
    "verify": "/verify",
    "groups": "/groups",
    "group_members": "/group_members",
    "admin": "/admin",
    "group_permissions": "/group_permissions",
    "user_permissions": "/user_permissions",
    "user_package_permissions": "/user_package_permissions",
    "group_package_permissions": "/group_package_permissions",
    "user_data": "/user_data",
}
DEFAULT_TIMEOUT = 5.0
DEFAULT_CACHE_SECONDS = 10.0
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_CACHE_ENTRIES = 10_000
_NOT_FOUND = object()


class RemoteAccessError(BackendUnavailable):
    """The remote access server failed to answer a question (HTTP 503 to our client)."""


class RemoteAccess:
    """AccessBackend + AccessDirectory answered by a remote server's ``auth.uri.*`` endpoints."""

    def __init__(
        self,
        backend_server: str,
        *,
        user: str | None = None,
        password: str | None = None,
        uris: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        parts = urlsplit(backend_server or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"auth.backend_server must be an http(s) URL such as https://auth.example.com, "
                f"not {backend_server!r}"
            )
        unknown = set(uris or ()) - set(DEFAULT_URIS)
        if unknown:
            raise ValueError(f"unknown auth.uri.* option(s): {', '.join(sorted(unknown))}")
        self.server = backend_server.rstrip("/")
        self.uris = {**DEFAULT_URIS, **{k: v for k, v in (uris or {}).items() if v}}
        self.timeout = float(timeout)
        self.cache_seconds = float(cache_seconds)
        self._authorization: str | None = None
        if user is not None:
            raw = f"{user}:{password or ''}".encode()
            self._authorization = "Basic " + base64.b64encode(raw).decode("ascii")
        self._opener = urllib.request.build_opener()
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> RemoteAccess:
        """From pypicloud's options: ``auth.backend_server``, ``auth.user``, ``auth.password``,
        ``auth.uri.<name>``; plus Stratus's ``auth.timeout`` and ``auth.cache_seconds``."""
        server = (options.get("auth.backend_server") or "").strip()
        if not server:
            raise ValueError("auth.backend_server is required for the remote access backend")
        uris = {
            key[len("auth.uri.") :]: value.strip()
            for key, value in options.items()
            if key.startswith("auth.uri.")
        }
        user = options.get("auth.user")
        timeout = options.get("auth.timeout")
        cache = options.get("auth.cache_seconds")
        return cls(
            server,
            user=user.strip() if user and user.strip() else None,
            password=options.get("auth.password"),
            uris=uris,
            timeout=float(timeout) if timeout else DEFAULT_TIMEOUT,
            cache_seconds=float(cache) if cache not in (None, "") else DEFAULT_CACHE_SECONDS,
        )

    # --- HTTP ----------------------------------------------------------------------------------

    def _get(self, name: str, params: Mapping[str, str] | None = None, *, missing_ok: bool = False):
        """GET one endpoint and decode its JSON; ``_NOT_FOUND`` on 404 if ``missing_ok``."""
        uri = self.uris[name]
        where = f"remote access server {self.server}{uri} ({name})"  # never the query string
        url = self.server + uri
        if params:
            url += ("&" if "?" in uri else "?") + urlencode(params)
        request = urllib.request.Request(
            url,
            headers={
                "Accept": "application/json",
                "User-Agent": "stratus-remote-access",
                "Connection": "close",
            },
        )
        if self._authorization is not None:
            request.add_unredirected_header("Authorization", self._authorization)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404 and missing_ok:
                return _NOT_FOUND
            raise RemoteAccessError(f"{where} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise RemoteAccessError(f"{where} is unreachable: {reason}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise RemoteAccessError(f"{where} answered more than {MAX_RESPONSE_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise RemoteAccessError(f"{where} did not answer JSON") from None

    def _cached(self, name: str, params: Mapping[str, str]):
        key = (name, *sorted(params.items()))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = self._get(name, params)
        if self.cache_seconds > 0:
            with self._lock:
                if len(self._cache) >= MAX_CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = (now + self.cache_seconds, value)
        return value

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # --- decoding ------------------------------------------------------------------------------

    def _bool(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise RemoteAccessError(f"remote access server: {name} must answer true or false")
        return value

    def _names(self, name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RemoteAccessError(f"remote access server: {name} must answer a list of names")
        return value

    def _perm_map(self, name: str, value: Any) -> dict[str, frozenset[str]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise RemoteAccessError(f"remote access server: {name} must answer an object")
        return {str(who): self._perms(name, perms) for who, perms in value.items()}

    def _perms(self, name: str, value: Any) -> frozenset[str]:
        if value is None:
            return frozenset()
        if not isinstance(value, list):
            raise RemoteAccessError(f"remote access server: {name}: permissions must be a list")
        letters = (permission_letter(p) for p in value if isinstance(p, str))
        return frozenset(letter for letter in letters if letter is not None)

    def _package_list(self, name: str, value: Any) -> dict[str, frozenset[str]]:
        if not isinstance(value, list):
            raise RemoteAccessError(f"remote access server: {name} must answer a list")
        result: dict[str, frozenset[str]] = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("package"), str):
                raise RemoteAccessError(
                    f"remote access server: {name}: each item needs 'package' and 'permissions'"
                )
            project = normalize(item["package"])
            perms = self._perms(name, item.get("permissions"))
            result[project] = result.get(project, frozenset()) | perms
        return dict(sorted(result.items()))

    # --- AccessBackend -------------------------------------------------------------------------

    def verify_user(self, username: str, password: str) -> bool:
        try:
            answer = self._get("verify", {"username": username, "password": password})
        except RemoteAccessError as exc:
            log.warning("login of %r refused: %s", username, exc)
            return False
        return answer is True

    def groups(self, username: str) -> frozenset[str]:
        return frozenset(self._names("groups", self._cached("groups", {"username": username})))

    def is_admin(self, username: str) -> bool:
        return self._bool("admin", self._cached("admin", {"username": username}))

    def package_acl(self, project: str) -> PackageAcl:
        project = normalize(project)
        params = {"package": project}
        users = self._perm_map("user_permissions", self._cached("user_permissions", params))
        groups = self._perm_map("group_permissions", self._cached("group_permissions", params))
        return PackageAcl(users, groups)

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        """pypicloud's remote protocol has no bulk call: one (cached) lookup per project."""
        return {p: self.package_acl(p) for p in projects}

    def health(self) -> None:
        self._names("groups", self._get("groups"))

    # --- AccessDirectory -----------------------------------------------------------------------

    def list_users(self) -> list[UserInfo]:
        answer = self._get("user_data")
        if not isinstance(answer, list):
            raise RemoteAccessError("remote access server: user_data must answer a list")
        users = [self._user(item) for item in answer]
        return sorted(users, key=lambda u: u.username)

    def get_user(self, username: str) -> UserInfo | None:
        answer = self._get("user_data", {"username": username}, missing_ok=True)
        if answer is _NOT_FOUND or answer is None:
            return None
        if isinstance(answer, list):  # a server that ignores the parameter
            answer = next(
                (u for u in answer if isinstance(u, dict) and u.get("username") == username), None
            )
            if answer is None:
                return None
        info = self._user(answer)
        if info.username != username:
            return None
        if "groups" not in answer:
            info.groups = sorted(self.groups(username))
        return info

    def _user(self, item: Any) -> UserInfo:
        if not isinstance(item, dict) or not isinstance(item.get("username"), str):
            raise RemoteAccessError("remote access server: user_data items need a 'username'")
        groups = item.get("groups") or []
        return UserInfo(
            username=item["username"],
            admin=item.get("admin") is True,
            groups=sorted(self._names("user_data", groups)),
        )

    def list_groups(self) -> list[str]:
        return sorted(set(self._names("groups", self._get("groups"))))

    def group_members(self, group: str) -> list[str]:
        answer = self._get("group_members", {"group": group}, missing_ok=True)
        if answer is _NOT_FOUND or answer is None:
            raise NotFound(f"No group {group!r}.")
        members = sorted(set(self._names("group_members", answer)))
        if not members and group not in self.list_groups():
            raise NotFound(f"No group {group!r}.")
        return members

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        answer = self._get("user_package_permissions", {"username": username})
        return self._package_list("user_package_permissions", answer)

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]:
        answer = self._get("group_package_permissions", {"group": group})
        return self._package_list("group_package_permissions", answer)
