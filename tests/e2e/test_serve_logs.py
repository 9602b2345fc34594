"""`stratus serve` as an operator sees it: an access-log line per request on stdout, and
the audit trail in ``<data-dir>/audit.log`` (also echoed to stdout)."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.distributions import wheel_bytes

from .conftest import SAMPLE_CONFIG, running_serve


def test_access_log_and_audit_file(tmp_path) -> None:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    filename, body = wheel_bytes("logged-lib", "1.0")
    with running_serve(SAMPLE_CONFIG, data, log, log_level="info") as url:
        listing = httpx.get(f"{url}/simple/", auth=("bob", "bob-secret"))
        assert listing.status_code == 200
        stored = httpx.post(
            f"{url}/",
            auth=("alice", "alice-secret"),
            data={":action": "file_upload", "name": "logged-lib", "version": "1.0"},
            files={"content": (filename, body)},
        )
        assert stored.status_code == 200, stored.text
        deadline = time.monotonic() + 10
        while "POST /" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    output = log.read_text()
    assert f'"GET /simple/" 200 {len(listing.content)} ' in output
    assert "user=bob" in output and listing.headers["x-request-id"] in output
    assert '"POST /" 200' in output and "user=alice" in output
    (record,) = [json.loads(line) for line in (data / "audit.log").read_text().splitlines()]
    assert record["action"] == "upload" and record["target"] == f"logged-lib/{filename}"
    assert record["actor"] == "alice" and record["source"] == "127.0.0.1"
    assert "stratus.audit" in output  # echoed to stdout too
