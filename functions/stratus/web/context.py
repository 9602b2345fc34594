"""Per-app objects the routers use, and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..domain.models import Identity
from ..policy import AccessPolicy
from ..publishing import Publisher
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
        cached = app_context(request).policy.identify(request.headers.get("authorization"))
        request.scope["stratus.identity"] = cached
    return cached
