"""Contract of the UploadSessions port: SQLite (local) and DynamoDB (DynamoDB Local)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stratus.domain.errors import Conflict
from stratus.ports import UploadSession, UploadSessions
from tests.support.concurrency import run_concurrently


@pytest.fixture(params=["sqlite", "dynamo"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UploadSessions]:
    if request.param == "sqlite":
        from stratus.adapters.sqlite_upload_sessions import SqliteUploadSessions

        yield SqliteUploadSessions(tmp_path / "uploads.sqlite3")
    else:
        from stratus.adapters.dynamo_upload_sessions import DynamoUploadSessions

        yield DynamoUploadSessions(request.getfixturevalue("dynamo_table"))


def session(session_id: str = "s1", **changes: object) -> UploadSession:
    now = time.time()
    base = UploadSession(
        session_id=session_id,
        owner="alice",
        project="demo-pkg",
        display_name="Demo_Pkg",
        version="1.0",
        filename="demo_pkg-1.0-py3-none-any.whl",
        size=123_456_789_012,
        sha256="ab" * 32,
        staging_key=f"uploads/{session_id}/demo_pkg-1.0-py3-none-any.whl",
        created=now,
        expires=now + 3600.5,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_is_the_port(sessions: UploadSessions) -> None:
    assert isinstance(sessions, UploadSessions)


def test_create_get_round_trips_every_field(sessions: UploadSessions) -> None:
    full = session(
        part_size=64 * 1024 * 1024,
        multipart_id="2~abc.DEF_ghi",
        status="error",
        message="The sha256 digest does not match — ünïcode too",
        error_status=400,
        lease_until=1_700_000_000.25,
        revision=3,
    )
    sessions.create(full)
    assert sessions.get("s1") == full
    bare = session("s2", owner=None)
    sessions.create(bare)
    assert sessions.get("s2") == bare


def test_missing_and_expired_sessions_are_none(sessions: UploadSessions) -> None:
    assert sessions.get("nope") is None
    sessions.create(session(expires=time.time() - 1))
    assert sessions.get("s1") is None
    live = session("s2")
    sessions.create(live)
    assert sessions.get("s2", now=live.expires + 1) is None
    assert sessions.get("s2", now=live.expires - 1) == live


def test_create_refuses_an_existing_id(sessions: UploadSessions) -> None:
    sessions.create(session())
    with pytest.raises(Conflict):
        sessions.create(session(project="other"))
    assert sessions.get("s1").project == "demo-pkg"  # type: ignore[union-attr]


def test_update_is_conditional_on_the_revision(sessions: UploadSessions) -> None:
    sessions.create(session())
    read = sessions.get("s1")
    assert read is not None
    stored = sessions.update(replace(read, status="processing", lease_until=5.0))
    assert stored.revision == read.revision + 1
    assert sessions.get("s1") == stored
    with pytest.raises(Conflict):  # a stale copy
        sessions.update(replace(read, status="canceled"))
    assert sessions.get("s1").status == "processing"  # type: ignore[union-attr]
    with pytest.raises(Conflict):  # a session that does not exist
        sessions.update(session("ghost"))
    assert sessions.get("ghost") is None


def test_concurrent_updates_of_one_revision_have_one_winner(sessions: UploadSessions) -> None:
    for trial in range(3):
        sessions.create(session(f"race{trial}"))
        read = sessions.get(f"race{trial}")
        assert read is not None
        results = run_concurrently(
            [
                (lambda i=i, read=read: sessions.update(replace(read, message=f"writer {i}")))
                for i in range(6)
            ]
        )
        winners = [r for r in results if isinstance(r, UploadSession)]
        assert len(winners) == 1, results
        assert all(isinstance(r, Conflict) for r in results if r not in winners), results
        assert sessions.get(f"race{trial}") == winners[0]


def test_delete(sessions: UploadSessions) -> None:
    sessions.create(session())
    sessions.delete("s1")
    assert sessions.get("s1") is None
    sessions.delete("s1")  # absent: no error
    sessions.create(session())  # the id is free again


def test_dynamo_items_carry_the_ttl(request: pytest.FixtureRequest) -> None:
    import boto3

    from stratus.adapters.dynamo_upload_sessions import DynamoUploadSessions
    from stratus.adapters.table_schema import TTL_ATTRIBUTE

    table = request.getfixturevalue("dynamo_table")
    created = session()
    DynamoUploadSessions(table).create(created)
    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "UPLOAD#s1"}, "sk": {"S": "SESSION"}}
    )["Item"]
    assert int(item[TTL_ATTRIBUTE]["N"]) >= created.expires
