"""Sending JSON messages to an SQS queue (the reconcile function's continuation queue)."""

from __future__ import annotations

import json
from typing import Any

from .aws_client import new_client


class SqsSender:
    def __init__(self, queue_url: str, *, client: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client or new_client("sqs")

    def __call__(self, message: dict[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))
