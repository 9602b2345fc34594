"""Swagger UI at ``/docs`` renders in a real browser that can reach no host but the index."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import SAMPLE_CONFIG, running_serve

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="scripts/setup.sh installs chromium")
def test_swagger_ui_renders_offline(tmp_path):
    with running_serve(SAMPLE_CONFIG, tmp_path / "data", tmp_path / "serve.log") as url:
        dom = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path / 'profile'}",
                # Every other host fails to resolve: the page must need none.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    # Rendered operations (Swagger UI fetched openapi.json and built the page from it).
    assert 'data-path="/admin/user/{username}/"' in dom, dom[-2000:]
    assert 'data-path="/api/package/"' in dom
