"""Contract of the AuditLog port: a local JSON-lines file and CloudWatch Logs (moto server)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.adapters.cloudwatch_audit import CloudWatchAuditLog
from stratus.adapters.file_audit import FileAuditLog
from stratus.app.audit import Auditor
from stratus.domain.audit import AuditEvent
from stratus.ports import AuditLog

# CloudWatch Logs refuses events >2 h in the future or >14 days old: stay near now.
BASE = float(int(time.time()) - 3600)


@pytest.fixture
def log_group(moto_endpoint: str) -> Iterator[str]:
    import boto3

    client = boto3.client("logs", endpoint_url=moto_endpoint)
    name = f"/stratus/test/audit-{uuid.uuid4().hex[:8]}"
    client.create_log_group(logGroupName=name)
    try:
        yield name
    finally:
        client.delete_log_group(logGroupName=name)


@pytest.fixture(params=["file", "cloudwatch"])
def audit_log(request: pytest.FixtureRequest, tmp_path: Path) -> AuditLog:
    if request.param == "file":
        return FileAuditLog(tmp_path / "audit.log", echo=False)
    return CloudWatchAuditLog(request.getfixturevalue("log_group"))


def event(n: int, **changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "action": "upload",
        "actor": "alice",
        "source": "192.0.2.7",
        "target": f"demo/demo-{n}.0.tar.gz",
        "detail": {"sha256": "ab" * 32, "note": "ünïcode"},
        "time": BASE + n,
    }
    fields.update(changes)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_implements_the_port(audit_log: AuditLog) -> None:
    assert isinstance(audit_log, AuditLog)


def test_records_come_back_in_order_with_every_field(audit_log: AuditLog) -> None:
    written = [event(n) for n in range(5)]
    for e in written:
        audit_log.record(e)
    assert audit_log.recent(10, since=BASE - 60) == written


def test_recent_keeps_the_latest_and_honours_since(audit_log: AuditLog) -> None:
    for n in range(6):
        audit_log.record(event(n))
    assert [e.target for e in audit_log.recent(2, since=BASE - 60)] == [
        "demo/demo-4.0.tar.gz",
        "demo/demo-5.0.tar.gz",
    ]
    after_three = audit_log.recent(100, since=BASE + 3)
    assert [e.target for e in after_three] == ["demo/demo-4.0.tar.gz", "demo/demo-5.0.tar.gz"]


def test_empty_log(audit_log: AuditLog) -> None:
    assert audit_log.recent(5) == []


def test_unknown_action_or_result_is_refused() -> None:
    with pytest.raises(ValueError):
        event(1, action="made_up")
    with pytest.raises(ValueError):
        event(1, result="maybe")


def test_file_log_is_json_lines_and_reads_back_across_chunks(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit.log", echo=False)
    for n in range(3000):  # ~600 KB: several 64 KiB chunks read backwards
        log.record(event(n, detail={"pad": "x" * 100}))
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 3000
    assert json.loads(lines[0])["target"] == "demo/demo-0.0.tar.gz"
    latest = log.recent(1500)
    assert [e.target for e in latest] == [f"demo/demo-{n}.0.tar.gz" for n in range(1500, 3000)]


def test_auditor_survives_a_failing_backend(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def record(self, event: AuditEvent) -> None:
            raise OSError("disk full")

        def recent(self, limit: int = 100, *, since: float | None = None) -> list[AuditEvent]:
            return []

    audit = Auditor(Broken())
    audit("delete", actor="bob", source=None, target="demo/demo-1.0.tar.gz")
    assert "audit record lost" in caplog.text
    assert '"action":"delete"' in caplog.text


def test_auditor_records_through_the_port(tmp_path: Path) -> None:
    audit = Auditor(FileAuditLog(tmp_path / "audit.log", echo=False))
    before = time.time()
    audit("login_failure", actor="bob", source="198.51.100.1", target="user:bob", result="denied")
    (recorded,) = audit.recent(10)
    assert (recorded.action, recorded.actor, recorded.result) == ("login_failure", "bob", "denied")
    assert recorded.time >= before


def test_stratus_audit_command_prints_the_latest_records(tmp_path: Path, capsys) -> None:
    from stratus.cli.main import main

    log = FileAuditLog(tmp_path / "audit.log", echo=False)
    for n in range(4):
        log.record(event(n))
    assert main(["audit", "--data-dir", str(tmp_path), "-n", "2"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["target"] for p in printed] == ["demo/demo-2.0.tar.gz", "demo/demo-3.0.tar.gz"]
