"""Real pip and uv through ``stratus serve`` with ``fallback = cache`` in front of a local
upstream: the first install fills the cache, later ones need no upstream at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import SAMPLE_CONFIG, running_serve
from tests.e2e.test_clients import BIN, pip, run
from tests.support.upstream_server import UpstreamServer

pytestmark = pytest.mark.slow


@pytest.fixture
def upstream(tmp_path: Path):
    with UpstreamServer.running(tmp_path / "upstream") as server:
        yield server


def test_pip_and_uv_through_the_cache(tmp_path: Path, upstream: UpstreamServer) -> None:
    upstream.add_wheel("app-lib", "1.0", requires_dist=("dep-lib>=1.1",))
    upstream.add_wheel("dep-lib", "1.0")
    upstream.add_wheel("dep-lib", "1.1", requires_python=">=3.8")
    upstream.add_wheel("dep-lib", "9.0", requires_python="<3")  # never for this Python
    config = tmp_path / "stratus.ini"
    config.write_text(
        SAMPLE_CONFIG.read_text()
        + f"\npypi.fallback = cache\npypi.fallback_base_url = {upstream.url}\n"
        "pypi.private_projects = internal-*\npypi.origin_lock = true\n"
    )
    with running_serve(config, tmp_path / "data", tmp_path / "serve.log") as url:
        index = url.replace("://", "://bob:bob-secret@") + "/simple/"
        first = pip(
            ["install", "--no-cache-dir", "--target", str(tmp_path / "t1"), "-i", index, "app-lib"],
            cache=tmp_path / "cache",
        )
        assert first.returncode == 0, first.stderr
        assert (tmp_path / "t1" / "dep_lib-1.1.dist-info").is_dir()
        upstream.down = True  # everything needed is stored now
        second = pip(
            ["install", "--no-cache-dir", "--target", str(tmp_path / "t2"), "-i", index, "app-lib"],
            cache=tmp_path / "cache",
        )
        assert second.returncode == 0, second.stderr
        uv = run(
            [
                str(BIN / "uv"),
                "pip",
                "install",
                "--target",
                str(tmp_path / "t3"),
                "--index-url",
                index,
                "app-lib",
            ],
            cache=tmp_path / "uv-cache",
        )
        assert uv.returncode == 0, uv.stderr
        upstream.down = False
        upstream.add_wheel("internal-tools", "6.6")  # a dependency-confusion attempt
        confused = pip(
            [
                "download",
                "--no-cache-dir",
                "-d",
                str(tmp_path / "d"),
                "-i",
                index,
                "internal-tools",
            ],
            cache=tmp_path / "cache",
        )
        assert confused.returncode != 0
        assert upstream.count("/simple/internal-tools/") == 0
