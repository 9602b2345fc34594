"""Per-app objects the routers use, and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ..app.policy import AccessPolicy
from ..app.publish import Publisher
from ..domain.models import Identity
from ..wiring import Services


@dataclass
class AppContext:
    services: Services
    policy: AccessPolicy
    publisher: Publisher


def app_context(request: Request) -> AppContext:
    return request.app.state.ctx


def identity(request: Request) -> Identity:
    """Authenticate the request (raises ``BadCredentials`` → 401)."""
    cached = request.scope.get("stratus.identity")
    if cached is None:
        source = request.client.host if request.client else None
        cached = app_context(request).policy.identify(request.headers.get("authorization"), source)
        request.scope["stratus.identity"] = cached
    return cached


def require_user(request: Request) -> Identity:
    """An authenticated identity, or 401."""
    from .errors import AuthRequired

    who = identity(request)
    if not who.authenticated:
        raise AuthRequired("Authentication required.")
    return who


def require_admin(request: Request) -> Identity:
    """An admin identity: 401 anonymous, 403 otherwise."""
    from .errors import Forbidden

    who = require_user(request)
    if not who.is_admin:
        raise Forbidden("Admin privileges required.")
    return who
