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
requests, and the POST that completes a multipart upload, which S3 also decides
atomically with ``If-None-Match``), which restores S3's guarantee without slowing reads
or SQS long polls (POST). Request bodies are read before the lock is taken, so parallel
uploads (multipart parts) stream in at once and only moto's bookkeeping is serialized.

A CopyObject onto an existing key keeps that key's tags in moto 5.2.5 (unversioned
buckets); on S3 the copy is a new object with the source's tags, so the child drops the
target's tags first (an upload session's pending tag must not survive a copy over it).
And a DeleteObjectTagging of a missing key gets S3's 404 NoSuchKey (moto: a 500).

S3 also honours ``If-None-Match: *`` on CopyObject (the copy is refused with 412 when
the target key exists); moto 5.2.5 ignores it, so the child checks it under the same
lock, making a conditional copy atomic against conditional puts as on AWS.

Another change: S3 checks the ``x-amz-checksum-sha256`` of a PutObject or UploadPart
against the bytes and refuses others with 400 BadDigest, then reports the checksum on
HeadObject with ``ChecksumMode``; moto 5.2.5 stores the header unchecked (and only when
``x-amz-sdk-checksum-algorithm`` names it). The child checks it as S3 does and names
the algorithm for moto, so presigned one-time uploads behave here as on AWS.
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
        method = environ.get("REQUEST_METHOD")
        completes = method == "POST" and "uploadId=" in environ.get("QUERY_STRING", "")
        if method not in ("PUT", "DELETE") and not completes:
            return app(environ, start_response)
        if method == "PUT":
            rejected = _read_and_check_body(environ, start_response)
            if rejected is not None:
                return rejected
        with write_lock:
            if _copy_onto_an_existing_key(environ):
                return _s3_error(start_response, "412 Precondition Failed", "PreconditionFailed")
            _drop_tags_a_copy_replaces(environ)
            if _untags_a_missing_key(environ):
                return _s3_error(start_response, "404 Not Found", "NoSuchKey")
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


def _s3_error(start_response, status: str, code: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    error = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{status}</Message></Error>"
    ).encode()
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(error)))]
    )
    return [error]


def _copy_onto_an_existing_key(environ) -> bool:  # type: ignore[no-untyped-def]
    """A CopyObject with ``If-None-Match: *`` whose (path-style) target key exists."""
    if environ.get("REQUEST_METHOD") != "PUT" or environ.get("HTTP_IF_NONE_MATCH") != "*":
        return False
    if not environ.get("HTTP_X_AMZ_COPY_SOURCE") or "uploadId=" in environ.get("QUERY_STRING", ""):
        return False
    from urllib.parse import unquote

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
    try:
        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key) is not None
    except Exception:  # no such bucket: let moto answer
        return False


def _target_of(environ):  # type: ignore[no-untyped-def]
    """``(backend, object or None)`` of a path-style object request; None: no bucket."""
    from urllib.parse import unquote

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
    try:
        return backend, backend.get_object(bucket, key)
    except Exception:  # no such bucket: let moto answer
        return None


def _untags_a_missing_key(environ) -> bool:  # type: ignore[no-untyped-def]
    """A DeleteObjectTagging of a key that does not exist: S3 answers 404 NoSuchKey,
    moto 5.2.5 a 500."""
    if environ.get("REQUEST_METHOD") != "DELETE":
        return False
    if "tagging" not in environ.get("QUERY_STRING", "").split("&"):
        return False
    found = _target_of(environ)
    return found is not None and found[1] is None


def _drop_tags_a_copy_replaces(environ) -> None:  # type: ignore[no-untyped-def]
    """A CopyObject makes a new object whose tags are the source's (or the request's):
    moto 5.2.5 adds them to the tags the target key had (in an unversioned bucket), so
    a tag of the object it replaced survives. Drop those first, as S3 does."""
    if environ.get("REQUEST_METHOD") != "PUT" or not environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        return
    if "uploadId=" in environ.get("QUERY_STRING", ""):
        return
    found = _target_of(environ)
    if found is not None and found[1] is not None:
        backend, target = found
        backend.tagger.delete_all_tags_for_resource(target.arn)


def _read_and_check_body(environ, start_response):  # type: ignore[no-untyped-def]
    """Buffer a PUT body; answer BadDigest (as S3 does) if it fails its SHA-256 checksum."""
    import base64
    import hashlib
    import io

    stream = environ["wsgi.input"]
    if environ.get("CONTENT_LENGTH"):
        body = stream.read(int(environ["CONTENT_LENGTH"]))
    elif environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream itself
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    claimed = environ.get("HTTP_X_AMZ_CHECKSUM_SHA256")
    if claimed is None:
        return None
    if base64.b64encode(hashlib.sha256(body).digest()).decode() != claimed:
        return _s3_error(start_response, "400 Bad Request", "BadDigest")
    environ.setdefault("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", "SHA256")
    return None


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
