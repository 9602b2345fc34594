"""access_backend and access_secret_kms_key_arn: environment, secrets, IAM, cdk-nag.

Every variant is synthesized with cdk-nag's AwsSolutions checks (a finding fails the
synth); the statements of the API role are compared whole, conditions included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO_ROOT
from .test_nag_and_lint import acknowledgments
from .test_templates import only, resources

KMS_KEY = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BACKENDS = ("config", "dynamo", "aws_secrets_manager")
VARIANTS = [(backend, "") for backend in BACKENDS] + [
    ("config", KMS_KEY),
    ("dynamo", KMS_KEY),
    ("aws_secrets_manager", KMS_KEY),
]
VARIANT_IDS = [f"{backend}{'-cmk' if kms else ''}" for backend, kms in VARIANTS]

TABLE_ACTIONS = [
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
]


def synth_variant(synth: Any, backend: str, kms: str) -> dict[str, Any]:
    overrides = {}
    if backend != "config":
        overrides["access_backend"] = backend
    if kms:
        overrides["access_secret_kms_key_arn"] = kms
    return synth(**overrides)  # no overrides: the default synth, cached


def templates_of(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name[len("Stratus") :]: stack.template for name, stack in out["stacks"].items()}


def secret_ids(storage: dict[str, Any]) -> dict[str, str]:
    """{"SigningKey": logical id, "UserDatabase": logical id} (those that exist)."""
    out = {}
    for logical_id in resources(storage, "AWS::SecretsManager::Secret"):
        name = next(n for n in ("SigningKey", "UserDatabase") if logical_id.startswith(n))
        assert name not in out
        out[name] = logical_id
    return out


def storage_ref(storage: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """How another stack refers to ``value`` (a Ref or GetAtt) of the storage stack."""
    names = [
        name
        for name, output in storage["Outputs"].items()
        if name.startswith("PublishOutput") and output["Value"] == value
    ]
    assert len(names) == 1, names
    return {
        "Fn::GetStackOutput": {
            "StackName": "StratusStorage",
            "Region": {"Ref": "AWS::Region"},
            "OutputName": names[0],
        }
    }


def secret_ref(storage: dict[str, Any], name: str) -> dict[str, Any]:
    return storage_ref(storage, {"Ref": secret_ids(storage)[name]})


def api_statements(api: dict[str, Any]) -> dict[str, dict[str, Any]]:
    role_id = next(k for k in resources(api, "AWS::IAM::Role") if k.startswith("ApiRole"))
    policies = [
        p
        for p in resources(api, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    assert len(policies) == 1
    # CDK's X-Ray statement (tracing=ACTIVE) has no Sid: test_templates.py checks it
    return {
        s["Sid"]: s
        for s in policies[0]["Properties"]["PolicyDocument"]["Statement"]
        if "xray:PutTraceSegments" not in s["Action"]
    }


@pytest.mark.parametrize(("backend", "kms"), VARIANTS, ids=VARIANT_IDS)
def test_api_environment(synth, backend, kms):
    templates = templates_of(synth_variant(synth, backend, kms))
    storage = templates["Storage"]
    env = only(templates["Api"], "AWS::Lambda::Function")["Properties"]["Environment"]
    auth = {k: v for k, v in env["Variables"].items() if k.startswith("STRATUS_AUTH")}
    expected = {
        "STRATUS_AUTH": backend,
        "STRATUS_AUTH_SIGNING_KEY_SECRET": secret_ref(storage, "SigningKey"),
    }
    if backend == "aws_secrets_manager":
        expected["STRATUS_AUTH_SECRET_ID"] = secret_ref(storage, "UserDatabase")
        if kms:
            expected["STRATUS_AUTH_KMS_KEY_ID"] = kms
    assert auth == expected


@pytest.mark.parametrize(("backend", "kms"), VARIANTS, ids=VARIANT_IDS)
def test_secrets_are_retained_and_never_rotated(synth, backend, kms):
    from infra.storage import EMPTY_USER_DATABASE

    templates = templates_of(synth_variant(synth, backend, kms))
    storage = templates["Storage"]
    secrets = resources(storage, "AWS::SecretsManager::Secret")
    ids = secret_ids(storage)
    wanted = {"SigningKey", "UserDatabase"} if backend == "aws_secrets_manager" else {"SigningKey"}
    assert set(ids) == wanted
    for secret in secrets.values():
        assert secret["DeletionPolicy"] == "Retain"
        assert secret["UpdateReplacePolicy"] == "Retain"
        props = secret["Properties"]
        assert "Name" not in props  # a generated name: a second deployment cannot clash
        if kms:
            assert props["KmsKeyId"] == kms
        else:
            assert "KmsKeyId" not in props  # aws/secretsmanager
    signing = secrets[ids["SigningKey"]]["Properties"]
    assert "SecretString" not in signing
    assert signing["GenerateSecretString"] == {
        "ExcludePunctuation": True,
        "IncludeSpace": False,
        "PasswordLength": 64,
    }
    if "UserDatabase" in ids:
        database = secrets[ids["UserDatabase"]]["Properties"]
        assert "GenerateSecretString" not in database
        # Changing this string would overwrite the live user database on the next deploy.
        assert database["SecretString"] == EMPTY_USER_DATABASE
        assert json.loads(EMPTY_USER_DATABASE) == {
            "users": {},
            "groups": {},
            "admins": [],
            "packages": {},
        }
    for name, template in templates.items():
        assert not resources(template, "AWS::SecretsManager::RotationSchedule"), name
        assert not resources(template, "AWS::KMS::Key"), name  # the CMK is given, not made
        if name != "Storage":
            assert not resources(template, "AWS::SecretsManager::Secret"), name


@pytest.mark.parametrize(("backend", "kms"), VARIANTS, ids=VARIANT_IDS)
def test_api_role_statements(synth, backend, kms):
    templates = templates_of(synth_variant(synth, backend, kms))
    storage = templates["Storage"]
    got = api_statements(templates["Api"])
    signing = secret_ref(storage, "SigningKey")
    table_id = next(iter(resources(storage, "AWS::DynamoDB::Table")))
    table_arn = storage_ref(storage, {"Fn::GetAtt": [table_id, "Arn"]})

    assert set(got) == {
        "WriteOwnLogs",
        "WriteAuditLog",
        "StartReconcileRuns",
        "QueueUploadCompletions",
        "ReadWritePackageFiles",
        "ListPackageFiles",
        "ReadWriteIndex",
        "ReadSigningKey",
        "StageUploads",  # upload sessions (tests/infra/test_cdn_and_uploads.py)
        "AbortPackageCopies",
        "TagInPlaceUploads",
        *(["ReadWriteUserDatabase"] if backend == "aws_secrets_manager" else []),
        *(["DecryptAccessSecrets"] if kms else []),
        *(["EncryptUserDatabase"] if kms and backend == "aws_secrets_manager" else []),
    }
    # The access data shares the index table and its statement: no Scan, no batch calls.
    assert sorted(got["ReadWriteIndex"]["Action"]) == TABLE_ACTIONS
    assert got["ReadWriteIndex"]["Resource"] == table_arn
    assert "Condition" not in got["ReadWriteIndex"]
    assert got["ReadSigningKey"] == {
        "Sid": "ReadSigningKey",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": signing,
    }
    if backend == "aws_secrets_manager":
        database = secret_ref(storage, "UserDatabase")
        assert got["ReadWriteUserDatabase"] == {
            "Sid": "ReadWriteUserDatabase",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            "Resource": database,
        }
    if kms:
        readable = [signing, database] if backend == "aws_secrets_manager" else signing
        assert got["DecryptAccessSecrets"] == {
            "Sid": "DecryptAccessSecrets",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms,
            "Condition": {"StringEquals": {"kms:EncryptionContext:SecretARN": readable}},
        }
    if kms and backend == "aws_secrets_manager":
        assert got["EncryptUserDatabase"] == {
            "Sid": "EncryptUserDatabase",
            "Effect": "Allow",
            "Action": "kms:GenerateDataKey",
            "Resource": kms,
            "Condition": {"StringEquals": {"kms:EncryptionContext:SecretARN": database}},
        }
    # Only the API function touches secrets or keys.
    for name in ("Sync", "Reconcile", "Monitoring"):
        text = json.dumps(templates[name])
        assert "secretsmanager:" not in text and "kms:" not in text, name


@pytest.mark.parametrize(("backend", "kms"), VARIANTS, ids=VARIANT_IDS)
def test_cdk_nag_clean_with_the_rotation_findings_acknowledged(synth, backend, kms):
    out = synth_variant(synth, backend, kms)
    report = json.loads(Path(out["outdir"], "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []
    rotation = {
        path.split("/")[1]: reason
        for path, rule, reason in acknowledgments(out["app"])
        if rule == "AwsSolutions-SMG4"
    }
    wanted = {"SigningKey"} | ({"UserDatabase"} if backend == "aws_secrets_manager" else set())
    assert set(rotation) == wanted
    assert "signup tokens" in rotation["SigningKey"]
    if "UserDatabase" in rotation:
        assert "not a credential" in rotation["UserDatabase"]


def test_the_adapters_call_only_what_the_api_role_allows():
    """A new call in an adapter needs a new action in infra/permissions.py (and here)."""
    import re

    adapters = REPO_ROOT / "functions" / "stratus" / "adapters"
    secrets = (adapters / "secrets_access.py").read_text()
    calls = set(re.findall(r"\bclient\.(\w+)\(", secrets))
    # create_secret runs only when the secret is missing; the storage stack creates it.
    assert calls <= {"get_secret_value", "put_secret_value", "create_secret"}, calls
    assert "get_secret_value" in calls and "put_secret_value" in calls
    for name in ("dynamo_access.py", "dynamo_catalog.py"):
        source = (adapters / name).read_text()
        for call in ("batch_get", "batch_write", ".scan(", "describe_table", ".count("):
            assert call not in source, (name, call)


@pytest.mark.parametrize(
    ("named", "backend", "ok"),
    [
        ("", "dynamo", True),  # the file says nothing: access_backend decides
        ("config", "config", True),
        ("pypicloud.access.ConfigAccessBackend", "config", True),
        (
            "pypicloud.access.aws_secrets_manager.AWSSecretsManagerAccessBackend",
            "aws_secrets_manager",
            True,
        ),
        ("aws_secrets_manager", "config", False),
        ("ldap", "config", False),
        ("config", "dynamo", False),
    ],
)
def test_a_config_file_naming_another_backend_is_refused(tmp_path, named, backend, ok):
    from infra.functions import check_config_backend

    config = tmp_path / "stratus.ini"
    config.write_text("[app:main]\n" + (f"pypi.auth = {named}\n" if named else ""))
    if ok:
        check_config_backend(str(config), backend)
    else:
        with pytest.raises(ValueError, match=r"set it, or remove pypi\.auth"):
            check_config_backend(str(config), backend)
