"""S3 → SQS → sync Lambda, end to end on emulators.

A moto server holds the bucket and the queue, with the bucket's notification configuration
set exactly as the CDK stack sets it (``infra.notifications``); DynamoDB Local holds the
table. Files go into the bucket with plain boto3 calls (as ``aws s3 cp`` would), never
through the API. The SQS messages S3 produced are read back and handed to
``stratus.handlers.sync.handler`` in the event shape Lambda's SQS poller delivers, in
order, reversed, shuffled and duplicated; the catalog must end up equal to the bucket.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.notifications import queue_configurations
from stratus.domain.keys import file_key, metadata_key, split_key
from tests.support import sqs_events
from tests.support.apigw import FakeLambdaContext
from tests.support.distributions import sdist_bytes, wheel_bytes

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 3


# --- the emulated deployment -------------------------------------------------------------


@dataclass
class Deployment:
    s3: Any
    sqs: Any
    bucket: str
    table: str
    queue_url: str
    queue_arn: str
    dlq_url: str

    # bucket side (what `aws s3 cp` / `aws s3 rm` do)
    def put(self, built: tuple[str, bytes], project: str | None = None) -> str:
        filename, data = built
        key = file_key(project or split_filename_project(filename), filename)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def bucket_files(self) -> dict[tuple[str, str], str]:
        """(project, filename) → sha256 of every distribution the bucket holds."""
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="packages/"
        ):
            for item in page.get("Contents", ()):
                parts = split_key(item["Key"])
                if parts is None or not is_distribution(*parts):
                    continue
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                out[parts] = hashlib.sha256(body).hexdigest()
        return out

    def object_exists(self, key: str) -> bool:
        return "Contents" in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key)

    # queue side (what Lambda's SQS poller does)
    def receive(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every message now in the queue (made invisible, not deleted)."""
        messages: list[dict[str, Any]] = []
        empty = 0
        while empty < 2:
            got = self.sqs.receive_message(
                QueueUrl=queue_url or self.queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            empty = empty + 1 if not got else 0
            messages += got
        return messages

    def lambda_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda's SQS event source mapping hands to the function."""
        return sqs_events.lambda_event(messages, self.queue_arn)

    def settle(self, messages: list[dict[str, Any]], response: dict[str, Any]) -> None:
        """After an invocation: delete what succeeded, release what failed (visibility 0)."""
        sqs_events.settle(self.sqs, self.queue_url, messages, response)


def is_distribution(project: str, filename: str) -> bool:
    """What the index should list: a valid distribution stored under its own project."""
    from stratus.domain.distributions import parse
    from stratus.domain.errors import InvalidInput

    try:
        return parse(filename).project == project
    except InvalidInput:
        return False


def split_filename_project(filename: str) -> str:
    from stratus.domain.distributions import parse

    return parse(filename).project


def invoke(messages: list[dict[str, Any]], deployment: Deployment) -> dict[str, Any]:
    """Call the sync handler as Lambda does, in batches of at most 10 (the stack's size)."""
    from stratus.handlers import sync as sync_handler

    failures: list[dict[str, str]] = []
    for start in range(0, len(messages), 10):
        batch = messages[start : start + 10]
        context = FakeLambdaContext(
            function_name="stratus-sync",
            memory_limit_in_mb=1024,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stratus-sync",
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=120,
        )
        try:
            response = sync_handler.handler(deployment.lambda_event(batch), context)
        except Exception:
            # A function error (Powertools raises when every record failed): Lambda returns
            # the whole batch to the queue.
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in batch]}
        failures += response.get("batchItemFailures", [])
    return {"batchItemFailures": failures}


def catalog_files(table: str) -> dict[tuple[str, str], str]:
    catalog = make_catalog(table)
    return {
        (record.project, record.filename): record.sha256
        for project in catalog.list_projects()
        for record in catalog.list_files(project.name)
    }


def make_catalog(table: str) -> Any:
    from stratus.adapters.dynamo_catalog import DynamoCatalog

    return DynamoCatalog(table)


@pytest.fixture
def deployment(moto_endpoint, s3_bucket, dynamo_table, monkeypatch) -> Iterator[Deployment]:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    # Not versioned, unlike the real bucket: moto sends no event for a delete marker
    # (moto 5.2: only ObjectRemoved:Delete of unversioned keys). The sync treats every
    # ObjectRemoved:* alike; test_delete_marker_events_remove_the_entry covers that one.
    name = f"stratus-sync-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            )
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=s3_bucket,
        NotificationConfiguration={"QueueConfigurations": queue_configurations(queue_arn)},
    )
    monkeypatch.setenv("STRATUS_TABLE_NAME", dynamo_table)
    monkeypatch.setenv("STRATUS_BUCKET_NAME", s3_bucket)
    monkeypatch.delenv("STRATUS_CONFIG", raising=False)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    from stratus.handlers import sync as sync_handler

    sync_handler.container.reset()  # a fresh "container" per test
    deployment = Deployment(s3, sqs, s3_bucket, dynamo_table, queue_url, queue_arn, dlq_url)
    # S3 confirms a new notification configuration with an s3:TestEvent; consume it.
    for message in deployment.receive():
        assert json.loads(message["Body"]).get("Event") == "s3:TestEvent"
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    try:
        yield deployment
    finally:
        s3.put_bucket_notification_configuration(Bucket=s3_bucket, NotificationConfiguration={})
        versions = s3.get_paginator("list_object_versions").paginate(Bucket=s3_bucket)
        for page in versions:
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=s3_bucket, Delete={"Objects": doomed, "Quiet": True})
        for url in (queue_url, dlq_url):
            sqs.delete_queue(QueueUrl=url)


def sync_all(deployment: Deployment, *, order: str = "fifo", duplicate: bool = False) -> None:
    messages = deployment.receive()
    if order == "reversed":
        messages.reverse()
    elif order == "shuffled":
        random.Random(1234).shuffle(messages)
    delivered = messages + list(reversed(messages)) if duplicate else messages
    response = invoke(delivered, deployment)
    assert response == {"batchItemFailures": []}
    for m in messages:
        deployment.sqs.delete_message(
            QueueUrl=deployment.queue_url, ReceiptHandle=m["ReceiptHandle"]
        )


def assert_catalog_equals_bucket(deployment: Deployment) -> dict[tuple[str, str], str]:
    held = deployment.bucket_files()
    assert catalog_files(deployment.table) == held
    return held


# --- tests -------------------------------------------------------------------------------


def test_files_copied_into_the_bucket_are_indexed_with_their_metadata(deployment):
    wheel = wheel_bytes("Big-Lib", "2.0", requires_python=">=3.9")
    sdist = sdist_bytes("big-lib", "2.0", requires_python=">=3.9")
    deployment.put(wheel)
    deployment.put(sdist)
    messages = deployment.receive()
    assert len(messages) == 2  # one ObjectCreated per distribution
    body = json.loads(messages[0]["Body"])
    assert body["Records"][0]["eventName"].startswith("ObjectCreated:")
    deployment.settle(messages, invoke(messages, deployment))

    assert_catalog_equals_bucket(deployment)
    catalog = make_catalog(deployment.table)
    record = catalog.get_file("big-lib", wheel[0])
    assert record.version == "2.0"
    assert record.size == len(wheel[1])
    assert record.requires_python == ">=3.9"
    assert record.packagetype == "bdist_wheel"
    assert record.sequencer  # ordered by the event
    # PEP 658: the core metadata was extracted and stored next to the file
    meta = deployment.s3.get_object(
        Bucket=deployment.bucket, Key=metadata_key("big-lib", wheel[0])
    )["Body"].read()
    assert hashlib.sha256(meta).hexdigest() == record.metadata_sha256
    assert b"Name: Big-Lib" in meta
    # the metadata files written by the sync did not notify the queue
    assert deployment.receive() == []


def test_deleted_files_leave_the_index(deployment):
    keep, drop = wheel_bytes("keeper", "1.0"), wheel_bytes("keeper", "1.1")
    deployment.put(keep)
    drop_key = deployment.put(drop)
    sync_all(deployment)
    assert len(catalog_files(deployment.table)) == 2
    deployment.delete(drop_key)
    messages = deployment.receive()
    assert [json.loads(m["Body"])["Records"][0]["eventName"] for m in messages] == [
        "ObjectRemoved:Delete"
    ] or all("ObjectRemoved" in m["Body"] for m in messages)
    deployment.settle(messages, invoke(messages, deployment))
    held = assert_catalog_equals_bucket(deployment)
    assert list(held) == [("keeper", keep[0])]


@pytest.mark.parametrize("order", ["fifo", "reversed"])
def test_a_file_put_twice_is_indexed_with_its_last_content(deployment, order):
    first = wheel_bytes("twice", "1.0", module_body="A = 1\n")
    second = wheel_bytes("twice", "1.0", module_body="A = 2\n")
    assert first[0] == second[0] and first[1] != second[1]
    deployment.put(first)
    deployment.put(second)
    sync_all(deployment, order=order)
    held = assert_catalog_equals_bucket(deployment)
    assert held[("twice", first[0])] == hashlib.sha256(second[1]).hexdigest()
    # the stored core metadata belongs to the current content too
    record = make_catalog(deployment.table).get_file("twice", first[0])
    meta = deployment.s3.get_object(Bucket=deployment.bucket, Key=metadata_key("twice", first[0]))[
        "Body"
    ].read()
    assert hashlib.sha256(meta).hexdigest() == record.metadata_sha256


@pytest.mark.parametrize("order", ["fifo", "reversed", "shuffled"])
def test_replayed_and_reordered_events_converge_on_the_bucket(deployment, order):
    a1 = wheel_bytes("churn", "1.0", module_body="V = 'a1'\n")
    a2 = wheel_bytes("churn", "1.0", module_body="V = 'a2'\n")
    b = sdist_bytes("churn", "1.1")
    c = wheel_bytes("other-lib", "0.1")
    d = wheel_bytes("gone-lib", "3.0")
    key_a = deployment.put(a1)
    deployment.put(b)
    key_c = deployment.put(c)
    deployment.delete(key_a)
    deployment.put(a2)  # deleted, then back with other content
    deployment.delete(key_c)
    deployment.put(c)  # deleted, then back
    key_d = deployment.put(d)
    deployment.delete(key_d)  # gone for good: its project must vanish too
    sync_all(deployment, order=order, duplicate=True)
    held = assert_catalog_equals_bucket(deployment)
    assert held[("churn", a2[0])] == hashlib.sha256(a2[1]).hexdigest()
    assert ("gone-lib", d[0]) not in held
    projects = [p.name for p in make_catalog(deployment.table).list_projects()]
    assert projects == ["churn", "other-lib"]


def test_url_encoded_keys_are_decoded(deployment):
    local = wheel_bytes("plus-lib", "1.0+local.7")
    assert "+" in local[0]
    key = deployment.put(local)
    messages = deployment.receive()
    raw_key = json.loads(messages[0]["Body"])["Records"][0]["s3"]["object"]["key"]
    assert "%2B" in raw_key  # S3 sends keys form-encoded: '+' as %2B
    deployment.settle(messages, invoke(messages, deployment))
    assert catalog_files(deployment.table) == {
        ("plus-lib", local[0]): hashlib.sha256(local[1]).hexdigest()
    }
    deployment.delete(key)
    sync_all(deployment)
    assert catalog_files(deployment.table) == {}


def test_keys_that_are_not_distributions_are_logged_and_skipped(deployment, caplog):
    deployment.s3.put_object(Bucket=deployment.bucket, Key="packages/notes/readme.txt", Body=b"x")
    deployment.s3.put_object(
        Bucket=deployment.bucket, Key="elsewhere/x-1.0-py3-none-any.whl", Body=b"x"
    )
    assert deployment.receive() == []  # the notification filters keep those out
    # Keys that pass the filters but are no distribution: skipped, not retried.
    deployment.s3.put_object(Bucket=deployment.bucket, Key="packages/junk/junk.zip", Body=b"no zip")
    deployment.s3.put_object(
        Bucket=deployment.bucket,
        Key="packages/wrong/right-1.0-py3-none-any.whl",
        Body=wheel_bytes("right", "1.0")[1],
    )
    deployment.s3.put_object(Bucket=deployment.bucket, Key="packages/a/b/c-1.0.tar.gz", Body=b"x")
    messages = deployment.receive()
    assert len(messages) == 3
    # and a hand-made notification for a key no filter would pass
    handmade = dict(messages[0])
    body = json.loads(handmade["Body"])
    body["Records"][0]["s3"]["object"]["key"] = "packages/junk/junk.zip.metadata"
    handmade["Body"] = json.dumps(body)
    handmade["MessageId"] = "handmade"
    with caplog.at_level(logging.INFO, logger="stratus.app.sync"):
        response = invoke([*messages, handmade], deployment)
    assert response == {"batchItemFailures": []}
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 4, skipped
    assert any("junk.zip.metadata" in line and "not a distribution key" in line for line in skipped)
    assert any("packages/wrong/" in line and "'right'" in line for line in skipped)
    assert catalog_files(deployment.table) == {}


def test_a_distribution_overwritten_with_junk_leaves_the_index(deployment):
    built = wheel_bytes("spoiled", "1.0")
    key = deployment.put(built)
    sync_all(deployment)
    assert catalog_files(deployment.table)
    deployment.s3.put_object(Bucket=deployment.bucket, Key=key, Body=b"not a zip any more")
    sync_all(deployment)  # skipped (logged), and the stale entry is gone
    assert catalog_files(deployment.table) == {}


def test_delete_marker_events_remove_the_entry(deployment):
    """The real bucket is versioned: a delete there is ObjectRemoved:DeleteMarkerCreated."""
    built = wheel_bytes("marked", "1.0")
    key = deployment.put(built)
    created = deployment.receive()
    deployment.settle(created, invoke(created, deployment))
    deployment.delete(key)
    removed = deployment.receive()
    (message,) = removed
    body = json.loads(message["Body"])
    body["Records"][0]["eventName"] = "ObjectRemoved:DeleteMarkerCreated"
    message["Body"] = json.dumps(body)
    assert invoke([message], deployment) == {"batchItemFailures": []}
    assert catalog_files(deployment.table) == {}


def test_s3_test_events_are_accepted(deployment):
    deployment.sqs.send_message(
        QueueUrl=deployment.queue_url,
        MessageBody=json.dumps(
            {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": deployment.bucket}
        ),
    )
    messages = deployment.receive()
    assert invoke(messages, deployment) == {"batchItemFailures": []}


def test_a_poison_message_fails_alone_and_ends_in_the_dead_letter_queue(deployment):
    good = wheel_bytes("fine-lib", "1.0")
    deployment.put(good)
    deployment.sqs.send_message(QueueUrl=deployment.queue_url, MessageBody="{not json")
    for attempt in range(1, MAX_RECEIVE_COUNT + 1):
        messages = deployment.receive()
        if not messages:
            break
        response = invoke(messages, deployment)
        poison = [m["MessageId"] for m in messages if m["Body"] == "{not json"]
        # partial batch response: only the poison message is reported as failed
        assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == poison
        deployment.settle(messages, response)
        assert attempt == 1 or [m["Body"] for m in messages] == ["{not json"]
    assert deployment.receive() == []  # moved out of the queue after maxReceiveCount
    dead = deployment.receive(deployment.dlq_url)
    assert [m["Body"] for m in dead] == ["{not json"]
    assert catalog_files(deployment.table) == {
        ("fine-lib", good[0]): hashlib.sha256(good[1]).hexdigest()
    }


def test_files_uploaded_through_the_api_cause_no_second_write(deployment):
    from stratus.adapters.s3_storage import S3Storage
    from stratus.app.publish import Publisher

    catalog = make_catalog(deployment.table)
    publisher = Publisher(catalog, S3Storage(deployment.bucket), allow_overwrite=False)
    filename, data = wheel_bytes("api-lib", "1.0")
    publisher.upload(
        name="api-lib", version="1.0", filename=filename, data=data, digests={}, uploader="alice"
    )
    messages = deployment.receive()
    assert len(messages) == 1  # the distribution; its .metadata file does not notify
    from stratus.app import sync

    outcomes = sync.apply_message(catalog, S3Storage(deployment.bucket), messages[0]["Body"])
    assert outcomes == [sync.Outcome.UNCHANGED]
    assert invoke(messages, deployment) == {"batchItemFailures": []}
    record = catalog.get_file("api-lib", filename)
    assert record.sequencer == ""  # still the API's write, untouched by the sync
    assert record.uploader == "alice"


# --- units of the event parsing (no emulator) ---------------------------------------------


def s3_message(key: str, event: str = "ObjectCreated:Put", sequencer: str | None = "0A1B") -> str:
    obj: dict[str, Any] = {"key": key, "size": 1}
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": event,
                    "eventTime": "2026-01-02T03:04:05.678Z",
                    "s3": {"bucket": {"name": "b"}, "object": obj},
                }
            ]
        }
    )


def test_keys_are_form_decoded():
    from stratus.app.sync import changes_from_message

    (change,) = changes_from_message(s3_message("packages/a-b/a_b-1.0%2Blocal-py3-none-any.whl"))
    assert change.key == "packages/a-b/a_b-1.0+local-py3-none-any.whl"
    (change,) = changes_from_message(s3_message("packages/x/with+space.whl"))
    assert change.key == "packages/x/with space.whl"
    assert change.sequencer == "0A1B"


def test_a_missing_sequencer_falls_back_to_the_event_time():
    from stratus.app.sync import changes_from_message

    (early,) = changes_from_message(s3_message("packages/a/a-1.0.tar.gz", sequencer=None))
    later_body = s3_message("packages/a/a-1.0.tar.gz", sequencer=None).replace("05.678", "05.679")
    (later,) = changes_from_message(later_body)
    from stratus.domain.keys import sequencer_key

    assert early.sequencer and sequencer_key(later.sequencer) > sequencer_key(early.sequencer)


def test_sns_wrapped_notifications_are_unwrapped():
    from stratus.app.sync import changes_from_message

    body = json.dumps({"Type": "Notification", "Message": s3_message("packages/a/a-1.0.tar.gz")})
    assert [c.key for c in changes_from_message(body)] == ["packages/a/a-1.0.tar.gz"]


def test_a_body_without_records_is_an_error():
    from stratus.app.sync import changes_from_message

    with pytest.raises(ValueError):
        changes_from_message(json.dumps({"hello": "world"}))


# --- pip, through the API, sees what the bucket holds -----------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "examples" / "stratus.ini"  # alice / alice-secret may read


@pytest.mark.slow
def test_pip_through_the_api_finds_exactly_the_files_the_bucket_holds(
    deployment, monkeypatch, tmp_path
):
    import httpx

    from tests.support.apigw import LocalHttpApi

    kept = wheel_bytes("synced-lib", "1.0")
    newest = wheel_bytes("synced-lib", "2.0", module_body="VERSION = 'two'\n")
    removed = wheel_bytes("synced-lib", "3.0")
    sdist = sdist_bytes("synced-lib", "1.0")
    for built in (kept, newest, removed, sdist):
        deployment.put(built)
    deployment.delete(file_key("synced-lib", removed[0]))
    sync_all(deployment, order="reversed", duplicate=True)
    held = assert_catalog_equals_bucket(deployment)

    monkeypatch.setenv("STRATUS_CONFIG", str(SAMPLE_CONFIG))
    import stratus.handlers.api as api

    monkeypatch.setattr(api, "_asgi_handler", None)
    with LocalHttpApi(api.handler) as gateway:
        base = gateway.url.replace("http://", "http://alice:alice-secret@")
        page = httpx.get(
            f"{gateway.url}/simple/synced-lib/",
            auth=("alice", "alice-secret"),
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        ).json()
        assert {f["filename"] for f in page["files"]} == {name for _, name in held}
        pip = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check"]
        index = ["--index-url", f"{base}/simple/", "--no-cache-dir"]
        target = tmp_path / "site"
        subprocess.run(
            [
                *pip,
                "install",
                *index,
                "--only-binary",
                ":all:",
                "--target",
                str(target),
                "synced-lib",
            ],
            check=True,
            capture_output=True,
        )
        installed = (target / "synced_lib" / "__init__.py").read_text()
        assert installed == "VERSION = 'two'\n"  # 2.0: the newest the bucket holds, not 3.0
        gone = subprocess.run(
            [*pip, "download", *index, "--no-deps", "-d", str(tmp_path / "dl"), "synced-lib==3.0"],
            capture_output=True,
            text=True,
        )
        assert gone.returncode != 0 and "No matching distribution" in gone.stderr
