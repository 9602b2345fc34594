"""The AWS Secrets Manager backend (§1.6.5) on moto server, holding the sample.

The secret is written directly in pypicloud's JSON format, as a pypicloud admin would
have it: project names as pypicloud spells them (``django_unchained``), permissions as
``["read", "write"]``, ``ppc-gen-password`` style sha256_crypt hashes (cheap rounds).
Each test gets its own secret, force-deleted afterwards.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from passlib.hash import sha256_crypt

from stratus.adapters.secrets_access import SecretsManagerAccess

from . import ADMINS, GROUPS, PACKAGES, PASSWORDS

_WORDS = {"r": ["read"], "w": ["write"], "rw": ["read", "write"]}


def sample_document() -> dict[str, Any]:
    """The §1.6.2 sample in the JSON format of §1.6.5."""
    return {
        "users": {u: sha256_crypt.using(rounds=1000).hash(pw) for u, pw in PASSWORDS.items()},
        "groups": {g: list(members) for g, members in GROUPS.items()},
        "admins": list(ADMINS),
        "packages": {
            project.replace("-", "_"): {
                "groups": {g: _WORDS[p] for g, p in kinds["group"].items()},
                "users": {u: _WORDS[p] for u, p in kinds["user"].items()},
            }
            for project, kinds in PACKAGES.items()
        },
    }


def use_moto(request) -> str:
    """Point Secrets Manager clients at the session's moto server for this test.

    botocore's service-specific variable is ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (from the
    service id "Secrets Manager"); set per test so the choice is visible here.
    """
    endpoint = request.getfixturevalue("moto_endpoint")
    request.getfixturevalue("monkeypatch").setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    return endpoint


def new_secret_id(request) -> str:
    """A unique secret name on the session's moto server, force-deleted after the test."""
    endpoint = use_moto(request)
    secret_id = f"stratus-test/access-{uuid.uuid4().hex[:12]}"

    def cleanup() -> None:
        import boto3

        client = boto3.client("secretsmanager", endpoint_url=endpoint)
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)

    request.addfinalizer(cleanup)
    return secret_id


def build_empty(request, tmp_path, **kwargs) -> SecretsManagerAccess:
    """A backend whose secret does not exist yet (created by the first write)."""
    return SecretsManagerAccess(new_secret_id(request), **kwargs)


def build(request, tmp_path):
    import boto3

    secret_id = new_secret_id(request)
    boto3.client("secretsmanager").create_secret(
        Name=secret_id, SecretString=json.dumps(sample_document(), indent=2)
    )
    return SecretsManagerAccess(secret_id)
