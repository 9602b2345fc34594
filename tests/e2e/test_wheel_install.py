"""The wheel a publisher or admin installs: ``pip install stratus-index`` into a fresh venv
brings the ``stratus`` command and a working ``stratus serve`` without any AWS package;
what needs AWS says which extra to install. Its metadata is complete."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.distributions import wheel_bytes, write

from .conftest import ROOT, SAMPLE_CONFIG, running_serve

pytestmark = pytest.mark.slow  # builds a wheel and installs it with its deps (~20 s)

AWS_ONLY = ("boto3", "botocore", "pynamodb", "aws_lambda_powertools", "mangum", "ldap3")


def run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Without PYTHONPATH: a checkout on it (and its editable install's egg-info) would make
    # the fresh venv's pip think the wheel is installed already.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=check, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the built wheel, the bin directory of a fresh venv with only the wheel's core deps)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "functions" / "stratus",
        source / "functions" / "stratus",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    dist = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source)
    (wheel,) = dist.glob("stratus_index-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    return wheel, venv / "bin"


def test_the_core_install_has_no_aws_packages(installed):
    _, bin_dir = installed
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = run(bin_dir / "python", "-c", probe, *AWS_ONLY).stdout.strip()
    assert found == "[]"
    # ... and what the local commands need is there
    assert run(bin_dir / "python", "-c", "import uvicorn, fastapi, argon2, urllib3").returncode == 0


def test_version_and_help_list_every_command(installed):
    _, bin_dir = installed
    from stratus import __version__

    assert run(bin_dir / "stratus", "--version").stdout.strip() == f"stratus {__version__}"
    help_text = run(bin_dir / "stratus", "--help").stdout
    for command in ("serve", "upload", "hash-password", "import-acl", "export-acl", "rebuild"):
        assert f"\n    {command} " in help_text, command
    hashed = run(bin_dir / "stratus", "hash-password", "--password", "s3cret").stdout
    assert hashed.startswith("$argon2id$")


def test_commands_that_need_aws_name_the_extra(installed, tmp_path):
    _, bin_dir = installed
    result = subprocess.run(
        [str(bin_dir / "stratus"), "audit", "--aws"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "STRATUS_AUDIT_LOG_GROUP": "stratus-audit"},
    )
    assert result.returncode == 2
    assert "pip install 'stratus-index[aws]'" in result.stderr
    assert "Traceback" not in result.stderr
    config = tmp_path / "ldap.ini"
    config.write_text(
        "[app:main]\npypi.auth = ldap\nauth.ldap.url = ldap://127.0.0.1\n"
        "auth.ldap.user_dn_format = uid={username},dc=example\n"
    )
    result = run(
        bin_dir / "stratus", "serve", "--config", config, "--data-dir", tmp_path, check=False
    )
    assert result.returncode == 2
    assert "pip install 'stratus-index[ldap]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_upload_and_install_without_the_aws_extras(installed, tmp_path):
    _, bin_dir = installed
    with running_serve(
        SAMPLE_CONFIG, tmp_path / "data", tmp_path / "serve.log", command=bin_dir / "stratus"
    ) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        home = httpx.get(f"{url}/")  # the web UI: templates and static files are in the wheel
        assert home.status_code == 200 and "Stratus" in home.text
        assert httpx.get(f"{url}/static/stratus.css").status_code == 200
        built = write(tmp_path / "dist", wheel_bytes("wheel-probe", "1.0"))
        run(
            bin_dir / "stratus",
            "upload",
            "--repository-url",
            f"{url}/",
            "-u",
            "alice",
            "-p",
            "alice-secret",
            "--no-progress",
            built,
        )
        simple = httpx.get(f"{url}/simple/", auth=("alice", "alice-secret"))
        assert simple.status_code == 200 and "wheel-probe" in simple.text
        index = url.replace("http://", "http://alice:alice-secret@") + "/simple/"
        run(
            bin_dir / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--index-url",
            index,
            "wheel-probe==1.0",
        )
        assert run(bin_dir / "python", "-c", "import wheel_probe").returncode == 0


def test_wheel_metadata_is_complete(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(zf.read(name).decode())
        assert any(n.endswith("licenses/LICENSE") for n in zf.namelist())
    assert meta["Name"] == "stratus-index"
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.12"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Issues"} <= set(urls)
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.12" in classifiers
    assert any(c.startswith("Development Status") for c in classifiers)
    requires = meta.get_all("Requires-Dist")
    aws = [r for r in requires if r.startswith(("boto3", "pynamodb", "mangum", "aws-lambda"))]
    assert len(aws) == 4 and all('extra == "aws"' in r for r in aws)
    assert any(r.startswith("ldap3") and 'extra == "ldap"' in r for r in requires)
    assert any(r.startswith("uvicorn") and "extra ==" not in r for r in requires)
