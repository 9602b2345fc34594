"""`stratus fetch` against a real `stratus serve` with ``fallback = cache`` in front of the
local upstream stand-in: each requirement is cached, with a progress line, a summary and
the reason of every failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stratus.adapters.sqlite_catalog import SqliteCatalog
from tests.e2e.conftest import BIN, SAMPLE_CONFIG, running_serve
from tests.support.upstream_server import UpstreamServer


@pytest.fixture
def upstream(tmp_path: Path):
    with UpstreamServer.running(tmp_path / "upstream") as server:
        yield server


def fetch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWINE_")}
    return subprocess.run(
        [str(BIN / "stratus"), "fetch", "--non-interactive", "--progress-seconds", "0", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "HOME": os.devnull, **(env or {})},
    )


def stored(data: Path, project: str) -> list[str]:
    return [r.filename for r in SqliteCatalog(data / "index.sqlite3").list_files(project)]


def test_fetch_requirements_with_progress(tmp_path: Path, upstream: UpstreamServer) -> None:
    upstream.add_wheel("app-lib", "1.0")
    upstream.add_wheel("app-lib", "2.0")
    upstream.add_wheel("dep-lib", "1.1")
    upstream.add_sdist("dep-lib", "1.1")
    upstream.add_wheel("pre-lib", "1.0rc1")
    config = tmp_path / "stratus.ini"
    config.write_text(
        SAMPLE_CONFIG.read_text()
        + f"\npypi.fallback = cache\npypi.fallback_base_url = {upstream.url}\n"
    )
    (tmp_path / "more.txt").write_text("dep-lib==1.1  # pinned\nnope-lib\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--index-url https://example.invalid/simple\napp-lib>=1\n-r more.txt\n")
    data = tmp_path / "data"
    with running_serve(config, data, tmp_path / "serve.log") as url:
        first = fetch(
            *("--repository-url", f"{url}/simple/", "-u", "bob", "-p", "bob-secret"),
            *("-r", str(requirements), "--no-wheel", "pre-lib"),
        )
        assert first.returncode == 1, first.stderr
        lines = first.stderr.splitlines()
        assert "fetched 1/4: app-lib>=1: app_lib-2.0-py3-none-any.whl (fetched)" in lines
        assert "fetched 2/4: dep-lib==1.1: dep_lib-1.1.tar.gz (fetched)" in lines  # --no-wheel
        assert any(line.startswith("failed 3/4: nope-lib: no file of nope-lib") for line in lines)
        assert any(line.startswith("failed 4/4: pre-lib: no file of pre-lib") for line in lines)
        assert "failed: pre-lib: no file of pre-lib" in first.stderr  # the summary's reasons
        assert first.stdout.strip() == "2 fetched (2 files), 2 failed"
        assert stored(data, "app-lib") == ["app_lib-2.0-py3-none-any.whl"]
        assert stored(data, "dep-lib") == ["dep_lib-1.1.tar.gz"]

        # Credentials from TWINE_*; pre-releases on request; both in one request (--batch).
        env = {"TWINE_USERNAME": "bob", "TWINE_PASSWORD": "bob-secret"}
        second = fetch(
            *("--repository-url", url, "--prerelease", "--batch", "5", "-q"),
            *("pre-lib", "app-lib==2.0"),
            env=env,
        )
        assert second.returncode == 0, second.stderr
        assert second.stderr == ""
        assert second.stdout.strip() == "2 fetched (2 files), 0 failed"
        assert stored(data, "pre-lib") == ["pre_lib-1.0rc1-py3-none-any.whl"]
        again = fetch("--repository-url", url, "app-lib==2.0", env=env)
        assert "app_lib-2.0-py3-none-any.whl (stored)" in again.stderr

        before = upstream.count()
        denied = fetch("--repository-url", url, "-u", "bob", "-p", "wrong", "app-lib", "dep-lib")
        assert denied.returncode == 1
        assert denied.stderr.count("401") >= 2  # every requirement, with the index's answer
        assert upstream.count() == before
