"""Downloads through the Lambda handler (behind the local API Gateway) redirect to signed
CloudFront URLs, with the private key read from Secrets Manager (moto server) once."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from stratus.adapters.dynamo_catalog import DynamoCatalog
from stratus.adapters.s3_storage import S3Storage
from stratus.app.publish import Publisher
from tests.support.apigw import LocalHttpApi
from tests.support.cloudfront import KeyPair, make_key_pair, verify_signed_url
from tests.support.distributions import wheel_bytes

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "examples" / "stratus.ini"  # alice / alice-secret may read
DOMAIN = "d111abcdef8.cloudfront.net"
KEY_ID = "K2JCJMDEHXQW5F"


@pytest.fixture
def cloudfront_api(
    moto_endpoint: str, s3_bucket: str, dynamo_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LocalHttpApi, KeyPair, str]]:
    keys = make_key_pair()
    secret = f"stratus/cloudfront/test-{uuid.uuid4().hex[:8]}"
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=secret, SecretString=keys.private_pem.decode())
    for name, value in {
        "STRATUS_TABLE_NAME": dynamo_table,
        "STRATUS_BUCKET_NAME": s3_bucket,
        "STRATUS_CONFIG": str(SAMPLE_CONFIG),
        "STRATUS_STORAGE_CLOUD_FRONT_DOMAIN": f"https://{DOMAIN}",
        "STRATUS_STORAGE_CLOUD_FRONT_KEY_ID": KEY_ID,
        "STRATUS_STORAGE_CLOUD_FRONT_KEY_SECRET": secret,
    }.items():
        monkeypatch.setenv(name, value)
    import stratus.handlers.api as api

    monkeypatch.setattr(api, "_asgi_handler", None)  # a new container
    try:
        with LocalHttpApi(api.handler) as gateway:
            yield gateway, keys, secret
    finally:
        with contextlib.suppress(secrets.exceptions.ResourceNotFoundException):  # gone already
            secrets.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)


def test_downloads_redirect_to_signed_cloudfront_urls(cloudfront_api, s3_bucket, dynamo_table):
    gateway, keys, secret = cloudfront_api
    filename, data = wheel_bytes("cdn-lib", "1.0")
    Publisher(DynamoCatalog(dynamo_table), S3Storage(s3_bucket), allow_overwrite=False).upload(
        name="cdn-lib", version="1.0", filename=filename, data=data, digests={}, uploader="alice"
    )
    auth = ("alice", "alice-secret")
    with httpx.Client(base_url=gateway.url, auth=auth, follow_redirects=False) as client:
        before = int(time.time())
        response = client.get(f"/files/cdn-lib/{filename}")
        assert response.status_code == 302, response.text
        assert response.headers["cache-control"] == "no-store"
        signed = verify_signed_url(response.headers["location"], keys.public_pem)
        assert signed.resource == f"https://{DOMAIN}/packages/cdn-lib/{filename}"
        assert signed.key_pair_id == KEY_ID
        assert before + 300 <= signed.expires <= int(time.time()) + 300

        metadata = client.get(f"/files/cdn-lib/{filename}.metadata")
        assert metadata.status_code == 302
        assert verify_signed_url(metadata.headers["location"], keys.public_pem).resource.endswith(
            f"/packages/cdn-lib/{filename}.metadata"
        )

        # Read once per container: with the secret gone, this container still signs.
        boto3.client("secretsmanager").delete_secret(
            SecretId=secret, ForceDeleteWithoutRecovery=True
        )
        again = client.get(f"/files/cdn-lib/{filename}")
        assert again.status_code == 302
        verify_signed_url(again.headers["location"], keys.public_pem)

        # Reading still needs credentials: no URL for anonymous callers.
        assert httpx.get(f"{gateway.url}/files/cdn-lib/{filename}").status_code == 401
