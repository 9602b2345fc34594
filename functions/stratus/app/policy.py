"""Who the caller is and what they may do: the Access port plus the pypicloud rules.

Successful credential checks are cached per process for a short time, so pip's many
requests in one run do not each pay an argon2 hash. The cache never holds passwords:
its keys are HMACs under a random per-process key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterable

from ..domain import permissions
from ..domain.models import ANONYMOUS, Identity
from ..domain.permissions import READ, WRITE
from ..ports import AccessBackend, MintedTokens, MutableAccessBackend
from ..settings import Settings
from . import tokens
from .throttle import LoginThrottle


class BadCredentials(Exception):
    """Credentials were sent and are wrong (HTTP 401)."""


class AccessPolicy:
    def __init__(
        self,
        backend: AccessBackend,
        settings: Settings,
        *,
        token_store: MutableAccessBackend | None = None,
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
        user or the source ``source`` (client address) failed too often recently.
        """
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise BadCredentials("Only HTTP Basic authentication is supported.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadCredentials("Malformed Basic authorization header.") from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise BadCredentials("Malformed Basic authorization header.")
        self.throttle.check(username, source)
        token_parts = tokens.split(password)
        if token_parts is not None and tokens.is_minted(token_parts[0]):
            identity = self._check_minted(username, *token_parts)
        elif token_parts is not None and self.token_store is not None:
            identity = self._check_token(username, *token_parts)
        else:
            identity = self._check_password(username, password)
        if identity is None:
            self.throttle.failed(username, source)
            raise BadCredentials("Invalid username or password.")
        self.throttle.succeeded(username)
        return identity

    def _describe(self, username: str, upload_scope: frozenset[str] | None = None) -> Identity:
        return Identity(
            username=username,
            groups=self.backend.groups(username),
            is_admin=self.backend.is_admin(username),
            upload_scope=upload_scope,
        )

    def _check_token(self, username: str, token_id: str, secret: str) -> Identity | None:
        assert self.token_store is not None
        record = self.token_store.get_token(token_id)
        if record is None or not tokens.matches(record, secret):
            return None
        if username not in ("__token__", record.username):
            return None
        scope = frozenset(record.projects) if record.projects is not None else None
        return self._describe(record.username, scope)

    def _check_minted(self, username: str, token_id: str, secret: str) -> Identity | None:
        """A trusted-publishing token (``__token__`` only): upload to its projects only."""
        if self.minted_tokens is None or username != "__token__":
            return None
        record = self.minted_tokens.get_minted_token(token_id)
        if record is None or not record.upload_only or not tokens.matches(record, secret):
            return None
        return Identity(
            username=record.username,
            upload_scope=frozenset(record.projects or ()),
            upload_only=True,
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
        identity = self._describe(username)
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            expires = now + self.settings.credential_cache_seconds
            self._verified[username] = (digest, expires, identity)
        return identity

    def new_environment(self) -> None:
        """A new random key for the credential cache, and an empty cache.

        For an environment restored from a SnapStart snapshot: the key made at init would
        otherwise be the same in every environment restored from that snapshot.
        """
        with self._lock:
            self._cache_key = os.urandom(32)
            self._verified.clear()

    def forget(self, username: str | None = None) -> None:
        """Drop a cached identity (after a change to the user), or all of them."""
        with self._lock:
            if username is None:
                self._verified.clear()
            else:
                self._verified.pop(username, None)

    # --- authorization ---
    def permissions(self, identity: Identity, project: str) -> frozenset[str]:
        if identity.upload_only:  # read as anyone may, and its own projects; never write
            if identity.upload_scope is not None and project in identity.upload_scope:
                return frozenset({READ})
            return self.permissions(ANONYMOUS, project) - {WRITE}
        if identity.is_admin:  # no ACL lookup needed (a query per project on some backends)
            return frozenset({READ, WRITE})
        return permissions.effective(
            identity,
            self.backend.package_acl(project),
            self.settings.default_read,
            self.settings.default_write,
        )

    def readable(self, identity: Identity, projects: Iterable[str]) -> set[str]:
        """Which of ``projects`` the identity may read: one ACL query for all of them."""
        if identity.is_admin:
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
        if identity.upload_scope is not None and project not in identity.upload_scope:
            return False
        return WRITE in self.permissions(identity, project)

    def can_upload(self, identity: Identity, project: str) -> bool:
        """May upload a file: as ``can_write``, or a minted token to one of its projects."""
        if identity.upload_only:
            return identity.upload_scope is not None and project in identity.upload_scope
        return self.can_write(identity, project)
