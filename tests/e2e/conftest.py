"""The two deployments under test, each as a URL real clients talk to.

- ``serve``: ``stratus serve`` as a subprocess (files on disk, SQLite).
- ``lambda``: the real Mangum handler ``stratus.handlers.api.handler`` behind the local
  API Gateway (HTTP API, payload v2) on DynamoDB Local + moto server (S3).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.apigw import LocalHttpApi
from tests.support.processes import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "examples" / "stratus.ini"
BIN = Path(sys.executable).parent


@dataclass
class Index:
    kind: str
    url: str  # base URL without trailing slash
    data_dir: Path | None = None

    def simple(self, user: str | None = None, password: str | None = None) -> str:
        if user is None:
            return f"{self.url}/simple/"
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://{user}:{password}@{rest}/simple/"


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy")


@contextlib.contextmanager
def running_serve(
    config: Path,
    data: Path,
    log: Path,
    *extra: str,
    log_level: str = "warning",
    command: Path = BIN / "stratus",
) -> Iterator[str]:
    """`stratus serve` as a subprocess on a free port (``extra``: more options; ``command``:
    another installation's ``stratus``); yields its base URL."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(command),
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--config",
                str(config),
                "--log-level",
                log_level,
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process)
            yield url
        finally:
            stop(process)


@pytest.fixture
def serve_index(tmp_path) -> Iterator[Index]:
    data = tmp_path / "data"
    with running_serve(SAMPLE_CONFIG, data, tmp_path / "serve.log") as url:
        yield Index("serve", url, data)


@pytest.fixture
def lambda_index(dynamo_table, s3_bucket, monkeypatch) -> Iterator[Index]:
    monkeypatch.setenv("STRATUS_TABLE_NAME", dynamo_table)
    monkeypatch.setenv("STRATUS_BUCKET_NAME", s3_bucket)
    monkeypatch.setenv("STRATUS_CONFIG", str(SAMPLE_CONFIG))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    import stratus.handlers.api as api

    monkeypatch.setattr(api, "_asgi_handler", None)  # a new "container" per test
    with LocalHttpApi(api.handler) as gateway:
        yield Index("lambda", gateway.url.rstrip("/"))


@pytest.fixture(params=["serve", "lambda"])
def index(request) -> Index:
    return request.getfixturevalue(f"{request.param}_index")
