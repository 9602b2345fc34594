"""The DynamoDB access backend on DynamoDB Local, holding the sample.

Each backend gets a table of its own (a test may need two), and Scan is made to fail for
the test's duration: no access pattern may use one.
"""

from __future__ import annotations

import uuid

from stratus.adapters.dynamo_access import DynamoAccess

from .mutable_sample import populate


def forbid_scan(request) -> None:
    from pynamodb.connection.base import Connection

    def scan(self, *args, **kwargs):
        raise AssertionError("DynamoAccess must never Scan")

    request.getfixturevalue("monkeypatch").setattr(Connection, "scan", scan)


def new_table(request) -> str:
    import boto3

    from stratus.adapters.table_schema import create_table_kwargs

    endpoint = request.getfixturevalue("dynamodb_endpoint")
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    name = f"stratus-access-{uuid.uuid4().hex[:12]}"
    client.create_table(**create_table_kwargs(name))
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    request.addfinalizer(lambda: client.delete_table(TableName=name))
    return name


def build_empty(request, tmp_path):
    forbid_scan(request)
    return DynamoAccess(new_table(request))


def build(request, tmp_path):
    return populate(build_empty(request, tmp_path))
