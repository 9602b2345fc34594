"""Map domain errors to HTTP answers that pip, uv and twine print usefully."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from ..app.policy import BadCredentials
from ..app.throttle import TooManyAttempts
from ..domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound, StratusError

_STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, BackendUnavailable: 503}


class AuthRequired(Exception):
    """The caller must authenticate (anonymous and not allowed): 401 with a challenge."""


class Forbidden(Exception):
    """Authenticated but not allowed: 403."""


def _reason(status: int, message: str) -> str:
    # twine prints the status line and the body; keep both short and specific.
    return f"{status} {message}"


def install(app: Starlette, realm: str) -> None:
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    async def domain_error(_: Request, exc: Exception) -> PlainTextResponse:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
        return PlainTextResponse(_reason(status, str(exc)), status_code=status)

    async def bad_credentials(_: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(_reason(401, str(exc)), status_code=401, headers=challenge)

    async def throttled(_: Request, exc: Exception) -> PlainTextResponse:
        assert isinstance(exc, TooManyAttempts)
        return PlainTextResponse(
            _reason(429, str(exc)),
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )

    async def auth_required(_: Request, exc: Exception) -> PlainTextResponse:
        message = str(exc) or "Authentication required."
        return PlainTextResponse(_reason(401, message), status_code=401, headers=challenge)

    async def forbidden(_: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(_reason(403, str(exc) or "Forbidden."), status_code=403)

    for cls, handler in (
        (StratusError, domain_error),
        (BadCredentials, bad_credentials),
        (TooManyAttempts, throttled),
        (AuthRequired, auth_required),
        (Forbidden, forbidden),
    ):
        app.add_exception_handler(cls, handler)
