"""What Lambda's SQS event source mapping does, for tests on the moto server: receive
messages, hand them to a handler as an SQS event, delete what succeeded and release what
failed. ``QueuePoller`` does it in a background thread while a test runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

REGION = "us-east-1"


def lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands to the function (``messages`` as
    ``receive_message(AttributeNames=["All"])`` returns them)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                    "SentTimestamp": m["Attributes"]["SentTimestamp"],
                    "SenderId": m["Attributes"]["SenderId"],
                    "ApproximateFirstReceiveTimestamp": m["Attributes"][
                        "ApproximateFirstReceiveTimestamp"
                    ],
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def settle(sqs: Any, queue_url: str, messages: list[dict[str, Any]], response: Any) -> None:
    """After an invocation: delete what succeeded, release what failed (visibility 0)."""
    failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
    for m in messages:
        if m["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


class QueuePoller:
    """A new queue on the moto server whose messages a thread feeds to ``handler``
    (one message per invocation, as with ``batch_size=1``)."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any], context: Any) -> None:
        import boto3

        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.create_queue(
            QueueName=f"completions-{uuid.uuid4().hex[:8]}",
            Attributes={"VisibilityTimeout": "60"},
        )["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.handler, self.context = handler, context
        self.invocations: list[dict[str, Any]] = []  # the events handled
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)

    def __enter__(self) -> QueuePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                self._stop.wait(0.05)
                continue
            event = lambda_event(messages, self.queue_arn)
            self.invocations.append(event)
            try:
                response = self.handler(event, self.context)
            except BaseException as exc:  # the invocation failed: the message comes back
                self.errors.append(exc)
                response = {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
            settle(self.sqs, self.queue_url, messages, response)
