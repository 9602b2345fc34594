"""A fresh API Lambda environment: built at init, rarely used heavy modules left out,
per-environment state made anew after a SnapStart restore.

Each case runs the real handler module in a new Python process (one execution
environment: ``tests/support/lambda_environment.py``) against DynamoDB Local and moto,
with the events the local API Gateway makes. Speed is measured by
``benchmarks/bench_coldstart.py``, not here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.apigw import captured_event
from tests.support.layer_layout import deployed_env

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = ROOT / "tests" / "support" / "lambda_environment.py"
# Never on the request path: LDAP (unless configured), the CDK, test tools; argon2 and
# passlib only once a password is actually checked.
NEVER = ("ldap3", "aws_cdk", "constructs", "jsii", "cdk_nag", "moto", "pytest", "infra")
PASSWORD_HASHING = ("passlib", "argon2", "_argon2_cffi_bindings")
# Built at init: a first request imports none of their modules.
BUILT_AT_INIT = ("stratus", "fastapi", "starlette", "pydantic", "mangum", "pynamodb", "botocore")
ANONYMOUS_PIP = {"User-Agent": "pip/25.0"}


def run_environment(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(ENVIRONMENT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def event_file(tmp_path: Path, headers: dict[str, str], path: str = "/simple/") -> str:
    target = tmp_path / f"event-{len(list(tmp_path.glob('event-*')))}.json"
    target.write_text(json.dumps(captured_event("GET", path, headers)))
    return str(target)


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


def test_importing_the_handler_without_a_deployment_builds_nothing_and_fails_not():
    report = run_environment(base_env(), "init")
    assert report["built"] is False
    assert not top_level(report["at_init"]) & {*NEVER, *PASSWORD_HASHING}
    assert report["gc_enabled"] and report["gc_frozen"] == 0  # nothing to keep


@pytest.fixture(scope="session")
def layer_dir(tmp_path_factory) -> Path:
    """Where the main layer's layout is written, once per test session."""
    return tmp_path_factory.mktemp("layer")


def deployment_env(table: str, bucket: str, config: Path, layer: Path) -> dict[str, str]:
    """The API function's environment, in the main layer's layout (``layer_layout``)."""
    return deployed_env(base_env(), layer) | {
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")},
        "STRATUS_TABLE_NAME": table,
        "STRATUS_BUCKET_NAME": bucket,
        "STRATUS_CONFIG": str(config),
        "STRATUS_AUTH": "config",
    }


@pytest.fixture
def lambda_env(dynamo_table, s3_bucket, tmp_path, layer_dir) -> dict[str, str]:
    """A deployment with one user (alice / alice-secret); projects readable by everyone."""
    from passlib.hash import sha512_crypt

    config = tmp_path / "stratus.ini"
    hashed = sha512_crypt.using(rounds=1000).hash("alice-secret")
    config.write_text(f"[stratus]\npypi.default_read =\n    everyone\nuser.alice = {hashed}\n")
    return deployment_env(dynamo_table, s3_bucket, config, layer_dir)


@pytest.fixture
def anonymous_only_env(dynamo_table, s3_bucket, tmp_path, layer_dir) -> dict[str, str]:
    """A deployment where nobody logs in: no password is ever checked."""
    config = tmp_path / "anonymous.ini"
    config.write_text("[stratus]\npypi.default_read =\n    everyone\n")
    return deployment_env(dynamo_table, s3_bucket, config, layer_dir)


def test_the_app_and_its_clients_are_built_at_init(lambda_env, tmp_path):
    """In a deployment the import builds everything: the first request imports nothing of
    the app, the web framework, pynamodb or botocore (their models and clients exist)."""
    report = run_environment(lambda_env, "init", event_file(tmp_path, ANONYMOUS_PIP))
    assert report["built"] is True
    assert report["status"] == 200
    first_request = set(report["after"]) - set(report["at_init"])
    assert not [name for name in first_request if name.split(".")[0] in BUILT_AT_INIT]
    # the collector, paused for the init, runs again; the init's objects are frozen
    assert report["gc_enabled"] and report["gc_frozen"] > 100_000


def test_without_passwords_to_check_no_hashing_ldap_or_cdk_is_imported(
    anonymous_only_env, tmp_path
):
    report = run_environment(anonymous_only_env, "init", event_file(tmp_path, ANONYMOUS_PIP))
    assert report["built"] is True
    assert report["status"] == 200
    assert not top_level(report["after"]) & {*NEVER, *PASSWORD_HASHING}


def test_with_users_the_hashing_is_loaded_at_init_and_ldap_never(lambda_env, tmp_path):
    """The first login pays the hash itself, not the import of passlib and argon2."""
    wrong = base64.b64encode(b"alice:not-her-password").decode()
    report = run_environment(
        lambda_env, "init", event_file(tmp_path, {"Authorization": f"Basic {wrong}"})
    )
    assert report["status"] == 401
    assert {"passlib", "argon2"} <= top_level(report["at_init"])
    first_request = set(report["after"]) - set(report["at_init"])
    assert not top_level(list(first_request)) & set(PASSWORD_HASHING)
    assert not top_level(report["after"]) & set(NEVER)


# Only for rare requests (web UI pages, an upload's description, a trusted-publishing mint)
RARELY_USED = {"jinja2", "jwt", "readme_renderer"}


def test_rarely_used_modules_load_at_init_only_when_no_request_waits_for_it(lambda_env, tmp_path):
    """An on-demand init leaves them to the requests that need them; a SnapStart (or
    provisioned) init, paid once ahead of traffic, loads them into the snapshot."""
    event = event_file(tmp_path, ANONYMOUS_PIP)
    on_demand = run_environment(
        {**lambda_env, "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}, "init", event
    )
    assert on_demand["status"] == 200
    assert not top_level(on_demand["after"]) & RARELY_USED
    # core metadata parsing (uploads, reindexing): not for an install
    assert "packaging.metadata" not in on_demand["after"]
    snapshot = run_environment(
        {**lambda_env, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}, "init", event
    )
    assert snapshot["status"] == 200
    assert top_level(snapshot["at_init"]) >= RARELY_USED


@pytest.mark.parametrize(
    "tracing_off",
    [
        pytest.param({}, id="outside-lambda"),
        pytest.param(
            {"LAMBDA_TASK_ROOT": str(ROOT / "functions"), "POWERTOOLS_TRACE_DISABLED": "true"},
            id="trace-disabled",
        ),
    ],
)
def test_without_tracing_the_xray_sdk_is_never_imported(lambda_env, tmp_path, tracing_off):
    """Powertools' Tracer imports the X-Ray SDK (and makes an X-Ray client) even when it
    disables itself: where nothing is traced the handlers use a no-op tracer instead."""
    report = run_environment(
        {**lambda_env, **tracing_off}, "init", event_file(tmp_path, ANONYMOUS_PIP)
    )
    assert report["built"] is True
    assert report["status"] == 200
    assert "aws_xray_sdk" not in top_level(report["after"])


def test_a_restored_environment_gets_a_new_key_connections_and_seed(lambda_env, tmp_path):
    alice = base64.b64encode(b"alice:alice-secret").decode()
    login = event_file(tmp_path, {"Authorization": f"Basic {alice}"})
    health = event_file(tmp_path, {}, "/health")
    dynamodb_port = str(urlsplit(lambda_env["AWS_ENDPOINT_URL_DYNAMODB"]).port)
    report = run_environment(lambda_env, "restore", dynamodb_port, login, health)
    before, after = report["before"], report["after"]
    assert before["status"] == [200, 200]
    assert after["hooks"] == ["stratus.handlers.api.after_restore"]
    assert before["cached"] == 1  # there was a verified login to forget
    assert after["key"] != before["key"]  # the snapshot's key is not every environment's
    assert after["cached"] == 0
    # Our clients' connections from the snapshot are closed; pynamodb's own read client
    # keeps its one (its public API cannot reach it; botocore reconnects a dead one).
    assert before["connections"] == 2 and after["connections"] == 1
    assert after["random_reseeded"]
    assert after["status"] == [200, 200]  # and the environment serves on


def test_as_deployed_the_apis_pages_and_clients_work(lambda_env, tmp_path):
    """In the layer's layout (no ``pydantic.v1``, trimmed botocore models) every kind of
    answer still comes: a login, the JSON packages API (FastAPI's encoder probes for v1
    models), a web UI page, a health check that calls DynamoDB and S3."""
    alice = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-secret").decode()}
    events = [
        event_file(tmp_path, alice),
        event_file(tmp_path, {**alice, "Accept": "application/json"}, "/api/package/"),
        event_file(tmp_path, {**alice, "Accept": "text/html"}, "/"),
        event_file(tmp_path, {}, "/health"),
    ]
    from layers import build

    probe = (
        "import botocore.session as s; print(s.__file__);"
        " print(*s.get_session().get_available_services())"
    )
    where, services = subprocess.run(
        [sys.executable, "-c", probe], env=lambda_env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert where.startswith(lambda_env["PYTHONPATH"].split(os.pathsep)[0])  # the layer's copy
    assert services.split() == sorted(build.LAMBDA_AWS_SERVICES)  # and nothing else to list
    dynamodb_port = str(urlsplit(lambda_env["AWS_ENDPOINT_URL_DYNAMODB"]).port)
    report = run_environment(lambda_env, "restore", dynamodb_port, *events)
    assert report["before"]["status"] == [200, 200, 200, 200]
    assert report["after"]["status"] == [200, 200, 200, 200]
