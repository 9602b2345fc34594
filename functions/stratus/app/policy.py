"""Who the caller is and what they may do: the Access port plus the pypicloud rules.

Successful credential checks are cached per process for a short time, so pip's many
requests in one run do not each pay an argon2 hash. The cache never holds passwords:
its keys are HMACs under a random per-process key.

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

from ..domain import passwords, permissions
from ..domain.models import ADMIN_CAP, ANONYMOUS, READ_CAP, UPLOAD_CAP, Identity
from ..domain.permissions import READ, WRITE
from ..ports import AccessBackend, MintedTokens, MutableAccessBackend, TokenStore
from ..settings import Settings
from . import tokens
from .throttle import LoginThrottle, token_account, user_account

log = logging.getLogger(__name__)


class BadCredentials(Exception):
    """Credentials were sent and are wrong (HTTP 401)."""


# Longer credentials are refused before any hashing: the cost of legacy schemes such as
# sha256_crypt grows with the password's length.
MAX_CREDENTIALS_CHARS = 1024


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
        self._lock = threading.Lock()

    # --- authentication ---
    def identify(self, authorization: str | None, source: str | None = None) -> Identity:
        """The identity for an ``Authorization`` header; ANONYMOUS if none was sent.

        Raises ``BadCredentials`` for wrong credentials and ``TooManyAttempts`` when the
        user, the token or the source ``source`` (client address) failed too often
        recently.
        """
        if not authorization:
            return ANONYMOUS
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
        token_parts = tokens.split(password)
        if (
            token_parts is not None
            and self.token_store is None
            and not tokens.is_minted(token_parts[0])
        ):
            token_parts = None
        # Throttle what the login tries to prove: the token (by id) and/or the user's
        # password; never the shared name "__token__". The source always counts.
        accounts = []
        if token_parts is not None:
            accounts.append(token_account(token_parts[0]))
        if username != tokens.TOKEN_USER:
            accounts.append(user_account(username))
        self.throttle.check(accounts, source)
        identity = None
        if token_parts is not None and tokens.is_minted(token_parts[0]):
            identity = self._check_minted(username, *token_parts)
        elif token_parts is not None:
            identity = self._check_token(username, *token_parts)
        if identity is None and username != tokens.TOKEN_USER:
            # Also a token-shaped password that is no valid token: it may be a password.
            identity = self._check_password(username, password)
        if identity is None:
            self.throttle.failed(accounts, source)
            raise BadCredentials("Invalid username or password.")
        self.throttle.succeeded(accounts)
        return identity

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

        Cached with the password's HMAC, so a pip run pays neither the hash nor the
        group lookups on each request.
        """
        digest = hmac.new(self._cache_key, password.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            cached = self._verified.get(username)
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], digest):
            return cached[2]
        if not self.backend.verify_user(username, password):
            return None
        self._upgrade_hash(username, password)
        identity = self._describe(username)
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            expires = now + self.settings.credential_cache_seconds
            self._verified[username] = (digest, expires, identity)
        return identity

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

    def forget(self, username: str | None = None) -> None:
        """Drop a cached identity (after a change to the user), or all of them."""
        with self._lock:
            if username is None:
                self._verified.clear()
            else:
                self._verified.pop(username, None)

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

    def can_read(self, identity: Identity, project: str) -> bool:
        return READ in self.permissions(identity, project)

    def can_write(self, identity: Identity, project: str) -> bool:
        return WRITE in self.permissions(identity, project)

    def can_upload(self, identity: Identity, project: str) -> bool:
        """May upload a file: as ``can_write``, or a minted token to one of its projects."""
        if identity.upload_only:
            return identity.upload_scope is not None and project in identity.upload_scope
        return self.can_write(identity, project)
