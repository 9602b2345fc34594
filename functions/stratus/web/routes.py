"""Routes that answer with and without a trailing slash, as pypicloud's do.

The app runs with ``redirect_slashes=False`` (a redirect would turn a PUT or POST into
something curl and twine do not follow), so both spellings are registered; only the
slash one appears in the OpenAPI description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


def both_slashes(
    router: APIRouter, path: str, method: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path + "/", func, methods=[method], **options)
        router.add_api_route(path, func, methods=[method], include_in_schema=False, **options)
        return func

    return wrap
