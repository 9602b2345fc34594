"""A real pypiserver process (PyPI package ``pypiserver``) serving a folder of files.

It speaks PEP 503 HTML only (with ``#sha256=`` fragments), so it is the upstream of the
tests for upstreams that do not speak PEP 691 JSON. No fallback to pypi.org, no auth.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, stop

STARTUP_TIMEOUT = 30.0


@contextlib.contextmanager
def running_pypiserver(root: Path) -> Iterator[str]:
    """Serve ``root`` (wheels and sdists put there) and yield the server's base URL."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("pypi-server")),
        "run",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--authenticate", ".",
        "--passwords", ".",
        "--disable-fallback",
        "--hash-algo", "sha256",
        "--backend", "simple-dir",
        str(root),
    ]  # fmt: skip
    log = root.parent / f"pypiserver-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"{url}/simple/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pypiserver did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        stop(process)
