"""The AWS fill path on emulators: the API's wiring queues a fill (SQS on a moto server,
lock in DynamoDB Local), the fill handler takes the message as Lambda's SQS poller hands
it over, streams the upstream file to S3 (multipart) and indexes it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from stratus.domain.keys import file_key, metadata_key
from stratus.domain.upstream import FillJob
from tests.support.apigw import FakeLambdaContext
from tests.support.upstream_server import UpstreamServer

REGION = "us-east-1"


@pytest.fixture
def upstream(tmp_path):
    with UpstreamServer.running(tmp_path / "upstream") as server:
        yield server


@pytest.fixture
def aws(moto_endpoint, s3_bucket, dynamo_table, upstream, monkeypatch) -> dict[str, Any]:
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName=f"stratus-fill-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    env = {
        "STRATUS_TABLE_NAME": dynamo_table,
        "STRATUS_BUCKET_NAME": s3_bucket,
        "STRATUS_FALLBACK": "cache",
        "STRATUS_FALLBACK_BASE_URL": upstream.url,
        "STRATUS_FILL_QUEUE_URL": queue_url,
        "STRATUS_ORIGIN_LOCK": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STRATUS_CONFIG", raising=False)
    from stratus.handlers import fill as fill_handler

    fill_handler.container.reset()  # a fresh "container" per test
    return {"sqs": sqs, "queue_url": queue_url, "bucket": s3_bucket, "table": dynamo_table}


def api_side() -> Any:
    """What the API function builds at init (services and fallback from the environment)."""
    from stratus.wiring import services_from_env

    return services_from_env().fallback


def deliver(aws: dict[str, Any]) -> list[dict[str, Any]]:
    """Receive the queued messages and hand them to the fill handler, one per invocation."""
    from stratus.handlers import fill as fill_handler

    received = (
        aws["sqs"]
        .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        .get("Messages", [])
    )
    responses = []
    for m in received:
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fill",
                    "awsRegion": REGION,
                }
            ]
        }
        context = FakeLambdaContext(
            function_name="stratus-fill",
            memory_limit_in_mb=512,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stratus-fill",
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=900,
        )
        try:
            response = fill_handler.handler(event, context)
        except Exception:
            # Powertools raises when every record failed: Lambda returns the batch.
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]}]}
        responses.append(response)
        aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    return responses


def job(fb: Any, project: str, filename: str) -> FillJob:
    file = fb.pages.get(project).file(filename)
    return FillJob.for_file(project, file, "alice")


def test_concurrent_requests_queue_one_fill_and_the_function_stores_it(
    aws, upstream, capsys
) -> None:
    hosted = upstream.add_huge_wheel("bigwheel", "1.0", 20 * 1024 * 1024)  # S3 multipart
    fb = api_side()
    assert fb.filler.queued
    wanted = job(fb, "bigwheel", hosted.filename)
    assert fb.filler.dispatch(wanted)  # the first request queues the fill
    assert not fb.filler.dispatch(wanted)  # the next ones: a fill is under way
    assert not api_side().filler.dispatch(wanted)  # also from another container

    capsys.readouterr()
    responses = deliver(aws)
    assert responses == [{"batchItemFailures": []}]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [m.get("CacheFills") for m in emf] == [[1.0]]  # one EMF line, one fill
    record = fb.fallback.catalog.get_file("bigwheel", hosted.filename)
    assert record is not None and record.sha256 == hosted.sha256
    storage = fb.filler.publisher.storage
    info = storage.head(file_key("bigwheel", hosted.filename))
    assert info is not None and info.size == hosted.size
    assert info.metadata["stratus-uploader"].startswith("upstream%3A")
    assert storage.read(metadata_key("bigwheel", hosted.filename)).startswith(b"Metadata")
    assert fb.origins.controls("bigwheel").set_by == "first-cache-fill"  # origin_lock
    # The lock is gone with the fill; the file is stored, so nothing is queued again.
    assert fb.filler.check(wanted) == record
    assert upstream.count(f"/files/{hosted.filename}") == 1


def test_a_failed_fill_is_retried_by_the_queue(aws, upstream) -> None:
    hosted = upstream.add_wheel("flaky", "1.0")
    fb = api_side()
    wanted = job(fb, "flaky", hosted.filename)
    upstream.down = True
    assert fb.filler.dispatch(wanted)
    (response,) = deliver(aws)
    assert len(response["batchItemFailures"]) == 1  # the message goes back to the queue
    assert fb.fallback.catalog.get_file("flaky", hosted.filename) is None
    upstream.down = False
    assert fb.filler.dispatch(wanted)  # the failed fill released its lock
    deliver(aws)
    assert fb.fallback.catalog.get_file("flaky", hosted.filename) is not None


def test_a_blocked_name_is_dropped_not_retried(aws, upstream) -> None:
    hosted = upstream.add_wheel("internal-lib", "1.0")
    fb = api_side()
    wanted = job(fb, "internal-lib", hosted.filename)
    from stratus.domain.origins import BLOCK, OriginControls

    fb.origins.set_controls("internal-lib", OriginControls(upstream=BLOCK))
    aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody=wanted.to_json())
    assert deliver(aws) == [{"batchItemFailures": []}]
    assert fb.fallback.catalog.get_file("internal-lib", hosted.filename) is None


def test_fill_job_messages_round_trip() -> None:
    original = FillJob("demo", "demo-1.0.tar.gz", "https://x/demo-1.0.tar.gz", "a" * 64, 10, "")
    assert FillJob.from_json(original.to_json()) == original
    assert json.loads(original.to_json())["sha256"] == "a" * 64


def test_downloads_through_the_api(aws, upstream, monkeypatch) -> None:
    """Small files fill inline (then the presigned S3 URL); large ones go to the queue while
    the client is sent to the upstream file."""
    from starlette.testclient import TestClient

    from stratus.web.app import create_app
    from stratus.wiring import services_from_env

    small = upstream.add_wheel("smallpkg", "1.0")
    large = upstream.add_huge_wheel("largepkg", "1.0", 9 * 1024 * 1024)
    monkeypatch.setenv("STRATUS_DEFAULT_READ", "everyone")  # no users: anonymous reads
    monkeypatch.setenv("STRATUS_CACHE_UPDATE", "everyone")  # ... and fills the cache
    client = TestClient(create_app(services_from_env()), follow_redirects=False)

    got = client.get(f"/files/smallpkg/{small.filename}")
    assert got.status_code == 302 and aws["bucket"] in got.headers["Location"]
    assert client.app.state.ctx.services.catalog.get_file("smallpkg", small.filename)

    got = client.get(f"/files/largepkg/{large.filename}")
    assert got.status_code == 302
    assert got.headers["Location"] == f"{upstream.url}/files/{large.filename}"
    assert client.get(f"/files/largepkg/{large.filename}").status_code == 302  # lock held
    assert len(deliver(aws)) == 1  # one fill queued for both requests
    got = client.get(f"/files/largepkg/{large.filename}")
    assert got.status_code == 302 and aws["bucket"] in got.headers["Location"]


def test_the_api_sends_to_all_its_queues_through_one_sqs_client(aws, monkeypatch) -> None:
    """Fills, upload completions and reconcile continuations: three queues, one SQS client
    built at init (a client per queue would be two more built at every cold start)."""
    from stratus.wiring import services_from_env

    sqs = aws["sqs"]
    for name in ("STRATUS_RECONCILE_QUEUE_URL", "STRATUS_UPLOAD_COMPLETION_QUEUE_URL"):
        url = sqs.create_queue(QueueName=f"stratus-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        monkeypatch.setenv(name, url)
    services = services_from_env()
    assert services.rebuild is not None and services.upload_completions is not None
    assert services.fallback is not None and services.fallback.filler is not None
    fills = services.fallback.filler.queue
    senders = [services.rebuild.send, services.upload_completions.send, fills]
    assert len({id(sender.client) for sender in senders}) == 1
    assert len({sender.queue_url for sender in senders}) == 3
