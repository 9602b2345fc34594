"""Contracts of the fallback's state ports, on SQLite and DynamoDB (DynamoDB Local):
PageCache (upstream pages of any size) and OriginStore; FillLocks on DynamoDB, the one
backend that has them (local mode fills in the request: no queue, no locks)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from stratus.domain.origins import (
    BLOCK,
    LOCKED_BY_FILL,
    LOCKED_BY_UPLOAD,
    OriginControls,
)
from stratus.domain.upstream import UpstreamFile, UpstreamPage
from stratus.ports import FillLocks, OriginStore, PageCache
from tests.support.concurrency import run_concurrently

BACKENDS = ["sqlite", "dynamo"]


def _table_or_file(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    if request.param == "sqlite":
        return tmp_path / "index.sqlite3"
    return request.getfixturevalue("dynamo_table")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    return _table_or_file(request, tmp_path)


def page_cache(store: str | Path, mirror: str = "pypi.org") -> PageCache:
    if isinstance(store, Path):
        from stratus.adapters.sqlite_page_cache import SqlitePageCache

        return SqlitePageCache(store, mirror=mirror)
    from stratus.adapters.dynamo_page_cache import DynamoPageCache

    return DynamoPageCache(store, mirror=mirror)


@pytest.fixture
def locks(dynamo_table: str) -> FillLocks:
    from stratus.adapters.dynamo_page_cache import DynamoFillLocks

    return DynamoFillLocks(dynamo_table)


def origins(store: str | Path, index: str = "default") -> OriginStore:
    if isinstance(store, Path):
        from stratus.adapters.sqlite_origins import SqliteOrigins

        return SqliteOrigins(store, index=index)
    from stratus.adapters.dynamo_origins import DynamoOrigins

    return DynamoOrigins(store, index=index)


def upstream_file(i: int, project: str = "botocore") -> UpstreamFile:
    dist = project.replace("-", "_")
    return UpstreamFile(
        filename=f"{dist}-1.{i}.0-py3-none-any.whl",
        url=f"https://files.example/packages/{hashlib.sha256(b'%d' % i).hexdigest()}/"
        f"{dist}-1.{i}.0-py3-none-any.whl",
        version=f"1.{i}.0",
        sha256=hashlib.sha256(str(i).encode()).hexdigest(),
        requires_python=">=3.8" if i % 2 else None,
        yanked="broken" if i % 7 == 0 else None,
        has_metadata=bool(i % 3),
        metadata_sha256=hashlib.sha256(b"m%d" % i).hexdigest() if i % 3 == 1 else None,
        size=1000 + i,
        upload_time="2024-01-01T00:00:00.000000Z",
    )


def page(files: int, project: str = "botocore", **kwargs: object) -> UpstreamPage:
    return UpstreamPage(project, tuple(upstream_file(i, project) for i in range(files)), **kwargs)  # type: ignore[arg-type]


# --- PageCache -------------------------------------------------------------------------------


def test_page_cache_is_a_port(store) -> None:
    assert isinstance(page_cache(store), PageCache)
    assert isinstance(origins(store), OriginStore)


def test_page_round_trips(store) -> None:
    cache = page_cache(store)
    assert cache.get("botocore") is None
    stored = page(20, etag='"abc"', checked_at=1000.5)
    cache.put(stored)
    got = cache.get("botocore")
    assert got == stored
    assert got is not None and got.file(stored.files[3].filename) == stored.files[3]


def test_missing_upstream_project_round_trips(store) -> None:
    cache = page_cache(store)
    cache.put(UpstreamPage("nothing-here", exists=False, checked_at=5.0))
    got = cache.get("nothing-here")
    assert got is not None and not got.exists and got.files == ()


def test_a_10000_file_page_round_trips(store) -> None:
    """botocore-sized: ~1 MB compressed, several DynamoDB items."""
    cache = page_cache(store)
    big = page(10_000, etag='"big"', checked_at=7.0)
    cache.put(big)
    assert cache.get("botocore") == big


def test_replacing_a_page_replaces_it_whole(store) -> None:
    cache = page_cache(store)
    cache.put(page(10_000, checked_at=1.0))
    cache.put(page(3, checked_at=2.0))
    assert cache.get("botocore") == page(3, checked_at=2.0)
    cache.put(page(6_000, checked_at=3.0))
    assert cache.get("botocore") == page(6_000, checked_at=3.0)
    if isinstance(store, str):  # no chunks of replaced pages are left behind
        import boto3

        items = boto3.client("dynamodb").query(
            TableName=store,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "UPSTREAM#pypi.org#botocore"}},
        )["Items"]
        gens = {i["sk"]["S"].split("#")[1] for i in items if i["sk"]["S"].startswith("C#")}
        assert len(gens) == 1


def test_mark_checked_changes_only_the_time(store) -> None:
    cache = page_cache(store)
    cache.mark_checked("botocore", 9.0)  # nothing cached: no-op
    assert cache.get("botocore") is None
    cache.put(page(5, etag='"e"', checked_at=1.0))
    cache.mark_checked("botocore", 99.0)
    assert cache.get("botocore") == page(5, etag='"e"', checked_at=99.0)


def test_mirrors_and_projects_are_separate(store) -> None:
    pypi, other = page_cache(store, "pypi.org"), page_cache(store, "127.0.0.1:9000")
    pypi.put(page(2))
    pypi.put(page(1, project="boto3"))
    assert other.get("botocore") is None
    assert pypi.get("boto3") == page(1, project="boto3")


def test_concurrent_replaces_leave_one_whole_page(store) -> None:
    cache = page_cache(store)
    pages = [page(2_000 + 500 * i, checked_at=float(i)) for i in range(4)]

    def work(i: int) -> UpstreamPage | None:
        cache.put(pages[i])
        return cache.get("botocore")

    seen = run_concurrently([lambda i=i: work(i) for i in range(4)])
    assert not [s for s in seen if isinstance(s, Exception)]
    assert cache.get("botocore") in pages
    assert all(s is None or s in pages for s in seen)  # never a mixed page


# --- FillLocks -------------------------------------------------------------------------------


def test_fill_locks_are_a_port(locks: FillLocks) -> None:
    assert isinstance(locks, FillLocks)


def test_lock_is_held_until_released(locks: FillLocks) -> None:
    assert locks.acquire("pypi.org/demo/demo-1.0.whl", 60)
    assert not locks.acquire("pypi.org/demo/demo-1.0.whl", 60)
    assert locks.acquire("pypi.org/demo/demo-2.0.whl", 60)  # another key
    locks.release("pypi.org/demo/demo-1.0.whl")
    assert locks.acquire("pypi.org/demo/demo-1.0.whl", 60)
    locks.release("never-taken")  # no error


def test_expired_lock_can_be_taken(locks: FillLocks) -> None:
    assert locks.acquire("k", 0.5)
    time.sleep(1.6)  # DynamoDB's TTL attribute has whole seconds
    assert locks.acquire("k", 60)
    assert not locks.acquire("k", 60)


def test_concurrent_acquires_have_one_winner(locks: FillLocks) -> None:
    results = run_concurrently([lambda: locks.acquire("race", 60) for _ in range(8)])
    assert sorted(results, key=str) == [False] * 7 + [True]


# --- OriginStore -----------------------------------------------------------------------------


def test_origins_get_put(store) -> None:
    o = origins(store)
    assert o.get("demo") is None
    o.put("demo", OriginControls(upstream=BLOCK))
    assert o.get("demo") == OriginControls(upstream=BLOCK)
    o.put("demo", OriginControls(publish=BLOCK))
    assert o.get("demo") == OriginControls(publish=BLOCK)
    assert o.get("other") is None


def test_claim_stores_only_the_first(store) -> None:
    o = origins(store)
    assert o.claim("demo", LOCKED_BY_UPLOAD) == LOCKED_BY_UPLOAD
    assert o.claim("demo", LOCKED_BY_FILL) == LOCKED_BY_UPLOAD
    assert o.get("demo") == LOCKED_BY_UPLOAD
    o.put("demo", OriginControls())  # an admin unlocks
    assert o.claim("demo", LOCKED_BY_FILL) == OriginControls()


def test_concurrent_claims_agree(store) -> None:
    o = origins(store)
    wanted = [LOCKED_BY_UPLOAD if i % 2 else LOCKED_BY_FILL for i in range(8)]
    results = run_concurrently([lambda c=c: o.claim("race", c) for c in wanted])
    assert all(isinstance(r, OriginControls) for r in results)
    assert len(set(results)) == 1
    assert o.get("race") == results[0]


def test_origins_are_per_index(store) -> None:
    origins(store).put("demo", OriginControls(upstream=BLOCK))
    assert origins(store, "team/other").get("demo") is None
