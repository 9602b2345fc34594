"""Lambda entry point of the reconcile run (scheduled, or invoked by hand).

Event (all optional): ``{"dry_run": false, "deep": false}``. ``dry_run`` reports what
would be repaired without changing anything; ``deep`` checks every object's sha256
instead of trusting size and time. Returns the report (and logs it).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from ..app import reconcile

logger = Logger(service="stratus-reconcile")
_services: Any = None


def services() -> Any:
    global _services
    if _services is None:
        from ..wiring import services_from_env

        _services = services_from_env()
    return _services


def _flag(event: Any, name: str) -> bool:
    from ..settings import as_bool

    return as_bool(event.get(name) if isinstance(event, dict) else None, name)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = services()
    report = reconcile.reconcile(
        svc.catalog, svc.storage, dry_run=_flag(event, "dry_run"), deep=_flag(event, "deep")
    )
    result = report.as_dict()
    logger.info("reconcile finished", extra={"report": result})
    return result
