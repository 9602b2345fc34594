"""``/admin/rebuild/`` starts a reconcile run in the background: 202, a run id and a
status URL, never a run inside the request (API Gateway waits 30 s at most)."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from stratus.web.app import create_app
from stratus.wiring import services_local
from tests.support.distributions import wheel_bytes

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stratus.ini"
ALICE = ("alice", "alice-secret")


def test_local_rebuild_runs_in_the_background_and_reports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    services = services_local(data, SAMPLE)
    for name in ("one", "two"):
        filename, body = wheel_bytes(name, "1.0")
        services.storage.put(f"packages/{name}/{filename}", body)  # behind the index's back
    with TestClient(create_app(services)) as client:
        assert client.get("/admin/rebuild/", auth=("bob", "bob-secret")).status_code == 403
        started = client.post("/admin/rebuild/", auth=ALICE)
        assert started.status_code == 202, started.text
        body = started.json()
        assert body["state"] in ("queued", "running", "complete")
        assert body["status_url"].endswith(f"/admin/rebuild/{body['run_id']}/")
        deadline = time.monotonic() + 30
        while True:
            status = client.get(body["status_url"], auth=ALICE).json()
            if status["state"] == "complete" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status["state"] == "complete"
        assert (status["projects"], status["objects"], status["added"]) == (2, 2, 2)
        assert [p.name for p in services.catalog.list_projects()] == ["one", "two"]
        assert client.get("/admin/rebuild/unknown/", auth=ALICE).status_code == 404
        dry = client.get("/admin/rebuild/?dry_run=true", auth=ALICE).json()
        assert dry["dry_run"] is True
