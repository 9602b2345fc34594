"""Lambda entry point of the reconcile run (scheduled, invoked by hand, or continued).

Event (all optional): ``{"dry_run": false, "deep": false}``. ``dry_run`` reports what
would be repaired without changing anything; ``deep`` checks every object's sha256
instead of trusting size and time. A run that nears the function's timeout stops after
the project it is on and queues its continuation (``{"run_id", "after", "page", ...}``)
on ``STRATUS_RECONCILE_QUEUE_URL``; the queue invokes this handler again with an SQS
event. Returns the report of this invocation (and logs it).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from ..app import reconcile
from ..domain.runs import RunStatus
from ..settings import as_bool
from .runtime import ContainerServices
from .telemetry import metrics, tracer

logger = Logger(service="stratus-reconcile")
container = ContainerServices()  # built here, at the Lambda init, in a deployment
# Stop this long before the timeout: one project's repairs must still fit in it.
DEFAULT_MARGIN_SECONDS = 60.0


def services() -> Any:
    return container.get()


def _requests(event: Any) -> list[dict[str, Any]]:
    """One run request per SQS record, or the event itself (schedule or by hand)."""
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return [json.loads(record["body"]) for record in event["Records"]]
    return [event if isinstance(event, dict) else {}]


def _continue(request: dict[str, Any]) -> None:
    from ..adapters.sqs_queue import SqsSender

    queue = os.environ.get("STRATUS_RECONCILE_QUEUE_URL")
    if not queue:
        raise RuntimeError("the run must continue but STRATUS_RECONCILE_QUEUE_URL is not set")
    SqsSender(queue)(request)


def _record(run_id: str, request: dict[str, Any], result: dict[str, Any] | None, error=None):
    """Fold this page into the run's status (``/admin/rebuild/<run_id>/`` reads it)."""
    runs = services().reconcile_runs
    if runs is None:
        return
    status = runs.get(run_id) or RunStatus(
        run_id=run_id,
        dry_run=as_bool(request.get("dry_run", False)),
        deep=as_bool(request.get("deep", False)),
    )
    if result is not None:
        status.add_page(result)
    else:
        status.state, status.error = "failed", error
    runs.save(status)


def run_one(request: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _run_one(request, context)
    except Exception as exc:
        run_id = request.get("run_id")
        if run_id:
            _record(str(run_id), request, None, f"{type(exc).__name__}: {exc}")
        raise


def _run_one(request: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = services()
    margin_ms = 1000 * float(
        os.environ.get("STRATUS_RECONCILE_MARGIN_SECONDS", DEFAULT_MARGIN_SECONDS)
    )
    run_id = str(request.get("run_id") or uuid.uuid4())
    page = int(request.get("page", 1))
    dry_run = as_bool(request.get("dry_run", False))
    deep = as_bool(request.get("deep", False))
    report = reconcile.reconcile(
        svc.catalog,
        svc.storage,
        dry_run=dry_run,
        deep=deep,
        after=request.get("after") or None,
        should_stop=lambda: context.get_remaining_time_in_millis() < margin_ms,
    )
    result = {"run_id": run_id, "page": page, **report.as_dict()}
    # drift found: the ReconcileDrift alarm watches this
    metrics.add_metric(name="ReconcileRepairs", unit=MetricUnit.Count, value=report.repairs)
    logger.info("reconcile page finished", extra={"report": result})
    _record(run_id, request, result)
    if not report.complete:
        _continue(
            {
                "run_id": run_id,
                "page": page + 1,
                "after": report.next_after,
                "dry_run": dry_run,
                "deep": deep,
            }
        )
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results = [run_one(request, context) for request in _requests(event)]
    return results[0] if len(results) == 1 else {"runs": results}
