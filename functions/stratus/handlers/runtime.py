"""What the Lambda handlers share: building at init, and SnapStart's runtime hooks.

A handler module builds its services when it is imported in a deployment, which is the
Lambda init (and what SnapStart snapshots), so no invocation pays for that. Outside one
(a test or tool that only imports the module) nothing is built and nothing fails; the
first invocation builds instead.

``snapshot_restore_py`` exists only in the Lambda Python runtime (and in the dev extra, for
tests). Elsewhere no snapshot is ever taken or restored, so registering a hook does
nothing: the stand-in keeps the decorator's contract (it returns the function).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app.services import Services

try:
    from snapshot_restore_py import register_after_restore
except ImportError:  # not in Lambda: no snapshots, nothing ever runs after a restore

    def register_after_restore(
        func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Callable[..., Any]:
        return func


__all__ = ["ContainerServices", "build_services", "in_deployment", "register_after_restore"]


def in_deployment() -> bool:
    """Whether this is a deployed function: the stacks always set ``STRATUS_TABLE_NAME``."""
    return bool(os.environ.get("STRATUS_TABLE_NAME"))


def build_services() -> Services:
    """The deployment's services (from the environment) with their AWS clients made.

    Making a client sends nothing: no connection is open when the init ends.
    """
    from ..wiring import connect, services_from_env

    services = services_from_env()
    connect(services)
    return services


class ContainerServices:
    """One function container's services: built at import in a deployment (the init),
    otherwise on first use; ``reset`` forgets them (a test's fresh container)."""

    def __init__(self) -> None:
        self._services: Services | None = build_services() if in_deployment() else None

    def get(self) -> Services:
        if self._services is None:
            self._services = build_services()
        return self._services

    def reset(self) -> None:
        self._services = None
