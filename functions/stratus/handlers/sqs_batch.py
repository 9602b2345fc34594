"""The entry point shared by the queue-fed functions (sync, cache fill, upload completion).

Powertools' BatchProcessor hands each SQS record to the function's ``record_handler`` and
reports the ones that raised (partial batch response), so only those are retried and the
queue's ``maxReceiveCount`` sends a record that keeps failing to its dead-letter queue.
Each invocation is logged with its Lambda context, traced, and flushes its metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from .telemetry import metrics, tracer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def sqs_batch_handler(logger: Logger, record_handler: Callable[[SQSRecord], Any]) -> Handler:
    """A Lambda handler applying ``record_handler`` to each record of an SQS batch."""
    processor = BatchProcessor(event_type=EventType.SQS)

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler
