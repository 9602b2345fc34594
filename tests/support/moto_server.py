"""moto in server mode (a real HTTP endpoint) for S3, SQS and Secrets Manager in tests.

``running_moto_server``: the same outside pytest (benchmarks).
``moto_endpoint`` (session): starts one moto server in a child process on 127.0.0.1 and a
port the child picks itself (no free-port race), points ``AWS_ENDPOINT_URL_S3`` /
``_SQS`` / ``_SECRETS_MANAGER`` at it for the session, and stops it at the end.
``s3_bucket`` (function): a fresh, uniquely named private bucket on it, emptied and
deleted afterwards.

Why a child process and not ``moto.server.ThreadedMotoServer`` in the test process: moto's
backends are module globals, so an in-process server shares state with (and is reset by)
any ``mock_aws`` a unit test starts; a child process is isolated from that.

One deliberate change to moto: its S3 PutObject checks ``If-None-Match`` and then stores
the object as two steps, while its server handles requests on threads, so concurrent
conditional writes can both succeed (reproduced with moto 5.2.5 under thread-switch
stress: 2 races in 100), where S3 decides atomically.
The child runs moto's WSGI app behind a lock taken for S3 writes (PUT and DELETE
requests), which restores S3's guarantee without slowing reads or SQS long polls (POST).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 30.0
ENDPOINT_VARS = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
)


# --- the child process ---------------------------------------------------------------------


def _serve(port_file: Path) -> None:
    """Run moto on 127.0.0.1:<any port>; write the port to ``port_file`` once listening."""
    import logging
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app = DomainDispatcherApplication(create_backend_app)
    write_lock = threading.Lock()

    def serialized_writes(environ, start_response):  # type: ignore[no-untyped-def]
        if environ.get("REQUEST_METHOD") not in ("PUT", "DELETE"):
            return app(environ, start_response)
        with write_lock:
            response = app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()

    server = make_server(
        "127.0.0.1", 0, serialized_writes, threaded=True, request_handler=MotoRequestHandler
    )
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(port_file)
    server.serve_forever()


# --- fixtures ------------------------------------------------------------------------------


def _wait_for_port(process: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not port_file.exists():
        if process.poll() is not None:
            pytest.fail(f"moto server exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"moto server did not start within {STARTUP_TIMEOUT}s:\n{log.read_text()}")
        time.sleep(0.05)
    return int(port_file.read_text())


def _wait_until_ready(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            client.list_buckets()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"moto server does not answer at {endpoint}:\n{log.read_text()}")
            time.sleep(0.1)


@contextlib.contextmanager
def running_moto_server(workdir: Path) -> Iterator[str]:
    """A moto server in a child process (files in ``workdir``); yields its URL."""
    # Imported here: this file also runs as the server's own script, outside the package.
    from tests.support.processes import stop

    port_file = workdir / "port"
    log = workdir / "moto-server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, str(port_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        port = _wait_for_port(process, port_file, log)
        endpoint = f"http://127.0.0.1:{port}"
        _wait_until_ready(endpoint, process, log)
        yield endpoint
    finally:
        stop(process)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto server (S3, SQS, Secrets Manager, ...) for the whole session."""
    from tests.support.processes import environ_pointing_at

    workdir = tmp_path_factory.mktemp("moto-server")
    with running_moto_server(workdir) as endpoint, environ_pointing_at(ENDPOINT_VARS, endpoint):
        yield endpoint


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[str]:
    """A fresh private bucket on the moto server; emptied and deleted afterwards."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    name = f"stratus-test-{uuid.uuid4().hex[:12]}"
    region = client.meta.region_name
    if region == "us-east-1":
        client.create_bucket(Bucket=name)
    else:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    client.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    try:
        yield name
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
