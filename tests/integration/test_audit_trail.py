"""Every security-relevant request leaves one audit record (who, from where, what, result),
allowed or refused; every request gets an id and, on the local server, an access-log line."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stratus.adapters.file_audit import FileAuditLog
from stratus.domain.audit import AuditEvent
from stratus.web.app import create_app
from tests.integration.conftest import auth, make_services
from tests.integration.test_simple_api import upload
from tests.support.distributions import wheel_bytes


@pytest.fixture
def audited(request, tmp_path: Path):
    services = make_services("local", request, tmp_path)
    services.audit = FileAuditLog(tmp_path / "audit.log", echo=False)
    with TestClient(create_app(services, access_log=True), follow_redirects=False) as client:
        yield client, services.audit


def records(log: FileAuditLog) -> list[AuditEvent]:
    return log.recent(100)


def test_uploads_allowed_and_refused_are_recorded(audited) -> None:
    client, log = audited
    built = wheel_bytes("secret-lib", "1.0")
    assert upload(client, built, "alice").status_code == 200
    assert upload(client, built, "alice").status_code == 409
    assert upload(client, wheel_bytes("secret-lib", "1.1"), "bob").status_code == 403

    ok, duplicate, refused = records(log)
    assert (ok.action, ok.actor, ok.result, ok.target) == (
        "upload",
        "alice",
        "ok",
        f"secret-lib/{built[0]}",
    )
    assert len(ok.detail["sha256"]) == 64 and ok.detail["status"] == 200
    assert ok.source == "testclient" and ok.request_id
    assert (duplicate.result, duplicate.detail["status"]) == ("failed", 409)
    assert (refused.actor, refused.result, refused.detail["status"]) == ("bob", "denied", 403)


def test_delete_yank_and_unyank_name_their_file(audited) -> None:
    client, log = audited
    filename, _ = built = wheel_bytes("secret-lib", "2.0")
    assert upload(client, built, "alice").status_code == 200
    base = f"/api/package/secret-lib/{filename}"
    assert client.post(f"{base}/yank", data={"reason": "x"}, headers=auth("alice")).is_success
    assert client.post(f"{base}/unyank", headers=auth("alice")).is_success
    assert client.delete(base, headers=auth("bob")).status_code in (403, 404)
    assert client.delete(base, headers=auth("alice")).is_success
    actions = [(e.action, e.actor, e.result, e.target) for e in records(log)[1:]]
    target = f"secret-lib/{filename}"
    assert actions == [
        ("yank", "alice", "ok", target),
        ("unyank", "alice", "ok", target),
        ("delete", "bob", "denied", target),
        ("delete", "alice", "ok", target),
    ]


def test_failed_logins_name_the_claimed_user_never_the_password(audited) -> None:
    client, log = audited
    wrong = base64.b64encode(b"carol:not-her-password").decode()
    answer = client.get("/simple/", headers={"Authorization": f"Basic {wrong}"})
    assert answer.status_code == 401
    (failure,) = records(log)
    assert (failure.action, failure.actor, failure.result) == ("login_failure", "carol", "denied")
    assert "not-her-password" not in failure.to_json()


def test_reads_leave_no_audit_record_but_get_a_request_id_and_an_access_line(
    audited, caplog: pytest.LogCaptureFixture
) -> None:
    client, log = audited
    with caplog.at_level(logging.INFO, logger="stratus.access"):
        answer = client.get("/simple/", headers=auth("bob"))
    assert answer.status_code == 200
    assert len(answer.headers["x-request-id"]) == 32
    assert records(log) == []
    (line,) = [r.getMessage() for r in caplog.records if r.name == "stratus.access"]
    assert '"GET /simple/" 200' in line
    assert f"{len(answer.content)} " in line
    assert "user=bob" in line and answer.headers["x-request-id"] in line


def test_admin_and_token_changes_are_recorded_with_their_target(audited) -> None:
    client, log = audited
    client.put("/admin/package/secret-lib/user/bob/read/", headers=auth("alice"))
    client.delete("/admin/user/carol/", headers=auth("alice"))
    client.put("/admin/group/devs", headers=auth("bob"))  # not an admin
    client.post("/api/tokens/", data={"name": "ci"}, headers=auth("carol"))
    got = [(e.action, e.actor, e.target, e.result) for e in records(log)]
    assert got == [
        # the sample backend is read-only: the change is refused, and recorded as such
        ("permission_change", "alice", "secret-lib", "failed"),
        ("user_delete", "alice", "user:carol", "failed"),
        ("group_change", "bob", "group:devs", "denied"),
        ("token_create", "carol", "/api/tokens/", "failed"),
    ]


def test_refusals_name_the_refused_action(audited) -> None:
    client, _ = audited
    filename, _ = built = wheel_bytes("secret-lib", "3.0")
    assert upload(client, built, "alice").status_code == 200
    base = f"/api/package/secret-lib/{filename}"
    bob = auth("bob")
    assert "may not delete in project 'secret-lib'" in client.delete(base, headers=bob).text
    assert "may not yank" in client.post(f"{base}/yank", headers=bob).text
    assert "may not unyank" in client.post(f"{base}/unyank", headers=bob).text
    refused = upload(client, wheel_bytes("secret-lib", "3.1"), "bob")
    assert "may not upload" in refused.text  # bob may upload nowhere: refused before the body
    assert "to delete" in client.delete(base).text  # anonymous: 401 says what it was for


def test_business_metrics_count_what_happened(request, tmp_path: Path) -> None:
    counts: dict[str, int] = {}

    class Sink:
        def count(self, name: str, value: int = 1) -> None:
            counts[name] = counts.get(name, 0) + value

    services = make_services("local", request, tmp_path)
    services.metrics = Sink()
    with TestClient(create_app(services), follow_redirects=False) as client:
        filename, _ = built = wheel_bytes("secret-lib", "4.0")
        assert upload(client, built, "alice").status_code == 200
        assert upload(client, built, "bob").status_code == 403
        get = client.get(f"/files/secret-lib/{filename}", headers=auth("alice"))
        assert get.status_code == 200
        wrong = base64.b64encode(b"alice:wrong").decode()
        client.get("/simple/", headers={"Authorization": f"Basic {wrong}"})
    assert counts == {"Upload": 1, "UploadDenied": 1, "Downloads": 1, "AuthFailures": 1}
