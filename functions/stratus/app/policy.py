"""Who the caller is and what they may do: the Access port plus the pypicloud rules.

Successful credential checks (passwords and API tokens) are cached per process for
``credential_cache_seconds``, so pip's many requests in one run do not each pay an argon2
hash or token lookups; ``identify_cached`` answers those on the event loop. The cache
never holds secrets: only HMACs under a random per-process key. A change to a user or a
token revoked here is forgotten at once; one made in another process (another Lambda
container) shows within the cache time.

A password carries everything its user may do; an API token carries at most that (see
``stratus.app.tokens``): a scoped token, or one made with ``admin=false``, is never an
admin credential, even of an admin. Tokens live in the token store, which is the access
backend when that is mutable and SQLite/DynamoDB otherwise, so tokens work with every
backend. A verified password stored under a legacy scheme (pypicloud's sha256_crypt,
bcrypt, ...) is re-hashed as argon2id when the backend is mutable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..domain import passwords, permissions
from ..domain.models import ADMIN_CAP, ANONYMOUS, READ_CAP, UPLOAD_CAP, Identity
from ..domain.permissions import READ, WRITE
from ..ports import AccessBackend, AccessDirectory, MintedTokens, MutableAccessBackend, TokenStore
from ..settings import Settings
from . import tokens
from .throttle import LoginThrottle, token_account, user_account

log = logging.getLogger(__name__)


class BadCredentials(Exception):
    """Credentials were sent and are wrong (HTTP 401)."""


class PendingApproval(BadCredentials):
    """The password is right, but the registration waits for an admin's approval (401)."""

    def __init__(self) -> None:
        super().__init__("Your account is waiting for an administrator's approval.")


# Longer credentials are refused before any hashing: the cost of legacy schemes such as
# sha256_crypt grows with the password's length.
MAX_CREDENTIALS_CHARS = 1024


def _token_key(token_id: str) -> str:
    return f"token:{token_id}"  # no user name has a ':' (Basic auth splits at the first)


@dataclass(frozen=True, slots=True)
class UserState:
    """An approved user by name alone (a signed web session names it)."""

    identity: Identity
    password_stamp: str  # SHA-256 of the stored password hash; "" if the backend has none


@dataclass(frozen=True, slots=True)
class _Login:
    username: str
    password: str
    token: tuple[str, str] | None  # (token id, secret) when the password is token-shaped
    accounts: tuple[str, ...]  # throttle keys

    @property
    def token_key(self) -> str:
        assert self.token is not None
        return _token_key(self.token[0])


class AccessPolicy:
    def __init__(
        self,
        backend: AccessBackend,
        settings: Settings,
        *,
        token_store: TokenStore | None = None,
        throttle: LoginThrottle | None = None,
        minted_tokens: MintedTokens | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.token_store = token_store
        self.minted_tokens = minted_tokens
        self.throttle = throttle or LoginThrottle()
        self._cache_key = os.urandom(32)
        self._verified: dict[str, tuple[bytes, float, Identity]] = {}
        self._states: dict[str, tuple[float, UserState | None]] = {}
        self._lock = threading.Lock()

    # --- authentication ---
    def identify(self, authorization: str | None, source: str | None = None) -> Identity:
        """The identity for an ``Authorization`` header; ANONYMOUS if none was sent.

        Raises ``BadCredentials`` for wrong credentials and ``TooManyAttempts`` when the
        user, the token or the source ``source`` (client address) failed too often
        recently. May hash a password or query the backends: call it off the event loop
        (``identify_cached`` first answers what needs neither).
        """
        login = self._parse(authorization, source)
        if login is None:
            return ANONYMOUS
        return self._verify(login, source)

    def authenticate(
        self, username: str, password: str, source: str | None = None, *, api_tokens: bool = True
    ) -> Identity:
        """A user name and password from a form (the web UI's sign-in), checked and
        throttled as Basic auth is; ``api_tokens`` False takes a token only as a password."""
        header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        login = self._parse(header, source)
        assert login is not None
        if not api_tokens:
            login = replace(login, token=None)
        return self._verify(login, source)

    def _verify(self, login: _Login, source: str | None) -> Identity:
        cached = self._cached(login)
        if cached is not None:
            return cached
        identity = None
        if login.token is not None and tokens.is_minted(login.token[0]):
            # Not cached: trusted publishing burns its tokens, which must stop at once.
            identity = self._check_minted(login.username, *login.token)
        elif login.token is not None:
            identity = self._check_token(login.username, *login.token)
            if identity is not None:
                self._remember(login.token_key, login.token[1], identity)
        if identity is None and login.username != tokens.TOKEN_USER:
            # Also a token-shaped password that is no valid token: it may be a password.
            try:
                identity = self._check_password(login.username, login.password)
            except PendingApproval:
                self.throttle.failed(login.accounts, source)  # a refused login all the same
                raise
            if identity is not None:
                self._remember(login.username, login.password, identity)
        if identity is None:
            self.throttle.failed(login.accounts, source)
            raise BadCredentials("Invalid username or password.")
        self.throttle.succeeded(login.accounts)
        return identity

    def identify_cached(
        self, authorization: str | None, source: str | None = None
    ) -> Identity | None:
        """What ``identify`` answers without hashing or I/O: ANONYMOUS, a credential
        verified recently (the cache), ``TooManyAttempts``; None when ``identify`` must run.

        Cheap enough for the event loop: a logged-in user's requests never wait for a
        thread, whatever a login storm keeps the threads busy with.
        """
        try:
            login = self._parse(authorization, source)
        except BadCredentials:
            return None  # identify raises it again, and counts it
        if login is None:
            return ANONYMOUS
        return self._cached(login)

    def _parse(self, authorization: str | None, source: str | None) -> _Login | None:
        """The credentials of a Basic header (None: no header), after the throttle check."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise BadCredentials("Only HTTP Basic authentication is supported.")
        if len(value) > MAX_CREDENTIALS_CHARS * 4 // 3 + 4:
            raise BadCredentials("Credentials too long.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials("Malformed Basic authorization header.") from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise BadCredentials("Malformed Basic authorization header.")
        token = tokens.split(password)
        if token is not None and self.token_store is None and not tokens.is_minted(token[0]):
            token = None
        # Throttle what the login tries to prove: the token (by id) and/or the user's
        # password; never the shared name "__token__". The source always counts.
        accounts = []
        if token is not None:
            accounts.append(token_account(token[0]))
        if username != tokens.TOKEN_USER:
            accounts.append(user_account(username))
        self.throttle.check(accounts, source)
        return _Login(username, password, token, tuple(accounts))

    # --- the verified-credential cache ---
    def _digest(self, secret: str) -> bytes:
        return hmac.new(self._cache_key, secret.encode(), hashlib.sha256).digest()

    def _lookup(self, key: str, secret: str) -> Identity | None:
        with self._lock:
            entry = self._verified.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        if not hmac.compare_digest(entry[0], self._digest(secret)):
            return None
        identity = entry[2]
        if identity.expires is not None and time.time() >= identity.expires:
            return None  # an expiring token: never past its end
        return identity

    def _cached(self, login: _Login) -> Identity | None:
        if login.token is not None:
            hit = self._lookup(login.token_key, login.token[1])
            if hit is not None and login.username in (tokens.TOKEN_USER, hit.username):
                return hit
        if login.username != tokens.TOKEN_USER:
            return self._lookup(login.username, login.password)
        return None

    def _remember(self, key: str, secret: str, identity: Identity) -> None:
        expires = time.monotonic() + self.settings.credential_cache_seconds
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = (self._digest(secret), expires, identity)

    def _describe(self, username: str) -> Identity:
        """A password's identity: everything the user may do."""
        admin = self.backend.is_admin(username)
        return Identity(username=username, groups=self.backend.groups(username), is_admin=admin)

    def _check_token(self, username: str, token_id: str, secret: str) -> Identity | None:
        assert self.token_store is not None
        record = self.token_store.get_token(token_id)
        if record is None or not tokens.matches(record, secret):
            return None
        if username not in (tokens.TOKEN_USER, record.username):
            return None
        if not tokens.holds_users(self.token_store, self.backend) and not tokens.user_exists(
            self.backend, record.username
        ):
            return None  # removed from the config file / directory since
        caps = tokens.capabilities_of(record)
        admin_user = self.backend.is_admin(record.username)
        return Identity(
            username=record.username,
            groups=self.backend.groups(record.username),
            is_admin=admin_user and ADMIN_CAP in caps and record.projects is None,
            admin_user=admin_user,
            upload_scope=frozenset(record.projects) if record.projects is not None else None,
            capabilities=caps,
            token_id=record.token_id,
            expires=record.expires,
        )

    def _check_minted(self, username: str, token_id: str, secret: str) -> Identity | None:
        """A trusted-publishing token (``__token__`` only): upload to its projects only."""
        if self.minted_tokens is None or username != tokens.TOKEN_USER:
            return None
        record = self.minted_tokens.get_minted_token(token_id)
        if record is None or not record.upload_only or not tokens.matches(record, secret):
            return None
        return Identity(
            username=record.username,
            upload_scope=frozenset(record.projects or ()),
            upload_only=True,
            capabilities=frozenset({UPLOAD_CAP}),
            token_id=token_id,
            expires=record.expires,
        )

    def _check_password(self, username: str, password: str) -> Identity | None:
        """The identity (groups and admin flag included) for a correct password.

        Raises ``PendingApproval`` for the right password of a registration waiting for an
        admin: a mutable backend's stored hash is that of an approved or pending user, so
        the policy checks it itself, with the one verification ``verify_user`` would cost
        (a dummy one for an unknown user). Only the right password learns the state.
        """
        backend = self.backend
        if not isinstance(backend, MutableAccessBackend):
            if not backend.verify_user(username, password):
                return None
            self._upgrade_hash(username, password)
            return self._describe(username)
        if not passwords.verify(password, backend.get_password_hash(username)):
            return None
        info = backend.get_user(username)  # groups and admin flag: no more reads for those
        if info is None:
            raise PendingApproval()
        self._upgrade_hash(username, password)
        return Identity(username=username, groups=frozenset(info.groups), is_admin=info.admin)

    def _upgrade_hash(self, username: str, password: str) -> None:
        """Re-hash a just verified password as argon2id if it is stored under a legacy
        scheme and the backend can change it. A failure only logs: the login stands."""
        backend = self.backend
        if not isinstance(backend, MutableAccessBackend):
            return
        try:
            if passwords.needs_upgrade(backend.get_password_hash(username)):
                backend.set_password_hash(username, passwords.hash_password(password))
                log.info("password hash of %r upgraded to argon2id", username)
        except Exception:
            log.warning("could not upgrade the password hash of %r", username, exc_info=True)

    def user_state(self, username: str) -> UserState | None:
        """The identity of an approved user by name alone (a signed web session names it),
        and a stamp of its password hash; None if the user is gone or not approved.

        Cached like verified credentials; ``forget`` drops it, so a deleted, demoted or
        re-passworded user's sessions follow at once in this process.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._states.get(username)
        if cached is not None and cached[0] > now:
            return cached[1]
        info = (
            self.backend.get_user(username) if isinstance(self.backend, AccessDirectory) else None
        )
        state = None
        if info is not None:
            get_hash = getattr(self.backend, "get_password_hash", None)
            password_hash = get_hash(username) if get_hash is not None else None
            state = UserState(
                Identity(username=username, groups=frozenset(info.groups), is_admin=info.admin),
                hashlib.sha256(password_hash.encode()).hexdigest() if password_hash else "",
            )
        with self._lock:
            if len(self._states) > 10_000:
                self._states.clear()
            self._states[username] = (now + self.settings.credential_cache_seconds, state)
        return state

    def new_environment(self) -> None:
        """A new random key for the credential cache, and an empty cache.

        For an environment restored from a SnapStart snapshot: the key made at init would
        otherwise be the same in every environment restored from that snapshot.
        """
        with self._lock:
            self._cache_key = os.urandom(32)
            self._verified.clear()

    def forget(self, username: str | None = None) -> None:
        """Drop the cached identities of a user (after a change to it: password, groups,
        admin flag, deletion), tokens and web-session states included; or all of them."""
        with self._lock:
            if username is None:
                self._verified.clear()
                self._states.clear()
                return
            self._states.pop(username, None)
            stale = [k for k, entry in self._verified.items() if entry[2].username == username]
            for key in stale:
                del self._verified[key]

    def forget_token(self, token_id: str) -> None:
        """Drop a token's cached identity (after revoking it)."""
        with self._lock:
            self._verified.pop(_token_key(token_id), None)

    # --- authorization ---
    def permissions(self, identity: Identity, project: str) -> frozenset[str]:
        """The user's permissions on ``project``, limited to what the credential allows."""
        if identity.upload_only:  # read as anyone may, and its own projects; never write
            if identity.upload_scope is not None and project in identity.upload_scope:
                return frozenset({READ})
            return self.permissions(ANONYMOUS, project) - {WRITE}
        if identity.admin_user:  # no ACL lookup needed (a query per project on some backends)
            granted = frozenset({READ, WRITE})
        else:
            granted = permissions.effective(
                identity,
                self.backend.package_acl(project),
                self.settings.default_read,
                self.settings.default_write,
            )
        return permissions.within_credential(identity, project, granted)

    def readable(self, identity: Identity, projects: Iterable[str]) -> set[str]:
        """Which of ``projects`` the identity may read: one ACL query for all of them."""
        projects = list(projects)
        if identity.upload_only:  # as in ``permissions``
            scope = identity.upload_scope or frozenset()
            return self.readable(ANONYMOUS, projects) | (scope & set(projects))
        if not identity.may(READ_CAP):
            return set()
        if identity.admin_user:
            return set(projects)
        acls = self.backend.package_acls(projects)
        read, write = self.settings.default_read, self.settings.default_write
        return {
            p
            for p, acl in acls.items()
            if READ in permissions.effective(identity, acl, read, write)
        }

    def read_write(self, identity: Identity, project: str) -> tuple[bool, bool]:
        """(may read, may write) from one ACL lookup, for pages that need both."""
        perms = self.permissions(identity, project)
        in_scope = identity.upload_scope is None or project in identity.upload_scope
        return READ in perms, in_scope and WRITE in perms

    def can_read(self, identity: Identity, project: str) -> bool:
        return READ in self.permissions(identity, project)

    def can_write(self, identity: Identity, project: str) -> bool:
        return WRITE in self.permissions(identity, project)

    def may_upload_somewhere(self, identity: Identity) -> bool:
        """Whether the caller could upload to at least one project.

        The check before reading an upload whose project name is inside the body (the
        legacy upload API): a caller for whom it fails gets 401/403 before a byte is
        read; the per-project ``can_write`` follows once the name is known.
        """
        if identity.upload_only:
            return bool(identity.upload_scope)
        if not identity.may(UPLOAD_CAP) or identity.upload_scope == frozenset():
            return False
        if identity.admin_user:
            return True
        groups = permissions.principals(identity)
        if groups.intersection(self.settings.default_write):
            return True  # any project without explicit entries
        if not isinstance(self.backend, AccessDirectory):
            return identity.authenticated  # cannot tell: the per-project check decides
        if identity.username is not None:
            granted = self.backend.user_package_permissions(identity.username)
            if any(WRITE in perms for perms in granted.values()):
                return True
        return any(
            WRITE in perms
            for group in sorted(groups)
            for perms in self.backend.group_package_permissions(group).values()
        )

    def can_upload(self, identity: Identity, project: str) -> bool:
        """May upload a file: as ``can_write``, or a minted token to one of its projects."""
        if identity.upload_only:
            return identity.upload_scope is not None and project in identity.upload_scope
        return self.can_write(identity, project)
