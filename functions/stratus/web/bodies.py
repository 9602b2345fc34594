"""Request bodies as pypicloud's views take them: form fields or a JSON object.

``body(Model)`` is a dependency that reads the body *after* the route's authentication
dependencies (FastAPI reads declared ``Form``/``Body`` parameters before any dependency
runs, which would let an anonymous caller make the server read a body) and validates it
with a pydantic model. ``documented(Model)`` describes both encodings in the OpenAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from ..domain.errors import InvalidInput

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = await request.json()
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
