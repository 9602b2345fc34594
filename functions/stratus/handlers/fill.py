"""Lambda entry point of the cache fill: SQS (fill queue) → fetch, check, store.

Each message is one ``FillJob`` (``stratus.domain.upstream``) queued by the API when a
client asked for an upstream file that is not stored yet. ``Filler.run_queued`` streams the
file to /tmp (bounded memory, sha256 checked), stores it like an upload (S3 multipart,
core metadata, catalog) and releases the job's lock. Upstream failures raise: the
message is retried, then goes to the dead-letter queue (partial batch responses).
Services are built once per container, at init (``runtime``); the Filler counts
``CacheFills`` and ``UpstreamErrors``, flushed as EMF metrics after each invocation.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ..domain.upstream import FillJob
from .runtime import ContainerServices
from .sqs_batch import sqs_batch_handler

logger = Logger(service="stratus-fill")
container = ContainerServices()  # built here, at the Lambda init, in a deployment


def filler() -> Any:
    built = container.get().fallback
    if built is None or built.filler is None:
        raise RuntimeError("the fill function needs STRATUS_FALLBACK = cache")
    return built.filler


def record_handler(record: SQSRecord) -> str:
    job = FillJob.from_json(record.body)
    stored = filler().run_queued(job)
    outcome = "stored" if stored is not None else "dropped"
    logger.info("cache fill", extra={"file": job.filename, "outcome": outcome})
    return outcome


handler = sqs_batch_handler(logger, record_handler)
