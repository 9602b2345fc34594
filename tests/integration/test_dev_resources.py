"""``create_dev_resources`` against DynamoDB Local and a moto server, and its refusals."""

from __future__ import annotations

import uuid

import boto3
import pytest

from stratus.adapters.table_schema import TTL_ATTRIBUTE, create_table_kwargs
from stratus.cli.dev_resources import create_dev_resources

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def no_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything builds a boto3 client (a refusal must come first)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a boto3 client was created before the refusal")

    monkeypatch.setattr(boto3.session.Session, "client", refuse)


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_clients")
def test_refuses_without_any_endpoint() -> None:
    environ = {**CREDENTIALS, "STRATUS_TABLE_NAME": "t", "STRATUS_BUCKET_NAME": "b"}
    with pytest.raises(SystemExit, match="AWS_ENDPOINT_URL"):
        create_dev_resources(environ)


@pytest.mark.usefixtures("no_clients")
def test_refuses_with_an_empty_endpoint() -> None:
    environ = {"AWS_ENDPOINT_URL": " ", "STRATUS_TABLE_NAME": "t"}
    with pytest.raises(SystemExit, match="refusing"):
        create_dev_resources(environ)


@pytest.mark.usefixtures("no_clients")
def test_refuses_a_service_without_its_endpoint() -> None:
    # DynamoDB is emulated, S3 is not: nothing at all is created.
    environ = {
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1",
        "STRATUS_TABLE_NAME": "t",
        "STRATUS_BUCKET_NAME": "b",
    }
    with pytest.raises(SystemExit, match="AWS_ENDPOINT_URL_S3"):
        create_dev_resources(environ)


@pytest.mark.usefixtures("no_clients")
@pytest.mark.parametrize(
    "url",
    [
        "https://dynamodb.us-east-1.amazonaws.com",
        "https://dynamodb-fips.us-gov-west-1.amazonaws.com",
        "https://dynamodb.cn-north-1.amazonaws.com.cn",
        "https://dynamodb.us-east-1.api.aws",
    ],
)
def test_refuses_real_aws_endpoints(url: str) -> None:
    environ = {"AWS_ENDPOINT_URL_DYNAMODB": url, "STRATUS_TABLE_NAME": "t"}
    with pytest.raises(SystemExit, match="real AWS endpoint"):
        create_dev_resources(environ)


@pytest.mark.usefixtures("no_clients")
def test_refuses_a_malformed_endpoint() -> None:
    environ = {"AWS_ENDPOINT_URL": "localhost:8000", "STRATUS_TABLE_NAME": "t"}
    with pytest.raises(SystemExit, match="http"):
        create_dev_resources(environ)


@pytest.mark.usefixtures("no_clients")
def test_refuses_when_there_is_nothing_to_create() -> None:
    with pytest.raises(SystemExit, match="STRATUS_TABLE_NAME"):
        create_dev_resources({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})


# --- DynamoDB Local -------------------------------------------------------------------------


def test_creates_the_table_idempotently(dynamodb_endpoint: str) -> None:
    table = unique("dev-table")
    environ = {**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint}
    environ["STRATUS_TABLE_NAME"] = table

    first = create_dev_resources(environ)
    assert first[0].startswith(f"created DynamoDB table '{table}'")
    assert "STRATUS_BUCKET_NAME is not set" in first[1]
    second = create_dev_resources(environ)
    assert second[0] == f"DynamoDB table '{table}' already exists at {dynamodb_endpoint}"

    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    try:
        described = client.describe_table(TableName=table)["Table"]
        wanted = create_table_kwargs(table)
        assert described["KeySchema"] == wanted["KeySchema"]
        assert described["AttributeDefinitions"] == wanted["AttributeDefinitions"]
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == TTL_ATTRIBUTE
    finally:
        client.delete_table(TableName=table)


def test_the_catalog_works_on_the_created_table(dynamodb_endpoint: str) -> None:
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.domain.models import FileRecord

    table = unique("dev-table")
    create_dev_resources(
        {**CREDENTIALS, "AWS_ENDPOINT_URL": dynamodb_endpoint, "STRATUS_TABLE_NAME": table}
    )
    try:
        catalog = DynamoCatalog(table)
        catalog.health()
        record = FileRecord("demo", "demo-1.0.tar.gz", "1.0", "a" * 64, 10, 1.0)
        catalog.add_file(record)
        assert catalog.list_files("demo") == [record]
    finally:
        boto3.client("dynamodb", endpoint_url=dynamodb_endpoint).delete_table(TableName=table)


def test_refuses_an_existing_table_with_another_key_schema(dynamodb_endpoint: str) -> None:
    table = unique("dev-table")
    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        environ = {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
            "STRATUS_TABLE_NAME": table,
        }
        with pytest.raises(SystemExit, match="key schema"):
            create_dev_resources(environ)
    finally:
        client.delete_table(TableName=table)


# --- DynamoDB Local + moto server -----------------------------------------------------------


def test_creates_table_and_bucket_idempotently(dynamodb_endpoint: str, moto_endpoint: str) -> None:
    table, bucket = unique("dev-table"), unique("dev-bucket")
    environ = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "STRATUS_TABLE_NAME": table,
        "STRATUS_BUCKET_NAME": bucket,
    }
    first = create_dev_resources(environ)
    assert first[0].startswith(f"created DynamoDB table '{table}'")
    assert first[1].startswith(f"created S3 bucket '{bucket}'")
    second = create_dev_resources(environ)
    assert second == [
        f"DynamoDB table '{table}' already exists at {dynamodb_endpoint}",
        f"S3 bucket '{bucket}' already exists at {moto_endpoint}",
    ]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.head_bucket(Bucket=bucket)
    boto3.client("dynamodb", endpoint_url=dynamodb_endpoint).delete_table(TableName=table)


def test_creates_the_bucket_in_another_region(moto_endpoint: str) -> None:
    bucket = unique("dev-bucket")
    environ = {
        **CREDENTIALS,
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "STRATUS_BUCKET_NAME": bucket,
    }
    lines = create_dev_resources(environ)
    assert lines == [
        "no DynamoDB table: STRATUS_TABLE_NAME is not set",
        f"created S3 bucket '{bucket}' at {moto_endpoint} (from AWS_ENDPOINT_URL_S3)",
    ]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
