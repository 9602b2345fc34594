"""``stratus create-dev-resources``: the DynamoDB table and S3 bucket, on emulators only.

In AWS the CDK stacks own every table and bucket; this exists for DynamoDB Local, moto,
LocalStack and the like. It refuses to run unless each service it would touch has an
emulator endpoint in ``AWS_ENDPOINT_URL_<SERVICE>`` or ``AWS_ENDPOINT_URL``, and it passes
that endpoint to its clients explicitly, so no profile or config file can send it to a
real account.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TABLE_VAR = "STRATUS_TABLE_NAME"
BUCKET_VAR = "STRATUS_BUCKET_NAME"
GENERIC_ENDPOINT_VAR = "AWS_ENDPOINT_URL"
DEFAULT_REGION = "us-east-1"
# Hosts of real AWS endpoints: refused even when named in an endpoint variable.
_AWS_HOST_SUFFIXES = (
    ".amazonaws.com",
    ".amazonaws.com.cn",
    ".api.aws",
    ".c2s.ic.gov",
    ".sc2s.sgov.gov",
)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    variable: str


def _endpoint_for(environ: Mapping[str, str], service_env_id: str) -> _Endpoint | None:
    """The endpoint botocore would use for a service from the environment, if any."""
    for variable in (f"{GENERIC_ENDPOINT_VAR}_{service_env_id}", GENERIC_ENDPOINT_VAR):
        url = environ.get(variable, "").strip()
        if url:
            return _Endpoint(url, variable)
    return None


def _any_endpoint_set(environ: Mapping[str, str]) -> bool:
    return any(
        (name == GENERIC_ENDPOINT_VAR or name.startswith(GENERIC_ENDPOINT_VAR + "_"))
        and value.strip()
        for name, value in environ.items()
    )


def _checked(environ: Mapping[str, str], service_env_id: str, what: str) -> _Endpoint:
    endpoint = _endpoint_for(environ, service_env_id)
    if endpoint is None:
        raise SystemExit(
            f"create-dev-resources: refusing to create the {what} without an emulator "
            f"endpoint: set {GENERIC_ENDPOINT_VAR}_{service_env_id} (or {GENERIC_ENDPOINT_VAR})."
        )
    parts = urlsplit(endpoint.url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise SystemExit(
            f"create-dev-resources: {endpoint.variable}={endpoint.url!r} is not an http(s) URL."
        )
    if host.endswith(_AWS_HOST_SUFFIXES) or host in {s.lstrip(".") for s in _AWS_HOST_SUFFIXES}:
        raise SystemExit(
            f"create-dev-resources: {endpoint.variable}={endpoint.url} is a real AWS endpoint; "
            "this command only talks to emulators (in AWS the CDK stacks own the resources)."
        )
    return endpoint


def _session(environ: Mapping[str, str]) -> Any:
    import boto3

    # Emulators accept any credentials; do not fall back to a real profile's.
    return boto3.session.Session(
        aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or "dev",
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or "dev",
        aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
        region_name=environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION,
    )


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _create_table(session: Any, endpoint: _Endpoint, table: str) -> str:
    from botocore.exceptions import ClientError

    from ..adapters.table_schema import TTL_ATTRIBUTE, create_table_kwargs

    client = session.client("dynamodb", endpoint_url=endpoint.url)
    wanted = create_table_kwargs(table)
    try:
        client.create_table(**wanted)
        created = True
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
        created = False
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    if not created:
        existing = client.describe_table(TableName=table)["Table"]["KeySchema"]
        if sorted(existing, key=str) != sorted(wanted["KeySchema"], key=str):
            raise SystemExit(
                f"create-dev-resources: DynamoDB table {table!r} exists at {endpoint.url} "
                f"with key schema {existing}, not {wanted['KeySchema']}; delete it first."
            )
        return f"DynamoDB table {table!r} already exists at {endpoint.url}"
    return f"created DynamoDB table {table!r} at {endpoint.url} (from {endpoint.variable})"


def _create_bucket(session: Any, endpoint: _Endpoint, bucket: str) -> str:
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = session.client(
        "s3", endpoint_url=endpoint.url, config=Config(s3={"addressing_style": "path"})
    )
    try:
        client.head_bucket(Bucket=bucket)
        return f"S3 bucket {bucket!r} already exists at {endpoint.url}"
    except ClientError as exc:
        if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if session.region_name != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": session.region_name}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if _error_code(exc) != "BucketAlreadyOwnedByYou":
            raise
        return f"S3 bucket {bucket!r} already exists at {endpoint.url}"
    return f"created S3 bucket {bucket!r} at {endpoint.url} (from {endpoint.variable})"


def create_dev_resources(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Create the table ``STRATUS_TABLE_NAME`` and the bucket ``STRATUS_BUCKET_NAME``.

    Idempotent: existing resources are reported, not changed. Raises ``SystemExit`` with
    the reason when no emulator endpoint is configured for a service it would use.
    """
    if not _any_endpoint_set(environ):
        raise SystemExit(
            "create-dev-resources: refusing to run without an emulator endpoint. Set "
            f"{GENERIC_ENDPOINT_VAR} or {GENERIC_ENDPOINT_VAR}_DYNAMODB / "
            f"{GENERIC_ENDPOINT_VAR}_S3 (e.g. DynamoDB Local, moto, LocalStack); in AWS the "
            "CDK stacks create the table and the bucket."
        )
    table = environ.get(TABLE_VAR, "").strip()
    bucket = environ.get(BUCKET_VAR, "").strip()
    if not table and not bucket:
        raise SystemExit(
            f"create-dev-resources: nothing to create: set {TABLE_VAR} and/or {BUCKET_VAR}."
        )
    # Check every endpoint before creating anything.
    dynamodb = _checked(environ, "DYNAMODB", f"DynamoDB table {table!r}") if table else None
    s3 = _checked(environ, "S3", f"S3 bucket {bucket!r}") if bucket else None

    session = _session(environ)
    lines: list[str] = []
    if dynamodb is not None:
        lines.append(_create_table(session, dynamodb, table))
    else:
        lines.append(f"no DynamoDB table: {TABLE_VAR} is not set")
    if s3 is not None:
        lines.append(_create_bucket(session, s3, bucket))
    else:
        lines.append(f"no S3 bucket: {BUCKET_VAR} is not set")
    return lines
