"""Decorator-style routes on plain Starlette.

Stratus runs on Starlette directly (FastAPI's foundation) because FastAPI's own import
costs ~0.3 s of every cold start and Stratus uses none of its schema features. Handlers
keep FastAPI's shape: ``handler(request, <path params>, <query params with defaults>)``;
sync handlers run in the thread pool, async ones on the loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from ..domain.errors import InvalidInput


def _as_bool(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise InvalidInput(f"Query parameter {name!r} must be true or false, not {value!r}.")


def _endpoint(func: Callable[..., Any], path: str) -> Callable[[Request], Any]:
    signature = inspect.signature(func, eval_str=True)
    names = list(signature.parameters)[1:]  # after ``request``
    path_names = {n for n in names if "{" + n + "}" in path}
    query = [
        (n, signature.parameters[n].default, signature.parameters[n].annotation is bool)
        for n in names
        if n not in path_names
    ]
    is_async = inspect.iscoroutinefunction(func)

    async def endpoint(request: Request) -> Any:
        kwargs: dict[str, Any] = {n: request.path_params[n] for n in path_names}
        for name, default, is_bool in query:
            raw = request.query_params.get(name)
            kwargs[name] = default if raw is None else (_as_bool(raw, name) if is_bool else raw)
        if is_async:
            return await func(request, **kwargs)
        return await run_in_threadpool(func, request, **kwargs)

    return endpoint


class Router:
    """Collects routes; ``routes`` goes into ``Starlette(routes=...)``."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def add_api_route(
        self, path: str, func: Callable[..., Any], methods: Sequence[str], **_: Any
    ) -> None:
        full = self.prefix + path
        self.routes.append(Route(full, _endpoint(func, full), methods=list(methods)))

    def _method(self, method: str, path: str):
        def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add_api_route(path, func, [method])
            return func

        return wrap

    def get(self, path: str):
        return self._method("GET", path)

    def post(self, path: str):
        return self._method("POST", path)

    def put(self, path: str):
        return self._method("PUT", path)

    def delete(self, path: str):
        return self._method("DELETE", path)
