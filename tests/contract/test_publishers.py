"""Contract suite for the trusted-publishing ports (TrustedPublishers, ReplayGuard,
MintedTokens): SQLite (local mode) and DynamoDB (DynamoDB Local, Scan forbidden)."""

from __future__ import annotations

import pytest

from stratus.adapters.dynamo_publishers import DynamoPublishers
from stratus.adapters.sqlite_publishers import SqlitePublishers
from stratus.domain.errors import Conflict, NotFound
from stratus.domain.oidc import TrustedPublisher
from stratus.ports import MintedTokens, ReplayGuard, TokenRecord, TrustedPublishers
from tests.contract.access_backends.dynamo import forbid_scan, new_table
from tests.support.concurrency import run_concurrently


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "dynamo"])
def store(request, tmp_path):
    clock = Clock()
    if request.param == "sqlite":
        adapter = SqlitePublishers(tmp_path / "oidc.sqlite3", clock=clock)
    else:
        forbid_scan(request)
        adapter = DynamoPublishers(new_table(request), clock=clock)
    adapter.test_clock = clock
    return adapter


def publisher(project="widget", publisher_id="p1", lookup="acme/widget", **changes):
    values = {
        "publisher_id": publisher_id,
        "project": project,
        "issuer": "github",
        "claims": {"repository": "acme/widget", "workflow": "release.yml"},
        "lookup": lookup,
        "pending": False,
        "created": 1_700_000_000.0,
        "created_by": "alice",
    }
    values.update(changes)
    return TrustedPublisher(**values)


def test_implements_the_three_ports(store):
    assert isinstance(store, TrustedPublishers)
    assert isinstance(store, ReplayGuard)
    assert isinstance(store, MintedTokens)


# --- TrustedPublishers ---


def test_add_get_list_round_trip(store):
    first = publisher(claims={"repository": "acme/widget", "workflow": "r.yml", "environment": "x"})
    store.add_publisher(first)
    store.add_publisher(publisher(publisher_id="p0", pending=True))
    store.add_publisher(publisher(project="other", publisher_id="p9"))
    assert store.get_publisher("widget", "p1") == first
    assert store.get_publisher("widget", "nope") is None
    assert store.get_publisher("other", "p1") is None
    assert [p.publisher_id for p in store.list_publishers("widget")] == ["p0", "p1"]
    assert store.list_publishers("widget")[0].pending is True
    assert store.list_publishers("nothing") == []


def test_add_twice_is_a_conflict_and_changes_nothing(store):
    store.add_publisher(publisher())
    with pytest.raises(Conflict):
        store.add_publisher(publisher(created_by="mallory"))
    assert store.get_publisher("widget", "p1").created_by == "alice"
    assert len(store.find_publishers("github", "acme/widget")) == 1


def test_concurrent_adds_of_one_publisher_give_one_success(store):
    results = run_concurrently([lambda: store.add_publisher(publisher())] * 6)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)


def test_find_publishers_across_projects_by_issuer_and_lookup(store):
    store.add_publisher(publisher(project="a", publisher_id="x"))
    store.add_publisher(publisher(project="b", publisher_id="y"))
    store.add_publisher(publisher(project="c", publisher_id="z", lookup="acme/other"))
    store.add_publisher(publisher(project="d", publisher_id="w", issuer="gitlab"))
    found = store.find_publishers("github", "acme/widget")
    assert [(p.project, p.publisher_id) for p in found] == [("a", "x"), ("b", "y")]
    assert store.find_publishers("github", "ACME/widget") == []  # callers normalize
    assert [p.project for p in store.find_publishers("gitlab", "acme/widget")] == ["d"]


def test_activate_makes_a_pending_publisher_regular_everywhere(store):
    store.add_publisher(publisher(pending=True))
    store.activate_publisher("widget", "p1")
    assert store.get_publisher("widget", "p1").pending is False
    assert store.find_publishers("github", "acme/widget")[0].pending is False
    store.activate_publisher("widget", "p1")  # idempotent
    with pytest.raises(NotFound):
        store.activate_publisher("widget", "gone")


def test_delete_removes_both_views(store):
    store.add_publisher(publisher())
    removed = store.delete_publisher("widget", "p1")
    assert removed is not None and removed.publisher_id == "p1"
    assert store.get_publisher("widget", "p1") is None
    assert store.find_publishers("github", "acme/widget") == []
    assert store.delete_publisher("widget", "p1") is None
    store.add_publisher(publisher())  # the id is free again


# --- ReplayGuard ---


def test_first_use_once_until_expiry(store):
    now = store.test_clock.now
    assert store.first_use("k1", now + 60) is True
    assert store.first_use("k1", now + 60) is False
    assert store.first_use("k2", now + 60) is True
    assert store.first_use("k1", now + 200, now=now + 61) is True  # expired: new again
    assert store.first_use("k1", now + 300, now=now + 62) is False


def test_concurrent_first_uses_of_one_key_give_one_success(store):
    expires = store.test_clock.now + 300
    results = run_concurrently([lambda: store.first_use("jti-x", expires)] * 8)
    assert sorted(results) == [False] * 7 + [True]


# --- MintedTokens ---


def minted(token_id="oidcabc", **changes) -> TokenRecord:
    values = {
        "token_id": token_id,
        "username": "oidc:github:acme/widget",
        "name": "OIDC github acme/widget",
        "secret_sha256": "cd" * 32,
        "created": 1_700_000_000.0,
        "expires": 1_700_000_900.0,
        "projects": ["a", "widget"],
        "upload_only": True,
    }
    values.update(changes)
    return TokenRecord(**values)


def test_minted_token_round_trip_with_claims(store):
    record = minted()
    claims = {"repository": "acme/widget", "sha": "0123", "jti": "j"}
    store.add_minted_token(record, claims)
    assert store.get_minted_token("oidcabc") == record
    assert store.minted_token_claims("oidcabc") == claims
    assert store.get_minted_token("oidcnope") is None
    with pytest.raises(Conflict):
        store.add_minted_token(minted(username="someone-else"), {})


def test_minted_token_is_gone_once_expired(store):
    store.add_minted_token(minted(), {})
    store.test_clock.now = 1_700_000_899.0
    assert store.get_minted_token("oidcabc") is not None
    store.test_clock.now = 1_700_000_900.0
    assert store.get_minted_token("oidcabc") is None


def test_minted_token_must_expire(store):
    with pytest.raises(ValueError):
        store.add_minted_token(minted(expires=None), {})


def test_revoked_minted_token_is_unusable_but_still_audited(store):
    store.add_minted_token(minted(), {"sha": "0123"})
    store.revoke_minted_token("oidcabc")
    store.revoke_minted_token("oidcabc")
    store.revoke_minted_token("oidcunknown")
    assert store.get_minted_token("oidcabc") is None
    assert store.minted_token_claims("oidcabc") == {"sha": "0123"}
