"""Lambda entry point of the background completion of large upload sessions.

The API function queues ``{"session_id", "revision"}`` on
``STRATUS_UPLOAD_COMPLETION_QUEUE_URL`` when a session above
``upload_async_complete_bytes`` is completed (``app/upload_completion``); the queue
invokes this handler (one message at a time), which checks the staged object in place
(size, SHA-256 streamed through ranged reads or computed by S3, core metadata by ranged
reads) and publishes it, recording the outcome in the session. A worker that dies (a
timeout, say) leaves its message to be redelivered once the queue's visibility timeout
has passed, by which time its lease has run out and the next worker takes over; after
``maxReceiveCount`` attempts the message goes to the dead-letter queue (alarmed) and a
new ``complete`` request queues the session again.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..app.upload_completion import parse_message
from ..app.upload_sessions import UploadSessionService, session_service
from .runtime import ContainerServices
from .sqs_batch import sqs_batch_handler
from .telemetry import metrics

logger = Logger(service="stratus-upload-completion")


container = ContainerServices()  # built here, at the Lambda init, in a deployment


def service() -> UploadSessionService:
    found = session_service(container.get())
    if found is None:
        raise RuntimeError("upload sessions are not configured")
    return found


def record_handler(record: SQSRecord) -> str:
    try:
        session_id, revision = parse_message(record.json_body)
    except ValueError:
        logger.warning("not a completion message; dropped", extra={"body": record.body[:200]})
        return "dropped"
    session = service().finish_queued(session_id, revision)
    status = session.status if session is not None else "taken"
    metrics.add_metric(name=f"UploadCompletions{status.title()}", unit=MetricUnit.Count, value=1)
    logger.info("upload session completed", extra={"session": session_id, "status": status})
    return status


handler = sqs_batch_handler(logger, record_handler)
