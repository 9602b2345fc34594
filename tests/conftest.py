"""Shared test setup: fake AWS credentials, and the emulator fixtures from tests/support."""

from __future__ import annotations

import os

# Never let a test reach a real AWS account: fake credentials, a fixed region.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
for _var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)

pytest_plugins = [
    "tests.support.dynamodb_local",
    "tests.support.moto_server",
    "tests.support.slapd",
]
