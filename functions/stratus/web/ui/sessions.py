"""Browser sessions: a signed cookie, and CSRF tokens bound to it.

The cookie holds ``{"u": user or null, "p": password fingerprint, "c": CSRF token}``,
signed (HMAC-SHA1 over a key derived from the signing key with its own salt) and
time-stamped by ``itsdangerous`` — the library Starlette's ``SessionMiddleware`` uses —
so it cannot be forged or altered, and it expires after ``MAX_AGE``. Nothing secret is
in it: it is signed, not encrypted.

Every visitor who sees a form gets a session (anonymous ones too, for the login form),
and every form that changes state carries the session's CSRF token (the synchronizer
token pattern, kept in the signed cookie instead of a server-side store); a login
replaces the session and its token (no fixation).

The user named by a session is looked up on every request (``AccessPolicy.user_state``,
cached briefly), so a deleted user or one no longer approved is anonymous at once, and
the password fingerprint (an HMAC of the stored password hash) ends every session of a
user whose password changed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from ...app.policy import AccessPolicy
from ...domain.models import ANONYMOUS, Identity

COOKIE_NAME = "stratus_session"
MAX_AGE = 12 * 3600  # seconds a session lasts after sign-in
_SALT = "stratus.web-session"
_MAX_COOKIE = 4096


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    username: str | None = None
    fingerprint: str = ""


class SessionCodec:
    def __init__(self, secret_key: str, max_age: int = MAX_AGE) -> None:
        if not secret_key:
            raise ValueError("a session signing key is required")
        self.max_age = max_age
        self._secret_key = secret_key
        self._serializer: Any = None  # itsdangerous, imported on first use
        self._fingerprint_key = hmac.new(
            secret_key.encode(), b"stratus.web-session.password", hashlib.sha256
        ).digest()

    # --- cookie value ---
    @property
    def serializer(self) -> Any:
        if self._serializer is None:
            from itsdangerous import URLSafeTimedSerializer

            self._serializer = URLSafeTimedSerializer(self._secret_key, salt=_SALT)
        return self._serializer

    def dumps(self, session: Session) -> str:
        return self.serializer.dumps(
            {"u": session.username, "p": session.fingerprint, "c": session.csrf}
        )

    def loads(self, value: str | None) -> Session | None:
        """The session of a cookie value; None if absent, altered, malformed or expired."""
        if not value or len(value) > _MAX_COOKIE:
            return None
        from itsdangerous import BadSignature

        try:
            data = self.serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict):
            return None
        csrf, user, fingerprint = data.get("c"), data.get("u"), data.get("p", "")
        if not isinstance(csrf, str) or not csrf:
            return None
        if user is not None and not isinstance(user, str):
            return None
        return Session(csrf, user, fingerprint if isinstance(fingerprint, str) else "")

    # --- sessions ---
    @staticmethod
    def anonymous() -> Session:
        return Session(secrets.token_urlsafe(32))

    def signed_in(self, username: str, password_stamp: str) -> Session:
        """A fresh session (new CSRF token) for a user who just proved their password."""
        return Session(secrets.token_urlsafe(32), username, self.fingerprint(password_stamp))

    def fingerprint(self, password_stamp: str) -> str:
        return hmac.new(self._fingerprint_key, password_stamp.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def csrf_ok(session: Session | None, sent: object) -> bool:
        """Whether a form's token is the session's (constant-time)."""
        if session is None or not isinstance(sent, str) or not sent:
            return False
        return hmac.compare_digest(session.csrf.encode(), sent.encode())

    def identity(self, session: Session | None, policy: AccessPolicy) -> Identity:
        """Who the session's user is now; anonymous if none, gone, or re-passworded."""
        if session is None or session.username is None:
            return ANONYMOUS
        state = policy.user_state(session.username)
        if state is None:
            return ANONYMOUS
        if not hmac.compare_digest(self.fingerprint(state.password_stamp), session.fingerprint):
            return ANONYMOUS
        return state.identity
