"""Real twine, pip and uv as subprocesses against both deployments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.distributions import sdist_bytes, wheel_bytes, write

from .conftest import BIN, Index

pytestmark = pytest.mark.slow

ALICE = ("alice", "alice-secret")  # uploader/admin of examples/stratus.ini
BOB = ("bob", "bob-secret")  # reader


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(kwargs.pop("cache")),
        "TWINE_NON_INTERACTIVE": "1",
    }
    env.pop("PIP_INDEX_URL", None)
    env.pop("PIP_EXTRA_INDEX_URL", None)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, **kwargs)
    print(" ".join(cmd), "\n", result.stdout, result.stderr)
    return result


def pip(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pip", *args], **kwargs)


def twine_upload(
    index: Index, files: list[Path], user, tmp_path, *extra: str
) -> subprocess.CompletedProcess:
    return run(
        [
            str(BIN / "twine"),
            "upload",
            "--repository-url",
            f"{index.url}/",
            "-u",
            user[0],
            "-p",
            user[1],
            "--disable-progress-bar",
            *extra,
            *map(str, files),
        ],
        cache=tmp_path / "cache",
    )


@pytest.fixture
def dists(tmp_path) -> dict[str, Path]:
    out = tmp_path / "dist"
    return {
        "app_wheel": write(
            out,
            wheel_bytes(
                "Demo_App", "1.0", requires_dist=("dep-lib>=1.0",), requires_python=">=3.8"
            ),
        ),
        "app_sdist": write(out, sdist_bytes("Demo_App", "1.0", requires_dist=("dep-lib>=1.0",))),
        "dep_wheel": write(out, wheel_bytes("dep-lib", "1.2")),
    }


def test_twine_pip_uv_round_trip(index: Index, dists, tmp_path):
    up = twine_upload(index, list(dists.values()), ALICE, tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr

    # pip install resolves the dependency from the index, as a reader.
    target = tmp_path / "pip-target"
    installed = pip(
        [
            "install",
            "--no-cache-dir",
            "--target",
            str(target),
            "--index-url",
            index.simple(*BOB),
            "demo-app",
        ],
        cache=tmp_path / "cache",
    )
    assert installed.returncode == 0, installed.stderr
    assert (target / "demo_app" / "__init__.py").read_text() == "VERSION = '1.0'\n"
    assert (target / "dep_lib" / "__init__.py").exists()

    # pip download of the sdist (built offline by its in-tree backend).
    dl = tmp_path / "pip-download"
    down = pip(
        [
            "download",
            "--no-cache-dir",
            "--no-binary",
            ":all:",
            "--no-deps",
            "-d",
            str(dl),
            "--index-url",
            index.simple(*BOB),
            "demo-app==1.0",
        ],
        cache=tmp_path / "cache",
    )
    assert down.returncode == 0, down.stderr
    assert (dl / "demo_app-1.0.tar.gz").read_bytes() == dists["app_sdist"].read_bytes()

    # uv pip install with the dependency.
    uv_target = tmp_path / "uv-target"
    uv = run(
        [
            str(BIN / "uv"),
            "pip",
            "install",
            "--python",
            sys.executable,
            "--target",
            str(uv_target),
            "--index-url",
            index.simple(*BOB),
            "demo-app",
        ],
        cache=tmp_path / "uv-cache",
    )
    assert uv.returncode == 0, uv.stderr
    assert (uv_target / "demo_app" / "__init__.py").exists()
    assert (uv_target / "dep_lib" / "__init__.py").exists()


def test_twine_duplicate_is_409_and_bad_credentials_401(index: Index, dists, tmp_path):
    first = twine_upload(index, [dists["dep_wheel"]], ALICE, tmp_path)
    assert first.returncode == 0, first.stderr
    again = twine_upload(index, [dists["dep_wheel"]], ALICE, tmp_path)
    assert again.returncode != 0
    assert "409" in again.stdout + again.stderr
    wrong = twine_upload(index, [dists["app_wheel"]], ("alice", "nope"), tmp_path)
    assert wrong.returncode != 0
    assert "401" in wrong.stdout + wrong.stderr
    reader = twine_upload(index, [dists["app_wheel"]], BOB, tmp_path)
    assert reader.returncode != 0
    assert "403" in reader.stdout + reader.stderr


def test_twine_recognises_a_duplicate_as_already_existing(index: Index, dists, tmp_path):
    """twine's --skip-existing test (``skip_upload``) on Stratus' real duplicate answer.

    twine itself refuses ``--skip-existing`` for any repository but PyPI and TestPyPI
    (``UnsupportedConfiguration``; the README says so), so its check is run on the
    response its own ``Repository.upload`` gets from Stratus.
    """
    from twine.commands.upload import skip_upload
    from twine.package import PackageFile
    from twine.repository import Repository

    first = twine_upload(index, [dists["dep_wheel"]], ALICE, tmp_path)
    assert first.returncode == 0, first.stderr
    refused = twine_upload(index, [dists["dep_wheel"]], ALICE, tmp_path, "--skip-existing")
    assert "UnsupportedConfiguration" in refused.stdout + refused.stderr

    repository = Repository(f"{index.url}/", *ALICE, disable_progress_bar=True)
    try:
        package = PackageFile.from_filename(str(dists["dep_wheel"]), comment=None)
        response = repository.upload(package)
    finally:
        repository.close()
    assert response.status_code == 409
    assert skip_upload(response, True, package)


def test_pip_uses_pep658_metadata(index: Index, dists, tmp_path):
    assert (
        twine_upload(index, [dists["app_wheel"], dists["dep_wheel"]], ALICE, tmp_path).returncode
        == 0
    )
    report = tmp_path / "report.json"
    installed = pip(
        [
            "install",
            "--dry-run",
            "--no-cache-dir",
            "--ignore-installed",
            "--report",
            str(report),
            "--index-url",
            index.simple(*BOB),
            "demo-app",
        ],
        cache=tmp_path / "cache",
    )
    assert installed.returncode == 0, installed.stderr
    import json

    installs = {i["metadata"]["name"]: i for i in json.loads(report.read_text())["install"]}
    assert set(installs) == {"Demo_App", "dep-lib"}
    # A dry run that resolved through PEP 658 never downloads the wheel itself.
    assert "demo_app-1.0-py3-none-any.whl.metadata" in installed.stdout
