"""Request bodies as pypicloud's views take them: form fields or a JSON object.

``body(Model)`` is a dependency that reads the body *after* the route's authentication
dependencies (FastAPI reads declared ``Form``/``Body`` parameters before any dependency
runs, which would let an anonymous caller make the server read a body) and validates it
with a pydantic model. ``documented(Model)`` describes both encodings in the OpenAPI.

Every body is read through :func:`bounded`: a ``Content-Length`` over the limit is
refused (413) before a byte is read, and a body without one (chunked) is counted while
it streams and refused as soon as it passes the limit. Such bodies are small
(``MAX_FIELDS_BYTES``); uploads have their own limit (``pypi.max_upload_bytes``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.types import Message

from ..domain.errors import InvalidInput

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS_BYTES = 64 * 1024  # a JSON or form body of the user, token and admin APIs


class BodyTooLarge(Exception):
    """The request body passes its limit (HTTP 413); raised before or while reading it."""

    def __init__(self, limit: int, hint: str = "") -> None:
        super().__init__(f"Request body larger than {limit} bytes.{' ' + hint if hint else ''}")
        self.limit = limit


def bounded(request: Request, limit: int, hint: str = "") -> Request:
    """``request`` whose body reads raise :class:`BodyTooLarge` past ``limit`` bytes.

    Raises at once when ``Content-Length`` says so; otherwise counts the bytes as they
    arrive, so a chunked body is never read (or spooled to disk) beyond the limit.
    """
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise BodyTooLarge(limit, hint)
    receive = request.receive
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit, hint)
        return message

    return Request(request.scope, counting_receive)


def parse_json(data: bytes) -> Any:
    """``json.loads``; a ValueError for any body that is not JSON, including one nested
    deeper than the parser recurses (a few KB of ``[``: a RecursionError, else a 500)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


async def bounded_json(request: Request, limit: int) -> Any:
    """The JSON body, read no further than ``limit`` bytes; ValueError if not JSON or larger."""
    try:
        data = await bounded(request, limit).body()
    except BodyTooLarge:
        raise ValueError("body too large") from None
    return parse_json(data)


async def read_fields(request: Request) -> dict[str, Any]:
    return await parse_fields(bounded(request, MAX_FIELDS_BYTES))


async def parse_fields(request: Request) -> dict[str, Any]:
    """The JSON object, form fields or query of ``request``, whose body is bounded already
    (by :func:`bounded`, or read whole by the caller)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = parse_json(await request.body())
        except ValueError:
            raise InvalidInput("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise InvalidInput("The JSON body must be an object.")
        return data
    if content_type.startswith(FORM_TYPES):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return dict(request.query_params)


def body[M: BaseModel](model: type[M]) -> Callable[[Request], Awaitable[M]]:
    async def parse(request: Request) -> M:
        try:
            return model.model_validate(await read_fields(request))
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from None

    parse.__name__ = f"{model.__name__}_body"
    return parse


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body ``body(model)`` reads."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    }
