"""FillQueue on SQS: one message per cache fill, read by the fill function.

The client is made on first use; the endpoint comes from botocore's environment
(``AWS_ENDPOINT_URL_SQS`` on emulators), never from here.
"""

from __future__ import annotations

import threading
from typing import Any

from ..domain.upstream import FillJob


class SqsFillQueue:
    def __init__(self, queue_url: str, *, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.session.Session().client("sqs")
        return self._client

    def enqueue(self, job: FillJob) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=job.to_json())
