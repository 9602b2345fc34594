"""Map domain errors to HTTP answers that pip, uv and twine print usefully.

Every error answers ``text/plain`` "<status> <message>": twine prints the status line
and the body, pip the status. Validation errors are 400 with a readable message, not
FastAPI's 422 JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response

from ..app.policy import BadCredentials
from ..app.throttle import TooManyAttempts
from ..domain.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StratusError,
    UpstreamError,
)
from .bodies import BodyTooLarge

_STATUS = {
    InvalidInput: 400,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    UpstreamError: 502,
    BackendUnavailable: 503,
}


def status_of(exc: BaseException) -> int:
    """The HTTP status of a domain error (``StratusError``); 500 for anything else."""
    return next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)


class AuthRequired(Exception):
    """The caller must authenticate (anonymous and not allowed): 401 with a challenge."""


class Forbidden(Exception):
    """Authenticated but not allowed: 403."""


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(f"{status} {message}", status_code=status, headers=headers)


def describe(errors: Sequence[Any]) -> str:
    """One line per invalid parameter, e.g. "Missing parameter 'password'."."""
    lines = []
    for error in errors:
        where = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        name = ".".join(where[1:] if where[:1] == ["path"] else where) or "body"
        if error.get("type") == "missing":
            lines.append(f"Missing parameter {name!r}.")
        else:
            lines.append(f"Parameter {name!r}: {error.get('msg', 'invalid')}.")
    return " ".join(lines) or "Invalid request."


def install(app: FastAPI, realm: str) -> None:
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    async def domain_error(_: Request, exc: Exception) -> Response:
        return _text(status_of(exc), str(exc))

    async def bad_credentials(_: Request, exc: Exception) -> Response:
        return _text(401, str(exc), challenge)

    async def throttled(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, TooManyAttempts)
        return _text(429, str(exc), {"Retry-After": str(exc.retry_after)})

    async def auth_required(_: Request, exc: Exception) -> Response:
        return _text(401, str(exc) or "Authentication required.", challenge)

    async def forbidden(_: Request, exc: Exception) -> Response:
        return _text(403, str(exc) or "Forbidden.")

    async def too_large(_: Request, exc: Exception) -> Response:
        return _text(413, str(exc))

    async def invalid_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _text(400, describe(exc.errors()))

    async def http_error(_: Request, exc: Exception) -> Response:
        # Starlette's own answers (404 no route, 405 wrong method) stay plain text.
        assert isinstance(exc, HTTPException)
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    for cls, handler in (
        (StratusError, domain_error),
        (BadCredentials, bad_credentials),
        (TooManyAttempts, throttled),
        (AuthRequired, auth_required),
        (Forbidden, forbidden),
        (BodyTooLarge, too_large),
        (RequestValidationError, invalid_request),
        (HTTPException, http_error),
    ):
        app.add_exception_handler(cls, closing_if_body_unread(handler))


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0").strip()
    return "transfer-encoding" in request.headers or (length.isdigit() and int(length) > 0)


def closing_if_body_unread(
    handler: Callable[[Request, Exception], Awaitable[Response]],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An error answer to a request with a body says ``Connection: close``: the server then
    stops receiving a body that may be unread (an anonymous upload, say) instead of
    draining it to keep the connection."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if has_body(request):
            response.headers["Connection"] = "close"
        return response

    return handle
