"""Synthesize the CDK app once per session (with cdk-nag) and hand out its templates."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
for _path in (REPO_ROOT, REPO_ROOT / "functions"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# jsii prints a banner for a Node release it no longer supports; the CLI still works.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

STACKS = ("Storage", "Uploads", "Api", "Sync", "Reconcile", "Monitoring")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cdk_cli: runs the pinned CDK CLI (npx cdk synth); deselect with -m 'not cdk_cli'",
    )


def cdk_json_context() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def built_layer() -> None:
    """The dependency layer must exist for synth; build it if missing or stale."""
    from infra.functions import LayerNotBuilt, check_layer_built

    lock_path = Path(tempfile.gettempdir()) / "stratus-layer-build.lock"
    with open(lock_path, "w") as lock:  # one builder at a time (pytest-xdist workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            check_layer_built()
        except LayerNotBuilt:
            subprocess.run([sys.executable, str(REPO_ROOT / "layers" / "build.py")], check=True)
            check_layer_built()


@pytest.fixture(scope="session")
def synth(
    built_layer: None, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., dict[str, Any]]:
    """``synth(**context)`` → {stack name: (stack, template dict)}, cached per context."""
    import aws_cdk as cdk

    from infra.app import build_app

    cache: dict[str, dict[str, Any]] = {}

    def run(**overrides: Any) -> dict[str, Any]:
        key = json.dumps(overrides, sort_keys=True)
        if key not in cache:
            context = {**cdk_json_context(), **overrides}
            outdir = tmp_path_factory.mktemp("cdk.out")
            app = cdk.App(context=context, outdir=str(outdir))
            build_app(app)
            assembly = app.synth()
            cache[key] = {
                "app": app,
                "outdir": outdir,
                "stacks": {s.stack_name: s for s in assembly.stacks},
            }
        return cache[key]

    return run


@pytest.fixture(scope="session")
def default_synth(synth: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return synth()


@pytest.fixture(scope="session")
def templates(default_synth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"Storage": template, "Api": ..., ...} of the default settings."""
    return {name: default_synth["stacks"][f"Stratus{name}"].template for name in STACKS}


@pytest.fixture(scope="session")
def assertions(default_synth: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """{"Storage": aws_cdk.assertions.Template, ...}."""
    from aws_cdk.assertions import Template

    yield {
        name: Template.from_json(default_synth["stacks"][f"Stratus{name}"].template)
        for name in STACKS
    }
