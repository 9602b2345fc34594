"""`npx cdk synth` through the pinned CLI (package.json: aws-cdk), as a deployer runs it.

Marked ``cdk_cli`` (deselect with ``-m 'not cdk_cli'``); CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, STACKS

pytestmark = pytest.mark.cdk_cli


def test_pinned_cli_synthesizes_every_stack(built_layer, tmp_path):
    cli = REPO_ROOT / "node_modules" / "aws-cdk" / "package.json"
    if not cli.is_file():
        npm = shutil.which("npm")
        assert npm, "the pinned CDK CLI needs Node.js and npm (npm ci at the repo root)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=REPO_ROOT, check=True)
    pinned = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert json.loads(cli.read_text())["version"] == pinned
    env = {
        **os.environ,
        # cdk.json runs `python3 infra/app.py`: the interpreter running the tests.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in STACKS:
        template = json.loads((tmp_path / f"Stratus{name}.template.json").read_text())
        assert template["Resources"]
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert not any(plugin.get("violations") for plugin in report["pluginReports"])
