"""The dependency layer: its lock, its build script, and synth refusing a missing layer."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from .conftest import REPO_ROOT

LAYERS = REPO_ROOT / "layers"
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
# Listed in requirements.in (the app imports it) but provided by the runtime (with botocore),
# so the lock leaves it out (layers/build.py RUNTIME_PROVIDED).
NOT_LOCKED = {"urllib3"}


def _names(lines: list[str]) -> set[str]:
    return {Requirement(line).name.lower() for line in lines}


def test_layer_inputs_are_the_runtime_dependencies_minus_boto3():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {str(Requirement(r)) for r in project["dependencies"]}
    wanted = {r for r in wanted if Requirement(r).name.lower() not in RUNTIME_PROVIDED}
    lines = [
        line.strip()
        for line in (LAYERS / "requirements.in").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert {str(Requirement(line)) for line in lines} == wanted, (
        "layers/requirements.in must list pyproject's dependencies minus boto3; after "
        "editing it run: python layers/build.py --lock && python layers/build.py"
    )


def test_lock_is_complete_pinned_hashed_and_without_boto():
    text = (LAYERS / "requirements.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, flags=re.MULTILINE)
    names = {name.lower() for name, _ in pins}
    inputs = _names(
        [
            line
            for line in (LAYERS / "requirements.in").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    )
    assert inputs - NOT_LOCKED <= names
    assert not names & (RUNTIME_PROVIDED | NOT_LOCKED)
    # every pin carries at least one sha256 (pip --require-hashes)
    blocks = re.split(r"^(?=[A-Za-z0-9_.\-]+==)", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == len(pins)
    assert all("--hash=sha256:" in block for block in blocks)


def test_build_script_targets_lambda_python_and_arm64():
    source = (LAYERS / "build.py").read_text()
    for needle in (
        '"manylinux2014_aarch64"',
        "--only-binary=:all:",
        '"--implementation", "cp"',
        'PYTHON_VERSION = "3.12"',
        "--require-hashes",
        "--no-deps",
    ):
        assert needle in source


def test_built_layer_holds_the_dependencies_and_no_boto(built_layer):
    target = LAYERS / "build" / "python"
    for package in ("starlette", "mangum", "pynamodb", "aws_lambda_powertools", "multipart"):
        assert (target / package).is_dir(), package
    assert not any((target / name).exists() for name in RUNTIME_PROVIDED)
    # binary wheels for the Lambda platform, not for this machine
    binaries = [p.name for p in target.glob("_cffi_backend*.so")]
    assert binaries and all("aarch64" in name for name in binaries)


def test_synth_without_a_built_layer_says_how_to_build_it(monkeypatch, tmp_path):
    from infra import functions

    monkeypatch.setattr(functions, "LAYER_DIR", tmp_path / "missing")
    monkeypatch.setattr(functions, "LAYER_STAMP", tmp_path / "missing" / "STAMP")
    with pytest.raises(functions.LayerNotBuilt, match=r"python layers/build\.py"):
        functions.check_layer_built()


def test_a_stale_layer_is_refused(monkeypatch, tmp_path):
    from infra import functions

    (tmp_path / "python").mkdir()
    (tmp_path / "STAMP").write_text("0" * 64 + "\n")
    monkeypatch.setattr(functions, "LAYER_DIR", tmp_path)
    monkeypatch.setattr(functions, "LAYER_STAMP", tmp_path / "STAMP")
    with pytest.raises(functions.LayerNotBuilt):
        functions.check_layer_built()
