"""Request parameters as pypicloud's views take them: form fields or a JSON object."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..domain.errors import InvalidInput


async def read_params(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            raise InvalidInput("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise InvalidInput("The JSON body must be an object.")
        return data
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return dict(request.query_params)


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InvalidInput(f"Parameter {name!r} must be true or false, not {value!r}.")


def required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or str(value) == "":
        raise InvalidInput(f"Missing parameter {name!r}.")
    return str(value)
