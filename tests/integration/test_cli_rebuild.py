"""`stratus rebuild`: the index comes back from the stored files alone (backup and recovery).

Both deployments: a local data dir whose SQLite index is lost, and the AWS adapters
(DynamoDB Local + moto S3) whose table is emptied behind the API's back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stratus.app.publish import Publisher
from stratus.ports import Catalog, Storage
from tests.support.distributions import sdist_bytes, wheel_bytes

STRATUS = str(Path(sys.executable).parent / "stratus")


def stratus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STRATUS, *args], capture_output=True, text=True, timeout=120, env=env or os.environ
    )


def publish_sample(catalog: Catalog, storage: Storage) -> dict[tuple[str, str], str]:
    publisher = Publisher(catalog, storage, allow_overwrite=False)
    built = [
        ("alpha", "1.0", wheel_bytes("alpha", "1.0", requires_python=">=3.10")),
        ("alpha", "1.0", sdist_bytes("alpha", "1.0")),
        ("beta-lib", "0.3", wheel_bytes("beta-lib", "0.3")),
    ]
    for name, version, (filename, data) in built:
        publisher.upload(
            name=name, version=version, filename=filename, data=data, digests={}, uploader="al"
        )
    return index_of(catalog)


def index_of(catalog: Catalog) -> dict[tuple[str, str], str]:
    return {
        (r.project, r.filename): f"{r.sha256} {r.requires_python} {r.metadata_sha256}"
        for p in catalog.list_projects()
        for r in catalog.list_files(p.name)
    }


def test_local_index_lost_and_rebuilt(tmp_path: Path) -> None:
    from stratus.wiring import services_local

    data = tmp_path / "data"
    services = services_local(data)
    before = publish_sample(services.catalog, services.storage)
    for leftover in data.glob("index.sqlite3*"):
        leftover.unlink()  # the index is gone; the files are not

    dry = stratus("rebuild", "--data-dir", str(data), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert len(json.loads(dry.stdout)["added"]) == 3
    assert index_of(services_local(data).catalog) == {}  # a dry run writes nothing

    done = stratus("rebuild", "--data-dir", str(data), "--progress-seconds", "0")
    assert done.returncode == 0, done.stderr
    assert "rebuilding the index from storage" in done.stderr
    assert "2 projects, 3 files, 3 added" in done.stderr
    assert "(at alpha)" in done.stderr  # progress while it runs
    assert index_of(services_local(data).catalog) == before

    quiet = stratus("rebuild", "--data-dir", str(data), "-q", "--progress-seconds", "0")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_aws_table_emptied_and_rebuilt(moto_endpoint, s3_bucket, dynamo_table, tmp_path) -> None:
    import boto3

    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.s3_storage import S3Storage

    before = publish_sample(DynamoCatalog(dynamo_table), S3Storage(s3_bucket))
    client = boto3.client("dynamodb")
    for page in client.get_paginator("scan").paginate(TableName=dynamo_table):
        for item in page["Items"]:
            client.delete_item(TableName=dynamo_table, Key={k: item[k] for k in ("pk", "sk")})
    assert index_of(DynamoCatalog(dynamo_table)) == {}

    env = {
        **os.environ,
        "STRATUS_TABLE_NAME": dynamo_table,
        "STRATUS_BUCKET_NAME": s3_bucket,
    }
    env.pop("STRATUS_CONFIG", None)
    done = stratus("rebuild", "--aws", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["complete"] is True
    assert index_of(DynamoCatalog(dynamo_table)) == before


def test_aws_rebuild_backfills_the_access_index(
    moto_endpoint, s3_bucket, dynamo_table, tmp_path
) -> None:
    """With pypi.auth = dynamo, a table of an older release gets its PKGACLS copies."""
    import boto3

    from stratus.adapters.dynamo_access import ACL_INDEX_PK, DynamoAccess

    access = DynamoAccess(dynamo_table)
    access.create_user("dana", "x")
    access.set_permission("alpha", "user", "dana", "r", True)
    access.set_permission("beta", "group", "everyone", "r", True)
    client = boto3.client("dynamodb")
    for sk in ("alpha#U#dana", "beta#G#everyone"):  # as an older Stratus left the table
        client.delete_item(TableName=dynamo_table, Key={"pk": {"S": ACL_INDEX_PK}, "sk": {"S": sk}})
    assert access.package_acls(["alpha", "beta"]) != {
        p: access.package_acl(p) for p in ("alpha", "beta")
    }

    env = {
        **os.environ,
        "STRATUS_TABLE_NAME": dynamo_table,
        "STRATUS_BUCKET_NAME": s3_bucket,
        "STRATUS_AUTH": "dynamo",
    }
    env.pop("STRATUS_CONFIG", None)
    done = stratus("rebuild", "--aws", env=env)
    assert done.returncode == 0, done.stderr
    assert "access index: 2 permission copies written" in done.stderr
    assert access.package_acls(["alpha", "beta"]) == {
        p: access.package_acl(p) for p in ("alpha", "beta")
    }
