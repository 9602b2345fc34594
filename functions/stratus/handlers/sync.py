"""Lambda entry point of the S3 → SQS → catalog sync.

Each SQS message carries one S3 event notification; ``stratus.app.sync`` applies it.
Powertools' BatchProcessor reports the messages that failed (partial batch response),
so only those are retried, and SQS moves a message to the dead-letter queue after the
queue's ``maxReceiveCount``. Adapters are built once per container, at init.

``stratus.app.sync`` logs through the standard ``logging`` module; with the function's JSON
log format (set by the stack) Lambda writes those lines as JSON next to this Logger's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..app import sync
from .runtime import ContainerServices
from .sqs_batch import sqs_batch_handler
from .telemetry import metrics

logger = Logger(service="stratus-sync")
container = ContainerServices()  # built here, at the Lambda init, in a deployment


def services() -> Any:
    return container.get()


def record_handler(record: SQSRecord) -> list[str]:
    svc = services()
    try:
        outcomes = sync.apply_message(svc.catalog, svc.storage, record.body)
    except Exception:
        metrics.add_metric(name="SyncEventsFailed", unit=MetricUnit.Count, value=1)
        raise
    for outcome in outcomes:
        metrics.add_metric(
            name=f"SyncEvents{outcome.value.title()}", unit=MetricUnit.Count, value=1
        )
    return [outcome.value for outcome in outcomes]


handler = sqs_batch_handler(logger, record_handler)
