"""Access control in one AWS Secrets Manager secret (pypicloud manual §1.6.5). Mutable.

The secret's ``SecretString`` is the JSON document pypicloud's
``AWSSecretsManagerAccessBackend`` reads and writes, so an existing pypicloud secret
loads unchanged and pypicloud can still read what Stratus writes::

    {
      "users": {"<name>": "<passlib hash>"},
      "groups": {"<group>": ["<member>", ...]},
      "admins": ["<name>", ...],
      "packages": {"<project>": {"groups": {"<group>": ["read", "write"]},
                                 "users": {"<name>": ["read"]}}},
      "pending_users": {"<name>": "<passlib hash>"},   # pypicloud's mutable JSON backend
      "allow_registration": false,                     # idem
      "tokens": {"<token id>": {"username": ..., "name": ..., "secret_sha256": ...,
                                "created": ..., "expires": ..., "projects": ...,
                                "capabilities": ...}}
    }

``pending_users`` and ``allow_registration`` are the keys pypicloud's own mutable JSON
backend uses for what §1.6.5 leaves out; ``tokens`` is Stratus's (pypicloud ignores it).
Any other top-level key is kept as it is on every write.

Reading
    Project names are normalized on read (``Django_Unchained`` and ``django-unchained``
    are one project; entries under several spellings are merged). As in pypicloud an
    explicit empty list (``"group3": []``) is an entry: it grants nothing, but the package
    then has explicit entries, so ``pypi.default_read``/``default_write`` no longer apply.
    The parsed secret is cached per instance for ``cache_seconds`` (default 5), so pip's
    many requests in one run cost one ``GetSecretValue``; a write through this instance
    replaces the cache with what it wrote. A change made elsewhere (another Lambda
    container, the console) shows up here within ``cache_seconds``.

Writing
    Every change is a read-modify-write of the whole document: a fresh
    ``GetSecretValue``, the change, then ``PutSecretValue`` (``CreateSecret``, with
    ``KmsKeyId`` if configured, when the secret does not exist yet). A change that changes
    nothing writes nothing.

    Lost updates: Secrets Manager has no conditional write, but a version's id is the
    ``ClientRequestToken`` of the call that made it, versions are immutable, and a put
    whose token names an existing version with different content fails with
    ``ResourceExistsException``. The token of each write is therefore derived from the
    version it read (a UUID5 of the base version id): two Stratus writers that
    read the same version compete for the same version id, exactly one wins and the other
    re-reads and re-applies its change on top. That makes the check-and-put atomic between
    Stratus writers (same or different process or container), and a stale read harmless:
    a put based on an outdated version names an id that already exists.

    Residual races, documented rather than solved:

    * writers that do not follow the token chain (the console, the CLI, pypicloud itself)
      can still interleave with a Stratus write: a version they create between our read
      and our put is overwritten by our put;
    * a rollback of ``AWSCURRENT`` to an older version leaves the chain's next id taken;
      a writer that meets a taken id while the current version did not move checks the
      taken version's labels and, if it is not current, moves to the next derived id.

    Secrets Manager keeps every version created in the last 24 hours and recommends at
    most one ``PutSecretValue`` per 10 minutes sustained; a burst of many changes in a day
    can hit its version quota (the error surfaces as ``BackendUnavailable``). A secret
    holds at most 64 KiB: roughly 500 users with argon2 hashes, fewer with many tokens.

boto3 is imported on first use (cold starts). The endpoint is never configured here:
botocore reads ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (from the service id "Secrets
Manager"; not ``..._SECRETSMANAGER``) or ``AWS_ENDPOINT_URL`` itself.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..domain import passwords
from ..domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from ..domain.names import normalize
from ..domain.permissions import (
    AUTHENTICATED,
    EMPTY_ACL,
    EVERYONE,
    PackageAcl,
    check_permission_args,
    permission_letter,
    permission_names,
)
from ..ports import TokenRecord, UserInfo

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CACHE_SECONDS = 5.0
MAX_SECRET_BYTES = 65536  # Secrets Manager's limit on SecretString
MAX_ATTEMPTS = 20
BACKOFF_BASE = 0.02  # seconds; doubled per attempt, capped, full jitter
BACKOFF_CAP = 1.0
# Namespace of the derived version ids (any fixed UUID; changing it breaks the chain).
VERSION_NAMESPACE = uuid.UUID("6f1c2d0e-5b7a-4f43-9a51-3c1e8e0b7d21")

_SPECIAL_GROUPS = frozenset({EVERYONE, AUTHENTICATED})
_KINDS = {"user": "users", "group": "groups"}
_MISSING_CODES = frozenset({"ResourceNotFoundException"})


def version_token(secret_id: str, base_version: str | None, skip: int = 0) -> str:
    """The ClientRequestToken (= new VersionId) of a write based on ``base_version``.

    Derived from the base version alone (not from ``secret_id``, which one deployment may
    give as a name and another as an ARN); the secret's name only seeds its creation.
    """
    seed = f"create\0{secret_id}" if base_version is None else f"put\0{base_version}"
    return str(uuid.uuid5(VERSION_NAMESPACE, f"{seed}\0{skip}"))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def _perms(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise BackendUnavailable(f"access secret: {where} must be a list of 'read'/'write'")
    letters = set()
    for word in value:
        letter = permission_letter(word) if isinstance(word, str) else None
        if letter is None:
            log.warning("access secret: ignoring unknown permission %r in %s", word, where)
            continue
        letters.add(letter)
    return frozenset(letters)


def _as_dict(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BackendUnavailable(f"access secret: {key!r} must be a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One version of the secret, parsed and indexed for the read path."""

    version: str | None  # None: the secret does not exist
    doc: dict[str, Any]  # never mutated
    users: dict[str, str]
    pending: dict[str, str]
    admins: frozenset[str]
    groups: dict[str, list[str]]
    user_groups: dict[str, frozenset[str]]
    acls: dict[str, PackageAcl]
    allow_register: bool
    tokens: dict[str, TokenRecord]

    @classmethod
    def parse(cls, doc: dict[str, Any], version: str | None) -> _Snapshot:
        users = {str(k): str(v) for k, v in _as_dict(doc, "users").items()}
        pending = {str(k): str(v) for k, v in _as_dict(doc, "pending_users").items()}
        admins_raw = doc.get("admins") or []
        if not isinstance(admins_raw, list):
            raise BackendUnavailable("access secret: 'admins' must be a list")
        groups: dict[str, list[str]] = {}
        user_groups: dict[str, set[str]] = {}
        for group, members in _as_dict(doc, "groups").items():
            if not isinstance(members, list):
                raise BackendUnavailable(f"access secret: group {group!r} must be a list")
            groups[group] = sorted({str(m) for m in members})
            if group in _SPECIAL_GROUPS:
                continue  # membership of everyone/authenticated is automatic
            for member in groups[group]:
                user_groups.setdefault(member, set()).add(group)
        merged: dict[str, dict[str, dict[str, frozenset[str]]]] = {}
        for name, entry in _as_dict(doc, "packages").items():
            if not isinstance(entry, dict):
                raise BackendUnavailable(f"access secret: package {name!r} must be an object")
            project = merged.setdefault(normalize(name), {"users": {}, "groups": {}})
            for section in ("users", "groups"):
                for principal, value in _as_dict(entry, section).items():
                    perms = _perms(value, f"packages.{name}.{section}.{principal}")
                    project[section][principal] = project[section].get(principal, frozenset())
                    project[section][principal] |= perms
        acls = {p: PackageAcl(e["users"], e["groups"]) for p, e in merged.items()}
        tokens = {}
        for token_id, data in _as_dict(doc, "tokens").items():
            try:
                tokens[token_id] = TokenRecord(
                    token_id=token_id,
                    username=data["username"],
                    name=data.get("name", ""),
                    secret_sha256=data["secret_sha256"],
                    created=float(data.get("created", 0)),
                    expires=None if data.get("expires") is None else float(data["expires"]),
                    projects=None if data.get("projects") is None else list(data["projects"]),
                    capabilities=None
                    if data.get("capabilities") is None
                    else [str(c) for c in data["capabilities"]],
                )
            except (AttributeError, KeyError, TypeError, ValueError):
                log.warning("access secret: ignoring malformed token %r", token_id)
        return cls(
            version=version,
            doc=doc,
            users=users,
            pending=pending,
            admins=frozenset(str(a) for a in admins_raw),
            groups=groups,
            user_groups={u: frozenset(g) for u, g in user_groups.items()},
            acls=acls,
            allow_register=bool(doc.get("allow_registration", False)),
            tokens=tokens,
        )


def _token_json(token: TokenRecord) -> dict[str, Any]:
    return {
        "username": token.username,
        "name": token.name,
        "secret_sha256": token.secret_sha256,
        "created": token.created,
        "expires": token.expires,
        "projects": None if token.projects is None else list(token.projects),
        "capabilities": None if token.capabilities is None else list(token.capabilities),
    }


def _with_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with pypicloud's default keys, as its JSON backend fills them in."""
    for key in ("users", "groups", "packages", "pending_users"):
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
    if not isinstance(doc.get("admins"), list):
        doc["admins"] = []
    return doc


class SecretsManagerAccess:
    """Users, groups, permissions, registration and API tokens in one JSON secret."""

    def __init__(
        self,
        secret_id: str,
        *,
        kms_key_id: str | None = None,
        client: Any = None,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        session_options: Mapping[str, str] | None = None,
    ) -> None:
        if not secret_id:
            raise ValueError("SecretsManagerAccess needs a secret id (auth.secret_id)")
        self.secret_id = secret_id
        self.kms_key_id = kms_key_id or None
        self.cache_seconds = float(cache_seconds)
        self._client = client
        self._session_options = dict(session_options or {})
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()  # one fetch at a time; others wait for it
        self._cached: _Snapshot | None = None
        self._expires = 0.0
        self._generation = 0  # bumped by every write; a read started before one is not cached

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> SecretsManagerAccess:
        """From pypicloud's option names (``auth.secret_id``, ``auth.kms_key_id``, ...).

        ``auth.region_name``, ``auth.profile_name`` and the ``auth.aws_*`` credentials are
        honoured as pypicloud does; left out, region and credentials come from the
        environment (the Lambda role). ``auth.cache_seconds`` is Stratus's.
        """
        secret_id = (options.get("auth.secret_id") or "").strip()
        if not secret_id:
            raise ValueError("auth.secret_id is required for the aws_secrets_manager backend")
        session_keys = (
            "region_name",
            "profile_name",
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        )
        session = {k: options[f"auth.{k}"] for k in session_keys if options.get(f"auth.{k}")}
        cache = options.get("auth.cache_seconds")
        return cls(
            secret_id,
            kms_key_id=(options.get("auth.kms_key_id") or "").strip() or None,
            cache_seconds=float(cache) if cache not in (None, "") else DEFAULT_CACHE_SECONDS,
            session_options=session,
        )

    # --- AWS plumbing ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        retries={"mode": "standard"}, connect_timeout=5, read_timeout=10
                    )
                    # A session of its own: boto3's default session is not thread-safe to set up.
                    session = boto3.session.Session(**self._session_options)
                    self._client = session.client("secretsmanager", config=config)
        return self._client

    def connect(self) -> None:
        """Make the Secrets Manager client now, sending nothing (Lambda init)."""
        _ = self.client

    def close_connections(self) -> None:
        """Close the client's pooled HTTP connections; the next request opens new ones."""
        if self._client is not None:
            self._client.close()

    def _fetch(self) -> tuple[str | None, dict[str, Any]]:
        """(VersionId, document) of AWSCURRENT; (None, {}) when the secret does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_secret_value(SecretId=self.secret_id)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None, {}
            raise BackendUnavailable(
                f"Secrets Manager secret {self.secret_id!r}: {_describe(exc)}"
            ) from None
        except BotoCoreError as exc:
            raise BackendUnavailable(f"Secrets Manager unreachable: {_describe(exc)}") from None
        text = response.get("SecretString")
        if text is None:
            raise BackendUnavailable(f"secret {self.secret_id!r} has no SecretString")
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise BackendUnavailable(
                f"secret {self.secret_id!r} is not valid JSON: {exc}"
            ) from None
        if not isinstance(doc, dict):
            raise BackendUnavailable(f"secret {self.secret_id!r} must hold a JSON object")
        return response.get("VersionId"), doc

    def _snapshot(self) -> _Snapshot:
        cached = self._cached
        if cached is not None and time.monotonic() < self._expires:
            return cached
        with self._refresh_lock:
            with self._lock:
                if self._cached is not None and time.monotonic() < self._expires:
                    return self._cached
                generation = self._generation
            version, doc = self._fetch()
            snapshot = _Snapshot.parse(doc, version)
            with self._lock:
                if generation == self._generation:  # no write of ours landed meanwhile
                    self._cached = snapshot
                    self._expires = time.monotonic() + self.cache_seconds
            return snapshot

    def _remember(self, snapshot: _Snapshot) -> None:
        with self._lock:
            self._generation += 1
            self._cached = snapshot
            self._expires = time.monotonic() + self.cache_seconds

    def invalidate(self) -> None:
        """Forget the cached secret: the next read fetches it."""
        with self._lock:
            self._generation += 1
            self._cached = None
            self._expires = 0.0

    def _is_orphan(self, version_id: str) -> bool:
        """Whether an existing version lost AWSCURRENT (a rollback moved the label back)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_secret_value(SecretId=self.secret_id, VersionId=version_id)
        except (ClientError, BotoCoreError):
            return False
        return "AWSCURRENT" not in (response.get("VersionStages") or [])

    def _update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to a fresh copy of the document and write it (see module doc)."""
        from botocore.exceptions import BotoCoreError, ClientError

        skip = 0
        last_conflict: tuple[str | None, str] | None = None  # (base version, token) refused
        for attempt in range(MAX_ATTEMPTS):
            if last_conflict is not None:
                self._backoff(attempt)  # spread competing writers out
            version, doc = self._fetch()
            if last_conflict is not None:
                base, taken = last_conflict
                if version != base:
                    skip = 0  # another writer won: rebase on its version
                elif version is not None and self._is_orphan(taken):
                    skip += 1  # the chain's next id belongs to a rolled-back version
                # else our read lags behind the winner's write: try again
            before = _with_defaults(doc)
            after = copy.deepcopy(before)
            result = change(after)  # may raise NotFound / Conflict / InvalidInput
            if after == before:
                self._remember(_Snapshot.parse(before, version))
                return result
            body = json.dumps(after, separators=(",", ":"), ensure_ascii=False)
            if len(body.encode("utf-8")) > MAX_SECRET_BYTES:
                raise InvalidInput(
                    f"The access data would take {len(body.encode('utf-8'))} bytes; one Secrets "
                    f"Manager secret holds at most {MAX_SECRET_BYTES}."
                )
            token = version_token(self.secret_id, version, skip)
            try:
                if version is None:
                    kwargs: dict[str, Any] = {
                        "Name": self.secret_id,
                        "SecretString": body,
                        "ClientRequestToken": token,
                        "Description": "Stratus package index: users, groups and permissions",
                    }
                    if self.kms_key_id:
                        kwargs["KmsKeyId"] = self.kms_key_id
                    response = self.client.create_secret(**kwargs)
                else:
                    response = self.client.put_secret_value(
                        SecretId=self.secret_id, SecretString=body, ClientRequestToken=token
                    )
            except ClientError as exc:
                if _error_code(exc) == "ResourceExistsException":
                    last_conflict = (version, token)
                    continue
                raise BackendUnavailable(
                    f"Secrets Manager secret {self.secret_id!r}: {_describe(exc)}"
                ) from None
            except BotoCoreError as exc:
                raise BackendUnavailable(f"Secrets Manager unreachable: {_describe(exc)}") from None
            self._remember(_Snapshot.parse(after, response.get("VersionId", token)))
            return result
        raise BackendUnavailable(
            f"secret {self.secret_id!r}: gave up after {MAX_ATTEMPTS} conflicting writes"
        )

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))

    # --- AccessBackend -----------------------------------------------------------------------

    def verify_user(self, username: str, password: str) -> bool:
        return passwords.verify(password, self._snapshot().users.get(username))

    def groups(self, username: str) -> frozenset[str]:
        return self._snapshot().user_groups.get(username, frozenset())

    def is_admin(self, username: str) -> bool:
        snapshot = self._snapshot()
        return username in snapshot.admins and username in snapshot.users

    def package_acl(self, project: str) -> PackageAcl:
        return self._snapshot().acls.get(normalize(project), EMPTY_ACL)

    def package_acls(self, projects: Iterable[str]) -> dict[str, PackageAcl]:
        acls = self._snapshot().acls  # one (cached) read of the secret
        return {p: acls.get(normalize(p), EMPTY_ACL) for p in projects}

    def health(self) -> None:
        """Fetch the secret now (no cache). A secret not created yet is healthy."""
        version, doc = self._fetch()
        _Snapshot.parse(doc, version)

    # --- AccessDirectory ---------------------------------------------------------------------

    def list_users(self) -> list[UserInfo]:
        snapshot = self._snapshot()
        return [UserInfo(name, admin=name in snapshot.admins) for name in sorted(snapshot.users)]

    def get_user(self, username: str) -> UserInfo | None:
        snapshot = self._snapshot()
        if username not in snapshot.users:
            return None
        groups = sorted(g for g, members in snapshot.groups.items() if username in members)
        return UserInfo(username, admin=username in snapshot.admins, groups=groups)

    def list_groups(self) -> list[str]:
        return sorted(self._snapshot().groups)

    def group_members(self, group: str) -> list[str]:
        members = self._snapshot().groups.get(group)
        if members is None:
            raise NotFound(f"No group {group!r}.")
        return list(members)

    def user_package_permissions(self, username: str) -> dict[str, frozenset[str]]:
        acls = self._snapshot().acls
        return {p: acl.users[username] for p, acl in sorted(acls.items()) if username in acl.users}

    def group_package_permissions(self, group: str) -> dict[str, frozenset[str]]:
        acls = self._snapshot().acls
        return {p: acl.groups[group] for p, acl in sorted(acls.items()) if group in acl.groups}

    # --- MutableAccessBackend: users ---------------------------------------------------------

    def create_user(
        self, username: str, password_hash: str, *, admin: bool = False, pending: bool = False
    ) -> None:
        def change(doc: dict[str, Any]) -> None:
            if username in doc["users"] or username in doc["pending_users"]:
                raise Conflict(f"User {username!r} already exists.")
            doc["pending_users" if pending else "users"][username] = password_hash
            if admin and username not in doc["admins"]:
                doc["admins"].append(username)

        self._update(change)

    def delete_user(self, username: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["users"].pop(username, None)
            doc["pending_users"].pop(username, None)
            doc["admins"] = [a for a in doc["admins"] if a != username]
            for group, members in doc["groups"].items():
                if isinstance(members, list) and username in members:
                    doc["groups"][group] = [m for m in members if m != username]
            touched = _remove_principal(doc, "users", username)
            _drop_empty_packages(doc, touched)
            tokens = doc.get("tokens")
            if isinstance(tokens, dict):
                for token_id in [t for t, d in tokens.items() if d.get("username") == username]:
                    del tokens[token_id]

        self._update(change)

    def get_password_hash(self, username: str) -> str | None:
        snapshot = self._snapshot()
        return snapshot.users.get(username) or snapshot.pending.get(username)

    def set_password_hash(self, username: str, password_hash: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            for key in ("users", "pending_users"):
                if username in doc[key]:
                    doc[key][username] = password_hash
                    return
            raise NotFound(f"No user {username!r}.")

        self._update(change)

    def set_admin(self, username: str, admin: bool) -> None:
        def change(doc: dict[str, Any]) -> None:
            if not admin:
                doc["admins"] = [a for a in doc["admins"] if a != username]
                return
            if username not in doc["users"] and username not in doc["pending_users"]:
                raise NotFound(f"No user {username!r}.")
            if username not in doc["admins"]:
                doc["admins"].append(username)

        self._update(change)

    def pending_users(self) -> list[str]:
        return sorted(self._snapshot().pending)

    def approve_user(self, username: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            if username not in doc["pending_users"]:
                raise NotFound(f"No pending user {username!r}.")
            doc["users"][username] = doc["pending_users"].pop(username)

        self._update(change)

    def has_admin(self) -> bool:
        snapshot = self._snapshot()
        return any(admin in snapshot.users for admin in snapshot.admins)

    def create_first_admin(self, username: str, password_hash: str) -> bool:
        # The check runs inside the read-modify-write, which is atomic between Stratus
        # writers (the version chain of the module docstring).
        def change(doc: dict[str, Any]) -> bool:
            if any(admin in doc["users"] for admin in doc["admins"]):
                return False
            if username in doc["users"] or username in doc["pending_users"]:
                raise Conflict(f"User {username!r} already exists.")
            doc["users"][username] = password_hash
            if username not in doc["admins"]:
                doc["admins"].append(username)
            return True

        return self._update(change)

    # --- groups --------------------------------------------------------------------------------

    def create_group(self, group: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            if not isinstance(doc["groups"].get(group), list):
                doc["groups"][group] = []

        self._update(change)

    def delete_group(self, group: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["groups"].pop(group, None)
            touched = _remove_principal(doc, "groups", group)
            _drop_empty_packages(doc, touched)

        self._update(change)

    def add_member(self, username: str, group: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            if username not in doc["users"] and username not in doc["pending_users"]:
                raise NotFound(f"No user {username!r}.")
            members = doc["groups"].get(group)
            if not isinstance(members, list):
                members = doc["groups"][group] = []
            if username not in members:
                members.append(username)

        self._update(change)

    def remove_member(self, username: str, group: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            members = doc["groups"].get(group)
            if isinstance(members, list) and username in members:
                doc["groups"][group] = [m for m in members if m != username]

        self._update(change)

    # --- package permissions -------------------------------------------------------------------

    def set_permission(self, project: str, kind: str, name: str, perm: str, granted: bool) -> None:
        check_permission_args(kind, perm)
        section = _KINDS[kind]
        project = normalize(project)

        def change(doc: dict[str, Any]) -> None:
            packages = doc["packages"]
            spellings = [k for k in packages if normalize(k) == project]
            held: set[str] = set()
            for key in spellings:
                words = _as_dict(packages[key], section).get(name)
                if words is not None:
                    held |= _perms(words, f"packages.{key}.{section}.{name}")
            if (perm in held) == granted:
                return  # nothing to change: leave the document (and its spellings) alone
            # Fold every spelling of the project into its normalized key first.
            merged: dict[str, dict[str, set[str]]] = {"users": {}, "groups": {}}
            if spellings == [project] and _is_clean(packages[project]):
                entry = packages[project]
            else:
                for key in spellings:
                    value = packages.pop(key)
                    for sec in ("users", "groups"):
                        for principal, words in _as_dict(value, sec).items():
                            perms = _perms(words, f"packages.{key}.{sec}.{principal}")
                            merged[sec].setdefault(principal, set()).update(perms)
                entry = {
                    "groups": {g: permission_names(p) for g, p in merged["groups"].items()},
                    "users": {u: permission_names(p) for u, p in merged["users"].items()},
                }
                packages[project] = entry
            entry.setdefault("groups", {})
            entry.setdefault("users", {})
            current = set(_perms(entry[section].get(name, []), f"packages.{project}"))
            if granted:
                current.add(perm)
            else:
                current.discard(perm)
            if current:
                entry[section][name] = permission_names(current)
            else:
                entry[section].pop(name, None)
            _drop_empty_packages(doc, [project])

        self._update(change)

    # --- registration --------------------------------------------------------------------------

    def allow_register(self) -> bool:
        return self._snapshot().allow_register

    def set_allow_register(self, allow: bool) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["allow_registration"] = bool(allow)

        self._update(change)

    # --- API tokens ----------------------------------------------------------------------------

    def add_token(self, token: TokenRecord, *, external_user: bool = False) -> None:
        def change(doc: dict[str, Any]) -> None:
            known = token.username in doc["users"] or token.username in doc["pending_users"]
            if not external_user and not known:
                raise NotFound(f"No user {token.username!r}.")
            tokens = doc.get("tokens")
            if not isinstance(tokens, dict):
                tokens = doc["tokens"] = {}
            if token.token_id in tokens:
                raise Conflict(f"Token {token.token_id!r} already exists.")
            tokens[token.token_id] = _token_json(token)

        self._update(change)

    def get_token(self, token_id: str) -> TokenRecord | None:
        return self._snapshot().tokens.get(token_id)

    def list_tokens(self, username: str) -> list[TokenRecord]:
        tokens = [t for t in self._snapshot().tokens.values() if t.username == username]
        return sorted(tokens, key=lambda t: (t.created, t.token_id))

    def delete_token(self, token_id: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            tokens = doc.get("tokens")
            if isinstance(tokens, dict):
                tokens.pop(token_id, None)

        self._update(change)


def _is_clean(entry: Any) -> bool:
    """Whether a package entry has the shape we write (so it can be edited in place)."""
    if not isinstance(entry, dict):
        return False
    return all(isinstance(entry.get(sec, {}), dict) for sec in ("users", "groups"))


def _remove_principal(doc: dict[str, Any], section: str, name: str) -> list[str]:
    """Remove a user's or group's entries from every package; the packages changed."""
    touched = []
    for package, entry in doc["packages"].items():
        entries = entry.get(section) if isinstance(entry, dict) else None
        if isinstance(entries, dict) and name in entries:
            del entries[name]
            touched.append(package)
    return touched


def _drop_empty_packages(doc: dict[str, Any], names: list[str]) -> None:
    """Remove those of ``names`` left with no user and no group entry.

    pypicloud keeps such entries; they mean nothing (a package without entries falls back
    to the defaults either way), so a change that empties one removes it.
    """
    for name in names:
        entry = doc["packages"].get(name)
        if isinstance(entry, dict) and not entry.get("users") and not entry.get("groups"):
            del doc["packages"][name]
