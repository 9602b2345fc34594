"""Routes that answer on several paths, e.g. with and without a trailing slash as
pypicloud's do.

The app runs with ``redirect_slashes=False`` (a redirect would turn a PUT or POST into
something curl and twine do not follow), so each spelling is a route. FastAPI analyses
an endpoint (signature, dependencies, pydantic fields) once per route it builds, which
is most of the app's start-up time; an alias is therefore a copy of the documented route
with only its path changed, and stays out of the OpenAPI description.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import compile_path


def route(
    router: APIRouter, method: str, path: str, *aliases: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` for ``method`` on ``path`` (documented) and on each alias."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, func, methods=[method], **options)
        documented = router.routes[-1]
        assert isinstance(documented, APIRoute)  # what add_api_route appended
        for alias in aliases:
            twin = copy.copy(documented)
            twin.path = router.prefix + alias
            twin.path_regex, twin.path_format, twin.param_convertors = compile_path(twin.path)
            twin.include_in_schema = False
            router.routes.append(twin)
        return func

    return wrap


def both_slashes(
    router: APIRouter, path: str, method: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``path + "/"`` documented, ``path`` as its alias."""
    return route(router, method, path + "/", path, **options)
