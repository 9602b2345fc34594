"""Sending JSON messages to an SQS queue: the reconcile function's continuations, the
upload completions, and the cache fills (the ``FillQueue`` port).

The client is made when the sender is (at the Lambda init); the endpoint comes from
botocore's environment (``AWS_ENDPOINT_URL_SQS`` on emulators).
"""

from __future__ import annotations

import json
from typing import Any

from ..domain.upstream import FillJob
from .aws_client import new_client


class SqsSender:
    def __init__(self, queue_url: str, *, client: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client or new_client("sqs")

    def __call__(self, message: dict[str, Any]) -> None:
        self._send(json.dumps(message))

    def enqueue(self, job: FillJob) -> None:
        """``FillQueue``: one message per cache fill, read by the fill function."""
        self._send(job.to_json())

    def _send(self, body: str) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)


class SqsSenders:
    """Senders to the queues of one deployment, sharing one SQS client (made with the
    first sender): a client per queue would be one more client built at every init."""

    def __init__(self) -> None:
        self._client: Any = None

    def __call__(self, queue_url: str) -> SqsSender:
        if self._client is None:
            self._client = new_client("sqs")
        return SqsSender(queue_url, client=self._client)
