"""What a fresh API Lambda environment imports: rarely used heavy modules stay out.

Each case runs the real handler module in a new Python process (a new execution
environment), optionally serves one request with the event the local API Gateway makes,
and reports ``sys.modules``. Speed is measured by ``benchmarks/bench_coldstart.py``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.apigw import captured_event

ROOT = Path(__file__).resolve().parents[2]
# Never on the request path: LDAP (unless configured), the CDK, test tools; argon2 and
# passlib only once a password is actually checked.
NEVER = ("ldap3", "aws_cdk", "constructs", "jsii", "cdk_nag", "moto", "pytest", "infra")
PASSWORD_HASHING = ("passlib", "argon2", "_argon2_cffi_bindings")

CHILD = """
import json, sys, types
import stratus.handlers.api as api
at_init = sorted(sys.modules)
status = None
if len(sys.argv) > 1:
    context = types.SimpleNamespace(
        function_name="stratus-api", function_version="$LATEST", memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stratus-api",
        aws_request_id="c0ffee", get_remaining_time_in_millis=lambda: 29000,
    )
    with open(sys.argv[1]) as fh:
        status = api.handler(json.load(fh), context)["statusCode"]
print(json.dumps({"at_init": at_init, "after": sorted(sys.modules), "status": status}))
"""


def run_environment(env: dict[str, str], event: dict | None = None, tmp_path=None) -> dict:
    args = [sys.executable, "-c", CHILD]
    if event is not None:
        path = tmp_path / "event.json"
        path.write_text(json.dumps(event))
        args.append(str(path))
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def top_level(modules: list[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return {
        **env,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT / "functions"),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def test_importing_the_handler_without_a_deployment_imports_nothing_heavy():
    report = run_environment(base_env())
    assert not top_level(report["at_init"]) & {*NEVER, *PASSWORD_HASHING}


@pytest.fixture
def lambda_env(dynamo_table, s3_bucket, tmp_path) -> dict[str, str]:
    from passlib.hash import sha512_crypt

    config = tmp_path / "stratus.ini"
    hashed = sha512_crypt.using(rounds=1000).hash("alice-secret")
    config.write_text(f"[stratus]\npypi.default_read =\n    everyone\nuser.alice = {hashed}\n")
    return {
        **base_env(),
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")},
        "STRATUS_TABLE_NAME": dynamo_table,
        "STRATUS_BUCKET_NAME": s3_bucket,
        "STRATUS_CONFIG": str(config),
        "STRATUS_AUTH": "config",
    }


def test_an_anonymous_request_imports_no_password_hashing_ldap_or_cdk(lambda_env, tmp_path):
    event = captured_event("GET", "/simple/", {"User-Agent": "pip/25.0"})
    report = run_environment(lambda_env, event, tmp_path)
    assert report["status"] == 200
    assert not top_level(report["after"]) & {*NEVER, *PASSWORD_HASHING}


def test_a_password_check_does_import_the_hashing_and_still_no_ldap(lambda_env, tmp_path):
    """The other side of the test above: the check sees a module that is imported."""
    wrong = base64.b64encode(b"alice:not-her-password").decode()
    event = captured_event("GET", "/simple/", {"Authorization": f"Basic {wrong}"})
    report = run_environment(lambda_env, event, tmp_path)
    assert report["status"] == 401
    assert "passlib" in top_level(report["after"])
    assert not top_level(report["after"]) & set(NEVER)
