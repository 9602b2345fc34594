"""Map domain errors to HTTP answers that pip, uv and twine print usefully."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from ..domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound, StratusError
from ..policy import BadCredentials
from ..throttle import TooManyAttempts

_STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, BackendUnavailable: 503}


class AuthRequired(Exception):
    """The caller must authenticate (anonymous and not allowed): 401 with a challenge."""


class Forbidden(Exception):
    """Authenticated but not allowed: 403."""


def _reason(status: int, message: str) -> str:
    # twine prints the status line and the body; keep both short and specific.
    return f"{status} {message}"


def install(app: FastAPI, realm: str) -> None:
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    @app.exception_handler(StratusError)
    async def _domain_error(_: Request, exc: StratusError) -> PlainTextResponse:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
        return PlainTextResponse(_reason(status, str(exc)), status_code=status)

    @app.exception_handler(BadCredentials)
    async def _bad_credentials(_: Request, exc: BadCredentials) -> PlainTextResponse:
        return PlainTextResponse(_reason(401, str(exc)), status_code=401, headers=challenge)

    @app.exception_handler(TooManyAttempts)
    async def _throttled(_: Request, exc: TooManyAttempts) -> PlainTextResponse:
        return PlainTextResponse(
            _reason(429, str(exc)),
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(AuthRequired)
    async def _auth_required(_: Request, exc: AuthRequired) -> PlainTextResponse:
        message = str(exc) or "Authentication required."
        return PlainTextResponse(_reason(401, message), status_code=401, headers=challenge)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> PlainTextResponse:
        return PlainTextResponse(_reason(403, str(exc) or "Forbidden."), status_code=403)
