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

from .domain import permissions
from .domain.models import ANONYMOUS, Identity
from .domain.permissions import READ, WRITE
from .ports import AccessBackend
from .settings import Settings


class BadCredentials(Exception):
    """Credentials were sent and are wrong (HTTP 401)."""


class AccessPolicy:
    def __init__(self, backend: AccessBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self._cache_key = os.urandom(32)
        self._verified: dict[bytes, float] = {}
        self._lock = threading.Lock()

    # --- authentication ---
    def identify(self, authorization: str | None) -> Identity:
        """The identity for an ``Authorization`` header; ANONYMOUS if none was sent."""
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
        if not self._check_password(username, password):
            raise BadCredentials("Invalid username or password.")
        return Identity(
            username=username,
            groups=self.backend.groups(username),
            is_admin=self.backend.is_admin(username),
        )

    def _check_password(self, username: str, password: str) -> bool:
        key = hmac.new(self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            expires = self._verified.get(key)
        if expires is not None and expires > now:
            return True
        if not self.backend.verify_user(username, password):
            return False
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = now + self.settings.credential_cache_seconds
        return True

    # --- authorization ---
    def permissions(self, identity: Identity, project: str) -> frozenset[str]:
        return permissions.effective(
            identity,
            self.backend.package_acl(project),
            self.settings.default_read,
            self.settings.default_write,
        )

    def can_read(self, identity: Identity, project: str) -> bool:
        return READ in self.permissions(identity, project)

    def can_write(self, identity: Identity, project: str) -> bool:
        return WRITE in self.permissions(identity, project)
