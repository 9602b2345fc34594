"""The reconcile function on emulators: it repairs a catalog changed behind its back.

moto server holds the bucket, DynamoDB Local the table; the handler
``stratus.handlers.reconcile.handler`` is invoked as Lambda would (scheduled event or a
hand-made payload) and its report is checked against what was broken.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from stratus.adapters.dynamo_catalog import project_pk
from stratus.domain.indexes import DEFAULT_INDEX
from stratus.domain.keys import file_key, metadata_key
from stratus.domain.models import FileRecord
from tests.integration.test_sync import catalog_files, is_distribution, make_catalog
from tests.support.apigw import FakeLambdaContext
from tests.support.distributions import sdist_bytes, wheel_bytes


@dataclass
class Setup:
    s3: Any
    bucket: str
    table: str
    dynamodb: Any = None

    def put(self, built: tuple[str, bytes], project: str) -> str:
        key = file_key(project, built[0])
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=built[1])
        return key

    def bucket_files(self) -> dict[tuple[str, str], str]:
        from stratus.domain.keys import split_key

        out = {}
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="packages/")
        for item in listing.get("Contents", ()):
            parts = split_key(item["Key"])
            if parts is not None and is_distribution(*parts):
                body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                out[parts] = hashlib.sha256(body).hexdigest()
        return out

    def exists(self, key: str) -> bool:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key)
        return any(item["Key"] == key for item in listing.get("Contents", ()))


@pytest.fixture
def setup(moto_endpoint, s3_bucket, dynamo_table, monkeypatch) -> Iterator[Setup]:
    import boto3

    monkeypatch.setenv("STRATUS_TABLE_NAME", dynamo_table)
    monkeypatch.setenv("STRATUS_BUCKET_NAME", s3_bucket)
    monkeypatch.delenv("STRATUS_CONFIG", raising=False)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    from stratus.handlers import reconcile as reconcile_handler

    reconcile_handler.container.reset()
    yield Setup(
        boto3.client("s3", region_name="us-east-1"),
        s3_bucket,
        dynamo_table,
        boto3.client("dynamodb", region_name="us-east-1"),
    )


def run(event: dict[str, Any] | None = None) -> dict[str, Any]:
    from stratus.handlers import reconcile as reconcile_handler

    context = FakeLambdaContext(
        function_name="stratus-reconcile",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stratus-reconcile",
        aws_request_id=str(uuid.uuid4()),
        timeout_seconds=900,
    )
    # a scheduled invocation carries an EventBridge event; none of its keys are flags
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    return reconcile_handler.handler(scheduled if event is None else event, context)


def test_reconcile_indexes_a_bucket_filled_behind_the_index(setup):
    wheel = wheel_bytes("alpha", "1.0", requires_python=">=3.10")
    sdist = sdist_bytes("alpha", "1.0")
    other = wheel_bytes("beta-lib", "0.3")
    for built, project in ((wheel, "alpha"), (sdist, "alpha"), (other, "beta-lib")):
        setup.put(built, project)
    setup.s3.put_object(Bucket=setup.bucket, Key="packages/README.txt", Body=b"hello")
    setup.s3.put_object(Bucket=setup.bucket, Key="packages/alpha/broken.whl", Body=b"no")

    report = run()

    assert sorted(report["added"]) == sorted(
        [
            file_key("alpha", wheel[0]),
            file_key("alpha", sdist[0]),
            file_key("beta-lib", other[0]),
        ]
    )
    assert report["removed"] == report["updated"] == []
    assert set(report["skipped"]) == {"packages/README.txt", "packages/alpha/broken.whl"}
    assert report["objects"] == 4 and report["entries"] == 0
    assert catalog_files(setup.table) == setup.bucket_files()
    # core metadata stored for each (the sdist is Metadata-Version 2.2, so it has one too)
    assert sorted(report["metadata_written"]) == sorted(
        metadata_key(*key.split("/")[1:]) for key in report["added"]
    )
    record = make_catalog(setup.table).get_file("alpha", wheel[0])
    meta = setup.s3.get_object(Bucket=setup.bucket, Key=metadata_key("alpha", wheel[0]))
    assert hashlib.sha256(meta["Body"].read()).hexdigest() == record.metadata_sha256
    assert record.requires_python == ">=3.10"

    again = run()
    assert again["repairs"] == 0  # idempotent


def test_reconcile_repairs_a_catalog_changed_behind_its_back(setup):
    from stratus.adapters.s3_storage import S3Storage
    from stratus.app.publish import Publisher

    catalog = make_catalog(setup.table)
    # One file through the API (object metadata + catalog entry), the rest copied in.
    api_file = wheel_bytes("gamma", "1.0")
    Publisher(catalog, S3Storage(setup.bucket), allow_overwrite=False).upload(
        name="gamma",
        version="1.0",
        filename=api_file[0],
        data=api_file[1],
        digests={},
        uploader="alice",
    )
    lost = wheel_bytes("gamma", "1.1")
    replaced = wheel_bytes("gamma", "1.2", module_body="X = 1\n")
    meta_gone = wheel_bytes("delta", "2.0")
    tampered = wheel_bytes("delta", "2.1")
    for built, project in ((lost, "gamma"), (replaced, "gamma"), (meta_gone, "delta"),
                           (tampered, "delta")):  # fmt: skip
        setup.put(built, project)
    assert run()["added"]  # the starting point: everything indexed
    assert catalog_files(setup.table) == setup.bucket_files()

    # Now change things behind the index's back:
    # An entry lost, as after a restore from an older backup: no tombstone either (a
    # tombstone would say the file was deleted, and reconcile would finish that delete).
    catalog.delete_file("gamma", lost[0])
    setup.dynamodb.delete_item(
        TableName=setup.table,
        Key={"pk": {"S": project_pk(DEFAULT_INDEX, "gamma")}, "sk": {"S": f"T#{lost[0]}"}},
    )
    ghost = FileRecord(
        project="ghost", filename="ghost-9.9-py3-none-any.whl", version="9.9",
        sha256="0" * 64, size=10, upload_time=1.0,
    )  # fmt: skip
    catalog.add_file(ghost)  # an entry without its file
    catalog.set_yanked("gamma", replaced[0], "broken build")
    new_content = wheel_bytes("gamma", "1.2", module_body="X = 2  # rebuilt, longer\n")
    setup.put(new_content, "gamma")  # a file replaced in the bucket, no event
    setup.s3.delete_object(Bucket=setup.bucket, Key=metadata_key("delta", meta_gone[0]))
    spoiled = wheel_bytes("delta", "2.2")
    setup.put(spoiled, "delta")
    catalog.add_file(
        FileRecord(
            project="delta", filename=spoiled[0], version="2.2",
            sha256=hashlib.sha256(spoiled[1]).hexdigest(), size=len(spoiled[1]), upload_time=1.0,
        )
    )  # fmt: skip
    setup.s3.put_object(  # then replaced by junk in the bucket
        Bucket=setup.bucket, Key=file_key("delta", spoiled[0]), Body=b"junk"
    )
    current = catalog.get_file("delta", tampered[0])
    catalog.add_file(current.with_changes(sha256="f" * 64), overwrite=True)  # same size

    before = catalog_files(setup.table)
    preview = run({"dry_run": True})
    assert preview["dry_run"] is True
    assert catalog_files(setup.table) == before  # a dry run changes nothing
    assert not setup.exists(metadata_key("delta", meta_gone[0]))

    report = run()
    run_ids = {report.pop("run_id"), preview.pop("run_id")}
    assert len(run_ids) == 2  # each invocation without a run_id starts a run
    assert report == {**preview, "dry_run": False}  # the dry run told the truth
    assert report["complete"] is True and report["page"] == 1
    assert report["added"] == [file_key("gamma", lost[0])]
    assert report["removed"] == [  # project by project, in the bucket's order
        file_key("delta", spoiled[0]),
        file_key("ghost", ghost.filename),
    ]
    assert file_key("delta", spoiled[0]) in report["skipped"]
    assert catalog.get_file("delta", spoiled[0]) is None
    setup.s3.delete_object(Bucket=setup.bucket, Key=file_key("delta", spoiled[0]))  # tidy up
    assert report["updated"] == [file_key("gamma", replaced[0])]
    assert report["metadata_written"] == [
        metadata_key("delta", meta_gone[0]),
        metadata_key("gamma", replaced[0]),
    ]
    assert setup.exists(metadata_key("delta", meta_gone[0]))
    # the yank survives the re-index; the API upload is untouched
    assert catalog.get_file("gamma", replaced[0]).yanked == "broken build"
    assert catalog.get_file("gamma", api_file[0]).uploader == "alice"
    assert [p.name for p in catalog.list_projects()] == ["delta", "gamma"]

    # Only the same-size tampered hash is left: size and time cannot show it, deep can.
    held = setup.bucket_files()
    differs = {k for k in held if catalog_files(setup.table).get(k) != held[k]}
    assert differs == {("delta", tampered[0])}
    deep = run({"deep": "true"})
    assert deep["updated"] == [file_key("delta", tampered[0])]
    assert catalog_files(setup.table) == held
    assert run({"deep": True})["repairs"] == 0


class BudgetContext(FakeLambdaContext):
    """A context whose remaining time drops below the margin after ``projects`` asks."""

    def __init__(self, projects: int) -> None:
        super().__init__(
            function_name="stratus-reconcile",
            memory_limit_in_mb=1024,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:r",
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=900,
        )
        self.asks = 0
        self.projects = projects

    def get_remaining_time_in_millis(self) -> int:
        self.asks += 1
        return 900_000 if self.asks < self.projects else 1_000


def test_a_run_that_outgrows_one_invocation_continues_where_it_stopped(setup, monkeypatch):
    """The 15-minute cliff, simulated: each invocation has time for 3 projects only."""
    import json

    import boto3

    from stratus.handlers import reconcile as reconcile_handler

    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"reconcile-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("STRATUS_RECONCILE_QUEUE_URL", queue)
    catalog = make_catalog(setup.table)
    # 10 projects, ordered as the bucket lists them ("a-b/" < "a/" < "a0/"), some only in
    # the bucket, one only in the catalog.
    names = ["a-b", "a", "a0", "b", "c", "d", "e", "f", "g"]
    for name in names:
        setup.put(wheel_bytes(name, "1.0"), name)
    ghost = FileRecord(
        project="bb", filename="bb-1.0-py3-none-any.whl", version="1.0",
        sha256="0" * 64, size=3, upload_time=1.0,
    )  # fmt: skip
    catalog.add_file(ghost)

    pages = [reconcile_handler.handler({}, BudgetContext(projects=3))]
    while not pages[-1]["complete"]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
        (message,) = messages
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        body = json.loads(message["Body"])
        assert body["after"] == pages[-1]["next_after"]
        event = {"Records": [{"body": message["Body"], "eventSource": "aws:sqs"}]}
        pages.append(reconcile_handler.handler(event, BudgetContext(projects=3)))
        assert len(pages) < 10, "the chain does not end"

    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    assert len({p["run_id"] for p in pages}) == 1
    assert [p["projects"] for p in pages] == [3, 3, 3, 1]
    assert sum(p["projects"] for p in pages) == len(names) + 1  # each project exactly once
    added = [key for p in pages for key in p["added"]]
    assert sorted(added) == sorted(file_key(n, wheel_bytes(n, "1.0")[0]) for n in names)
    assert [key for p in pages for key in p["removed"]] == [file_key("bb", ghost.filename)]
    assert catalog_files(setup.table) == setup.bucket_files()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)


def test_repairs_are_published_as_a_metric(setup, capsys):
    """Drift found is the ReconcileRepairs metric (EMF on stdout), which an alarm watches."""
    import json

    setup.put(wheel_bytes("drifted", "1.0"), "drifted")
    capsys.readouterr()
    assert run()["repairs"] == 2  # the file and its core metadata
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    (metric,) = [m for m in emf if "ReconcileRepairs" in m]
    assert metric["ReconcileRepairs"] == [2.0] or metric["ReconcileRepairs"] == 2.0
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Stratus"
