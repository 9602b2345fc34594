"""pip install as each user of pypicloud's §1.6.2 table, against `stratus serve`."""

from __future__ import annotations

import pytest

from tests.contract.access_backends import PASSWORDS
from tests.contract.access_backends.config import sample_ini
from tests.contract.test_access import TABLE
from tests.support.distributions import wheel_bytes, write

from .conftest import BIN, running_serve
from .test_clients import pip, run

pytestmark = pytest.mark.slow


@pytest.fixture
def sample_server(tmp_path):
    config = tmp_path / "sample.ini"
    config.write_text(sample_ini())
    with running_serve(config, tmp_path / "d", tmp_path / "serve.log") as url:
        yield url


def test_pip_install_follows_the_manual_table(sample_server, tmp_path):
    dist = tmp_path / "dist"
    files = [str(write(dist, wheel_bytes(p, "1.0"))) for p in TABLE["dsa"]]
    up = run(
        [
            str(BIN / "twine"),
            "upload",
            "--repository-url",
            f"{sample_server}/",
            "-u",
            "admin",
            "-p",
            PASSWORDS["admin"],
            "--disable-progress-bar",
            *files,
        ],
        cache=tmp_path / "cache",
    )
    assert up.returncode == 0, up.stdout + up.stderr
    host = sample_server.split("://", 1)[1]
    for user, expected in TABLE.items():
        prefix = f"{user}:{PASSWORDS[user]}@" if user else ""
        for project, perms in expected.items():
            result = pip(
                [
                    "install",
                    "--no-cache-dir",
                    "--no-deps",
                    "--dry-run",
                    "--ignore-installed",
                    "--index-url",
                    f"http://{prefix}{host}/simple/",
                    project,
                ],
                cache=tmp_path / "cache",
            )
            assert (result.returncode == 0) == ("r" in perms), (user, project, result.stderr)
