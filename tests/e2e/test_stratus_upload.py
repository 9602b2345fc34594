"""``stratus upload`` against both deployments: the Lambda handler behind the local API
Gateway (which enforces the payload limits) on DynamoDB Local + moto server, and
``stratus serve``. Files far above the gateway's 10 MB cap go through, because their
bytes never do."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.cli.upload import Http, Repository, Uploader
from tests.support.apigw import FakeLambdaContext, LocalHttpApi
from tests.support.concurrency import run_concurrently
from tests.support.distributions import wheel_bytes, write, write_wheel_with_payload
from tests.support.sqs_events import QueuePoller

from .conftest import BIN, SAMPLE_CONFIG, Index, running_serve
from .test_clients import pip, run, twine_upload

MIB = 1024 * 1024
# Generous timeouts: under CI load a request may wait for a cold Lambda path and argon2.
http = httpx.Client(timeout=60)
ALICE = ("alice", "alice-secret")
LAMBDA_MAX_UPLOAD_BYTES = "4500000"  # what the API stack sets (infra/settings.py)


@pytest.fixture
def start_lambda(
    dynamo_table: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Index]]:
    """``start_lambda(**STRATUS_* overrides)`` → the Lambda deployment as a URL."""
    started: list[LocalHttpApi] = []

    def start(**env: str) -> Index:
        for name, value in {
            "STRATUS_TABLE_NAME": dynamo_table,
            "STRATUS_BUCKET_NAME": s3_bucket,
            "STRATUS_CONFIG": str(SAMPLE_CONFIG),
            "STRATUS_MAX_UPLOAD_BYTES": LAMBDA_MAX_UPLOAD_BYTES,
            "STRATUS_UPLOAD_COMPLETION_LEASE": "34",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            **env,
        }.items():
            monkeypatch.setenv(name, value)
        import stratus.handlers.api as api

        monkeypatch.setattr(api, "_asgi_handler", None)  # a new container
        gateway = LocalHttpApi(api.handler).start()
        started.append(gateway)
        return Index("lambda", gateway.url.rstrip("/"))

    yield start
    for gateway in started:
        gateway.stop()


def uploader(index: Index, tmp_path: Path, **kwargs: Any) -> Uploader:
    repository = Repository(f"{index.url}/", *ALICE)
    return Uploader(
        Http(repository, parallel=kwargs.get("parallel", 4)),
        state_dir=tmp_path / "state",
        progress=False,
        poll_seconds=0.1,
        **kwargs,
    )


def count_puts(client: Uploader) -> list[str]:
    """The storage URLs the client sends bytes to, from now on."""
    puts: list[str] = []
    real_put = client.http.put_bytes

    def counting_put(url: str, *args: Any, **kwargs: Any) -> Any:
        puts.append(url)
        return real_put(url, *args, **kwargs)

    client.http.put_bytes = counting_put  # type: ignore[method-assign]
    return puts


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def create_session(index: Index, wheel: Path, sha256: str) -> dict[str, Any]:
    """Alice opens an upload session for ``wheel`` (name and version from its filename),
    declaring ``sha256``; the session document."""
    name, version = wheel.name.split("-")[:2]
    created = http.post(
        f"{index.url}/_/upload-sessions/",
        auth=ALICE,
        json={
            "name": name,
            "version": version,
            "filename": wheel.name,
            "size": wheel.stat().st_size,
            "hashes": {"sha256": sha256},
        },
    )
    assert created.status_code == 201, created.text
    return created.json()


def pip_install(index: Index, tmp_path: Path, *projects: str) -> Path:
    """pip installs ``projects`` from ``index`` as alice into a fresh folder; the folder."""
    target = tmp_path / "site"
    installed = pip(
        [
            "install",
            "--index-url",
            index.simple(*ALICE),
            "--no-cache-dir",
            "--target",
            str(target),
            *projects,
        ],
        cache=tmp_path / "cache",
    )
    assert installed.returncode == 0, installed.stderr
    return target


def listed(index: Index, project: str) -> dict[str, str]:
    """{filename: sha256} of the project's files in the index ({} for no project)."""
    response = http.get(
        f"{index.url}/simple/{project}/",
        auth=ALICE,
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    if response.status_code == 404:
        return {}
    return {f["filename"]: f["hashes"]["sha256"] for f in response.json()["files"]}


@pytest.mark.slow
def test_a_200_mb_wheel_through_the_lambda_path(start_lambda, tmp_path: Path) -> None:
    index = start_lambda()
    wheel = write_wheel_with_payload(tmp_path / "dist", "huge-ml", "1.0", 200 * MIB)
    assert wheel.stat().st_size > 200 * MIB  # 20 times what API Gateway lets through
    assert uploader(index, tmp_path).upload(wheel) == f"{wheel.name}: published"
    assert listed(index, "huge-ml") == {wheel.name: sha(wheel)}
    # The download is a redirect to storage; the bytes there are the uploaded ones.
    redirect = http.get(f"{index.url}/files/huge-ml/{wheel.name}", auth=ALICE)
    assert redirect.status_code == 302
    digest = hashlib.sha256()
    with httpx.stream("GET", redirect.headers["location"], timeout=120) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(MIB):
            digest.update(chunk)
    assert digest.hexdigest() == sha(wheel)


def test_multipart_upload_through_the_lambda_path(start_lambda, tmp_path: Path) -> None:
    index = start_lambda(
        STRATUS_UPLOAD_MULTIPART_THRESHOLD=str(8 * MIB), STRATUS_UPLOAD_PART_SIZE=str(5 * MIB)
    )
    wheel = write_wheel_with_payload(tmp_path / "dist", "parted", "1.0", 23 * MIB, seed=7)
    client = uploader(index, tmp_path, parallel=3)
    puts = count_puts(client)
    assert client.upload(wheel) == f"{wheel.name}: published"
    assert len(puts) == 5 and all("partNumber=" in url for url in puts)
    assert listed(index, "parted") == {wheel.name: sha(wheel)}


class Interrupted(KeyboardInterrupt):
    """The user pressed Ctrl-C (or the machine went away) in the middle of the upload."""


def test_an_interrupted_upload_resumes_through_the_lambda_path(
    start_lambda, tmp_path: Path
) -> None:
    index = start_lambda(
        STRATUS_UPLOAD_MULTIPART_THRESHOLD=str(8 * MIB), STRATUS_UPLOAD_PART_SIZE=str(5 * MIB)
    )
    wheel = write_wheel_with_payload(tmp_path / "dist", "resumed", "2.0", 23 * MIB, seed=8)
    first = uploader(index, tmp_path, parallel=1)
    real_put = first.http.put_bytes
    sent: list[str] = []

    def failing_put(url: str, *args: Any, **kwargs: Any) -> Any:
        if len(sent) == 2:
            raise Interrupted("the network went away")
        sent.append(url)
        return real_put(url, *args, **kwargs)

    first.http.put_bytes = failing_put  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        first.upload(wheel)
    states = list((tmp_path / "state").glob("*.json"))
    assert len(states) == 1 and '"parts": [1, 2]' in states[0].read_text()
    assert listed(index, "resumed") == {}  # nothing is published

    second = uploader(index, tmp_path)  # a new run of the command
    resent = count_puts(second)
    assert second.upload(wheel) == f"{wheel.name}: published"
    assert sorted(int(u.split("partNumber=")[1].split("&")[0]) for u in resent) == [3, 4, 5]
    assert listed(index, "resumed") == {wheel.name: sha(wheel)}
    assert list((tmp_path / "state").glob("*.json")) == []  # done: no state left


def test_a_wrong_sha256_publishes_nothing_through_the_lambda_path(
    start_lambda, tmp_path: Path
) -> None:
    index = start_lambda()
    wheel = write_wheel_with_payload(tmp_path / "dist", "tampered", "1.0", 5 * MIB, seed=9)
    doc = create_session(index, wheel, "0" * 64)
    upload = doc["upload"]
    put = http.put(upload["url"], content=wheel.read_bytes(), headers=upload["headers"])
    assert put.status_code == 400 and "BadDigest" in put.text  # S3 checks the declared digest
    done = http.post(doc["urls"]["complete"], auth=ALICE)
    assert done.status_code == 400 and "Nothing has been uploaded" in done.text
    assert http.get(f"{index.url}/simple/tampered/", auth=ALICE).status_code == 404


def test_one_put_sessions_publish_in_place_through_the_lambda_path(
    start_lambda, s3_bucket: str, tmp_path: Path
) -> None:
    """On S3 a one-PUT session sends its bytes straight to ``packages/`` (tagged pending)
    and the completion only removes the tag: no ``uploads/`` object, no copy. Two sessions
    for one file: the one whose PUT lands first wins; the other's PUT gets S3's 412 and
    ``stratus upload`` reports the file exists."""
    import boto3

    from stratus.cli.upload import UploadError

    index = start_lambda()
    first = write_wheel_with_payload(tmp_path / "first", "in-place", "1.0", 5 * MIB, seed=21)
    second = write_wheel_with_payload(tmp_path / "second", "in-place", "1.0", 5 * MIB, seed=22)
    assert first.name == second.name and sha(first) != sha(second)
    key = f"packages/in-place/{first.name}"
    doc = create_session(index, first, sha(first))
    target = doc["upload"]
    assert f"/{s3_bucket}/{key}?" in target["url"]
    assert target["headers"]["x-amz-tagging"] == "stratus-upload=pending"

    client = uploader(index, tmp_path)
    puts = count_puts(client)
    real_put = client.http.put_bytes

    def first_lands_first(url: str, *args: Any, **kwargs: Any) -> Any:
        landed = http.put(target["url"], content=first.read_bytes(), headers=target["headers"])
        assert landed.status_code == 200, landed.text
        return real_put(url, *args, **kwargs)

    client.http.put_bytes = first_lands_first  # type: ignore[method-assign]
    with pytest.raises(UploadError, match="already exists"):
        client.upload(second)
    assert len(puts) == 1 and f"/{s3_bucket}/{key}?" in puts[0]  # in place too: refused
    assert listed(index, "in-place") == {}  # nothing checked yet, nothing listed

    done = http.post(doc["urls"]["complete"], auth=ALICE)
    assert done.status_code == 200 and done.json()["status"] == "published", done.text
    assert listed(index, "in-place") == {first.name: sha(first)}
    s3 = boto3.client("s3")
    assert s3.get_object_tagging(Bucket=s3_bucket, Key=key)["TagSet"] == []
    assert s3.list_objects_v2(Bucket=s3_bucket, Prefix="uploads/").get("KeyCount") == 0
    target_dir = pip_install(index, tmp_path, "in-place")
    payload = target_dir / "in_place" / "payload.bin"
    assert payload.read_bytes() == zipped_payload(first)


def zipped_payload(wheel: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        return archive.read("in_place/payload.bin")


@pytest.mark.slow
def test_twine_over_the_limit_is_told_about_stratus_upload(start_lambda, tmp_path: Path) -> None:
    index = start_lambda()
    # Under Lambda's 6 MB request cap once base64-encoded: the app answers, naming the tool
    # (twine shows an error's body with --verbose; its status line is the standard one).
    near = write_wheel_with_payload(tmp_path / "near", "near-cap", "1.0", 4_550_000, seed=1)
    result = twine_upload(index, [near], ALICE, tmp_path, "--verbose")
    assert result.returncode != 0
    assert "413" in result.stdout + result.stderr
    assert "stratus upload" in result.stdout + result.stderr
    # Over it: API Gateway answers itself (the function never runs); the README says so.
    over = write_wheel_with_payload(tmp_path / "over", "over-cap", "1.0", 7 * MIB, seed=2)
    raw = http.post(
        f"{index.url}/",
        auth=ALICE,
        data={":action": "file_upload", "name": "over-cap", "version": "1.0"},
        files={"content": (over.name, over.read_bytes())},
    )
    assert raw.status_code == 413 and "stratus upload" not in raw.text
    # And `stratus upload` takes both.
    client = uploader(index, tmp_path)
    assert client.upload(near) == f"{near.name}: published"
    assert client.upload(over) == f"{over.name}: published"


# --- locally, end to end with the real command -----------------------------------------------


@pytest.mark.slow
def test_stratus_upload_and_pip_install_on_stratus_serve(tmp_path: Path) -> None:
    config = tmp_path / "stratus.ini"
    config.write_text(
        SAMPLE_CONFIG.read_text().replace(
            "[app:main]\n",
            "[app:main]\npypi.upload_multipart_threshold = 8388608\n"
            "pypi.upload_part_size = 5242880\n",
        )
    )
    small = write(tmp_path / "dist", wheel_bytes("small-lib", "1.0"))
    large = write_wheel_with_payload(tmp_path / "dist", "large-lib", "1.0", 12 * MIB, seed=3)
    with running_serve(config, tmp_path / "data", tmp_path / "serve.log") as url:
        command = [
            str(BIN / "stratus"),
            "upload",
            "--repository-url",
            f"{url}/",
            "--state-dir",
            str(tmp_path / "state"),
            "--no-progress",
            str(tmp_path / "dist" / "*"),
        ]
        env_auth = {"TWINE_USERNAME": ALICE[0], "TWINE_PASSWORD": ALICE[1]}
        first = run_with_env(command, env_auth, tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"{small.name}: published" in first.stdout
        assert f"{large.name}: published" in first.stdout
        index = Index("serve", url, tmp_path / "data")
        assert listed(index, "large-lib") == {large.name: sha(large)}
        # The parts went to the local server's upload URLs, not through the legacy API.
        assert (tmp_path / "data" / "files" / "packages" / "large-lib" / large.name).is_file()

        again = run_with_env(command, env_auth, tmp_path)
        assert again.returncode == 1 and "already exists" in again.stderr
        skip = run_with_env([*command, "--skip-existing"], env_auth, tmp_path)
        assert skip.returncode == 0 and "skipped" in skip.stdout

        target = pip_install(index, tmp_path, "small-lib", "large-lib")
        assert (target / "large_lib" / "payload.bin").stat().st_size == 12 * MIB


def run_with_env(
    command: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    import os

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run(command, cache=tmp_path / "cache")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- large files complete in the background (the completion function on its queue) ----------


@pytest.fixture
def start_lambda_with_worker(
    start_lambda: Callable[..., Index], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[Index, QueuePoller]]]:
    """The Lambda deployment whose large completions (above 1 MiB here; parts of 5 MiB
    above 8 MiB) go to a queue on the moto server, polled for the completion function as
    Lambda's SQS event source does."""
    import stratus.handlers.upload_completion as completion

    pollers: list[QueuePoller] = []

    def start(**env: str) -> tuple[Index, QueuePoller]:
        context = FakeLambdaContext(
            function_name="stratus-upload-completion",
            memory_limit_in_mb=1024,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:completion",
            aws_request_id="completion",
            timeout_seconds=900,
        )
        poller = QueuePoller(completion.handler, context)
        completion.container.reset()  # a new container
        index = start_lambda(
            STRATUS_UPLOAD_COMPLETION_QUEUE_URL=poller.queue_url,
            STRATUS_UPLOAD_ASYNC_COMPLETE_BYTES=str(MIB),
            STRATUS_UPLOAD_MULTIPART_THRESHOLD=str(8 * MIB),
            STRATUS_UPLOAD_PART_SIZE=str(5 * MIB),
            **env,
        )
        pollers.append(poller.__enter__())
        return index, poller

    yield start
    for poller in pollers:
        poller.__exit__()


def test_a_multipart_upload_completes_in_the_background_through_the_lambda_path(
    start_lambda_with_worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stratus.cli.upload

    monkeypatch.setattr(stratus.cli.upload, "MAX_PART_URLS", 2)  # URLs in 3 batches
    index, worker = start_lambda_with_worker()
    wheel = write_wheel_with_payload(tmp_path / "dist", "background", "1.0", 23 * MIB, seed=11)
    said: list[str] = []
    client = uploader(index, tmp_path, parallel=3, log=said.append)
    puts = count_puts(client)
    assert client.upload(wheel) == f"{wheel.name}: published"
    assert len(puts) == 5 and all("partNumber=" in url for url in puts)  # > 1 part
    numbers = sorted(int(url.split("partNumber=")[1].split("&")[0]) for url in puts)
    assert numbers == [1, 2, 3, 4, 5]  # each part once, across the batches
    assert f"{wheel.name}: the index is checking the file" in said
    assert len(worker.invocations) == 1 and worker.errors == []
    assert listed(index, "background") == {wheel.name: sha(wheel)}


def session_of(index: Index, wheel: Path, sha256: str) -> dict[str, Any]:
    """A session for ``wheel`` with its parts sent (by hand, as a client would)."""
    doc = create_session(index, wheel, sha256)
    count = doc["parts"]["count"]
    urls = http.post(
        doc["urls"]["part-urls"], auth=ALICE, json={"parts": list(range(1, count + 1))}
    )
    data = wheel.read_bytes()
    for part in urls.json()["parts"]:
        start = (part["number"] - 1) * doc["parts"]["size"]
        body = data[start : start + part["size"]]
        assert http.put(part["url"], content=body, headers=part["headers"]).status_code == 200
    return doc


def completed(doc: dict[str, Any]) -> dict[str, Any]:
    """POST complete (202: checked in the background), then poll the session to its end."""
    response = http.post(doc["urls"]["complete"], auth=ALICE)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == doc["urls"]["session"]
    status = response.json()
    deadline = time.monotonic() + 120
    while status["status"] == "processing":
        assert time.monotonic() < deadline, f"still processing after 120 s: {status}"
        time.sleep(0.1)
        status = http.get(response.headers["location"], auth=ALICE).json()
    return status


def test_a_wrong_sha256_fails_in_the_background_through_the_lambda_path(
    start_lambda_with_worker, tmp_path: Path
) -> None:
    index, _ = start_lambda_with_worker()
    wheel = write_wheel_with_payload(tmp_path / "dist", "tampered_big", "1.0", 11 * MIB, seed=12)
    doc = session_of(index, wheel, "0" * 64)
    status = completed(doc)
    assert (status["status"], status["error-status"]) == ("error", 400)
    assert "sha256 digest" in status["message"]
    assert http.get(f"{index.url}/simple/tampered-big/", auth=ALICE).status_code == 404
    again = http.post(doc["urls"]["complete"], auth=ALICE)  # the same answer, recorded
    assert again.status_code == 400 and "sha256 digest" in again.text


def test_a_background_completion_and_a_legacy_upload_give_one_success(
    start_lambda_with_worker, tmp_path: Path
) -> None:
    index, _ = start_lambda_with_worker()
    big = write_wheel_with_payload(tmp_path / "big", "contested", "1.0", 11 * MIB, seed=13)
    small = write_wheel_with_payload(tmp_path / "small", "contested", "1.0", MIB, seed=14)
    assert big.name == small.name
    doc = session_of(index, big, sha(big))

    def legacy() -> int:
        return http.post(
            f"{index.url}/",
            auth=ALICE,
            data={":action": "file_upload", "name": "contested", "version": "1.0"},
            files={"content": (small.name, small.read_bytes())},
        ).status_code

    session_end, legacy_status = run_concurrently([lambda: completed(doc), legacy])
    assert isinstance(session_end, dict) and legacy_status in (200, 409), (
        session_end,
        legacy_status,
    )
    outcomes = [session_end["status"] == "published", legacy_status == 200]
    assert outcomes.count(True) == 1, (session_end, legacy_status)
    if legacy_status == 200:
        assert (session_end["status"], session_end["error-status"]) == ("error", 409)
    winner = big if session_end["status"] == "published" else small
    assert listed(index, "contested") == {big.name: sha(winner)}
