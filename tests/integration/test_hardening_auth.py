"""Regression tests of issue 10 (outside review): privilege, authentication and AWS items.

One test per item, named after it, reproducing the attack; each fails if the hole
comes back. Items 8, 9 and 12-17 are in ``test_hardening_input.py``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from passlib.context import CryptContext
from passlib.hash import sha256_crypt, sha512_crypt

from stratus.adapters.config_access import ConfigAccess
from stratus.adapters.s3_storage import S3Storage
from stratus.adapters.sqlite_access import SqliteAccess
from stratus.app import accounts
from stratus.app.policy import AccessPolicy, BadCredentials
from stratus.app.throttle import TooManyAttempts
from stratus.app.tokens import TokenManager
from stratus.domain import passwords
from stratus.domain.errors import InvalidInput, NotFound, PermissionDenied
from stratus.settings import Settings
from stratus.wiring import services_local
from tests.contract.access_backends.dynamo import build_empty as empty_dynamo
from tests.support.concurrency import run_concurrently


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def cheap(password: str) -> str:
    return sha256_crypt.using(rounds=1000).hash(password)


@pytest.fixture
def store(tmp_path: Path) -> SqliteAccess:
    """A mutable backend (also the token store) with an admin ``root`` and a user ``dev``."""
    access = SqliteAccess(tmp_path / "access.sqlite3")
    access.create_user("root", cheap("root-pw"), admin=True)
    access.create_user("dev", cheap("dev-pw"))
    return access


@pytest.fixture
def policy(store: SqliteAccess) -> AccessPolicy:
    return AccessPolicy(store, Settings(), token_store=store)


@pytest.fixture
def manager(store: SqliteAccess) -> TokenManager:
    return TokenManager(store, store)


# --- 1. a scoped token of an admin is no admin credential ------------------------------


def test_h01_scoped_admin_token_not_admin(policy: AccessPolicy, manager: TokenManager):
    root = policy.identify(basic("root", "root-pw"))
    assert root.is_admin
    scoped, _ = manager.create(root, "ci", projects=["Lib_One"])
    full, _ = manager.create(root, "full")
    plain, record = manager.create(root, "no-admin", admin=False)
    assert "admin" not in record.capabilities

    via_scoped = policy.identify(basic("__token__", scoped))
    assert not via_scoped.is_admin  # the attack: this got the whole admin API
    assert via_scoped.admin_user  # ... but uploads within its scope as the admin would
    assert policy.can_write(via_scoped, "lib-one")
    assert not policy.can_write(via_scoped, "other-lib")
    assert policy.identify(basic("__token__", full)).is_admin
    via_plain = policy.identify(basic("root", plain))
    assert not via_plain.is_admin
    assert policy.can_write(via_plain, "any-lib") and policy.can_read(via_plain, "any-lib")
    # A token without admin rights cannot mint one with them, nor a token for others.
    with pytest.raises(PermissionDenied):
        manager.create(via_plain, "escalate", admin=True)
    with pytest.raises(PermissionDenied):
        manager.create(via_plain, "for-dev", owner="dev")
    child, _ = manager.create(via_plain, "child")
    assert not policy.identify(basic("__token__", child)).is_admin
    with pytest.raises(InvalidInput):
        manager.create(root, "scoped-admin", projects=["lib"], admin=True)


# --- 2. a token mints nothing wider than itself; scoped tokens manage no tokens ---------


def test_h02_token_cannot_widen_scope_or_expiry(policy: AccessPolicy, manager: TokenManager):
    dev = policy.identify(basic("dev", "dev-pw"))
    expiring, parent = manager.create(dev, "expiring", expires_in=600)
    via_expiring = policy.identify(basic("__token__", expiring))
    assert via_expiring.expires == parent.expires

    # The attack: an expiring token minted a token that never expires.
    _, child = manager.create(via_expiring, "child")
    assert child.expires is not None and child.expires <= parent.expires
    with pytest.raises(PermissionDenied):
        manager.create(via_expiring, "longer", expires_in=3600)
    _, shorter = manager.create(via_expiring, "shorter", expires_in=60)
    assert shorter.expires is not None and shorter.expires <= parent.expires

    # The attack: a scoped token revoked its sibling tokens.
    scoped, _ = manager.create(dev, "scoped", projects=["dev-lib"])
    _, sibling = manager.create(dev, "sibling")
    via_scoped = policy.identify(basic("__token__", scoped))
    for attempt in (
        lambda: manager.revoke(via_scoped, sibling.token_id),
        lambda: manager.list(via_scoped),
        lambda: manager.create(via_scoped, "more", projects=["dev-lib"]),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    assert manager.store.get_token(sibling.token_id) == sibling

    # A token without "manage" manages nothing either, scoped or not.
    reader, _ = manager.create(dev, "reader", capabilities=["read"])
    via_reader = policy.identify(basic("__token__", reader))
    with pytest.raises(PermissionDenied):
        manager.list(via_reader)
    assert not policy.can_write(via_reader, "dev-lib")


# --- 3. token logins are throttled per token and per address, not per "__token__" -------


def test_h03_token_throttle_is_per_token_and_source(policy: AccessPolicy, manager: TokenManager):
    dev = policy.identify(basic("dev", "dev-pw"))
    good, record = manager.create(dev, "ci")
    # The attack: five failed "__token__" logins locked out every token login.
    for i in range(25):
        with pytest.raises((BadCredentials, TooManyAttempts)):
            policy.identify(basic("__token__", f"stratus_{i:016x}_wrong"), "6.6.6.6")
    assert policy.identify(basic("__token__", good), "10.0.0.1").username == "dev"
    # The attacker's address is locked out, whatever it tries.
    with pytest.raises(TooManyAttempts):
        policy.identify(basic("__token__", good), "6.6.6.6")
    # Guessing one token's secret from many addresses locks that token only.
    for i in range(5):
        with pytest.raises(BadCredentials):
            policy.identify(basic("__token__", f"stratus_{record.token_id}_x"), f"7.7.7.{i}")
    with pytest.raises(TooManyAttempts):
        policy.identify(basic("__token__", good), "10.0.0.2")
    other, _ = manager.create(dev, "other")
    assert policy.identify(basic("__token__", other), "10.0.0.2").username == "dev"
    assert policy.identify(basic("dev", "dev-pw"), "10.0.0.2").username == "dev"


# --- 4. tokens work with every access backend: pypi.auth = config ------------------------


def test_h04_tokens_work_with_config_backend(tmp_path: Path):
    config = tmp_path / "stratus.ini"
    config.write_text(
        "[app:main]\npypi.auth = config\n"
        f"user.alice = {cheap('alice-pw')}\nuser.bob = {cheap('bob-pw')}\n"
        "group.devs = alice\nauth.admins = alice\n"
        "package.team-lib.group.devs = rw\n"
    )
    services = services_local(tmp_path / "data", config)
    assert isinstance(services.access, ConfigAccess)
    assert services.tokens is not None and services.tokens is not services.access
    policy = AccessPolicy(services.access, services.settings, token_store=services.tokens)
    manager = TokenManager(services.tokens, services.access)

    alice = policy.identify(basic("alice", "alice-pw"))
    secret, record = manager.create(alice, "ci", projects=["team-lib"])  # was 404 "No user"
    via_token = policy.identify(basic("__token__", secret))
    assert (via_token.username, via_token.groups) == ("alice", {"devs"})
    assert policy.can_write(via_token, "team-lib")
    assert [t.token_id for t in manager.list(alice)] == [record.token_id]
    with pytest.raises(NotFound):
        manager.create(alice, "ghost", owner="nobody")  # admin, but no such user

    # A user removed from the config file loses its tokens' access too.
    config.write_text(config.read_text().replace("user.alice", "user.alicia"))
    later = services_local(tmp_path / "data", config)
    later_policy = AccessPolicy(later.access, later.settings, token_store=later.tokens)
    with pytest.raises(BadCredentials):
        later_policy.identify(basic("__token__", secret))


# --- 5. exactly one first user becomes the admin ----------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "dynamo"])
def test_h05_concurrent_first_registration_one_admin(backend, request, tmp_path, monkeypatch):
    # Cheap hashes: the race is about the write, not about argon2.
    monkeypatch.setattr(passwords, "hash_password", cheap)
    if backend == "sqlite":
        access = SqliteAccess(tmp_path / "access.sqlite3")
    else:
        access = empty_dynamo(request, tmp_path)
    access.set_allow_register(True)
    results = run_concurrently(
        [lambda i=i: accounts.register(access, f"user{i}", "password") for i in range(20)]
    )
    assert sorted(results) == [accounts.ADMIN] + [accounts.PENDING] * 19
    assert len([u for u in access.list_users() if u.admin]) == 1
    assert len(access.pending_users()) == 19

    # Registration closed: the losers of a race are refused, not made admins.
    closed = SqliteAccess(tmp_path / "closed.sqlite3")
    results = run_concurrently(
        [lambda i=i: accounts.register(closed, f"user{i}", "password") for i in range(5)]
    )
    assert results.count(accounts.ADMIN) == 1
    assert all(isinstance(r, PermissionDenied) for r in results if r != accounts.ADMIN)
    assert [u.username for u in closed.list_users()] == [f"user{results.index(accounts.ADMIN)}"]


# --- 7. legacy hashes upgraded, bcrypt accepted, equal cost, token-shaped passwords -------


def test_h07_legacy_hash_upgrade_and_timing(tmp_path: Path, monkeypatch):
    access = SqliteAccess(tmp_path / "access.sqlite3")
    access.create_user("old256", sha256_crypt.using(rounds=5000).hash("pw-256"))
    access.create_user("old512", sha512_crypt.using(rounds=5000).hash("pw-512"))
    access.create_user("tokenish", cheap("stratus_abcd_efgh"))
    policy = AccessPolicy(access, Settings(), token_store=access)

    # Upgraded to argon2id on a successful login; the password keeps working.
    for user, password in (("old256", "pw-256"), ("old512", "pw-512")):
        policy.identify(basic(user, password))
        stored = access.get_password_hash(user)
        assert stored is not None and stored.startswith("$argon2id$")
        policy.forget()
        assert policy.identify(basic(user, password)).username == user
    # A failed login changes nothing.
    access.create_user("stays", cheap("right"))
    before = access.get_password_hash("stays")
    with pytest.raises(BadCredentials):
        policy.identify(basic("stays", "wrong"))
    assert access.get_password_hash("stays") == before

    # A password shaped like a token is still a password when it is no valid token.
    assert policy.identify(basic("tokenish", "stratus_abcd_efgh")).username == "tokenish"

    # bcrypt hashes (htpasswd -B, other indexes) are accepted.
    import bcrypt

    hashed = bcrypt.hashpw(b"bc-pw", bcrypt.gensalt(4)).decode()
    config = AccessPolicy(ConfigAccess.from_options({"user.bc": hashed}), Settings())
    assert config.identify(basic("bc", "bc-pw")).username == "bc"
    with pytest.raises(BadCredentials):
        config.identify(basic("bc", "nope"))

    # An unknown user costs what a wrong password costs: one argon2id verification.
    access.create_user("modern", passwords.hash_password("right"))
    verified: list[str] = []
    real_verify = CryptContext.verify

    def spy(self, secret, hash, **kwargs):
        verified.append(hash.split("$")[1])
        return real_verify(self, secret, hash, **kwargs)

    monkeypatch.setattr(CryptContext, "verify", spy)
    for user in ("modern", "nobody"):
        with pytest.raises(BadCredentials):
            policy.identify(basic(user, "wrong"))
    assert verified == ["argon2id", "argon2id"]


# --- 18. presigned URLs: regional virtual-hosted endpoint, SigV4 ---------------------------


@pytest.mark.parametrize("region", ["eu-west-1", "ap-east-1", "me-south-1", "us-east-1"])
def test_h18_presigned_url_regional_endpoint(region: str, monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    storage = S3Storage("stratus-files", region=region)
    url = urlsplit(storage.download("demo/demo-1.0.tar.gz", "demo-1.0.tar.gz").url or "")
    assert url.scheme == "https"
    assert url.netloc == f"stratus-files.s3.{region}.amazonaws.com"
    assert url.path == "/demo/demo-1.0.tar.gz"
    query = url.query
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in query
    assert f"%2F{region}%2Fs3%2Faws4_request" in query  # signed for the bucket's region


def test_h18_presigned_url_works_against_moto(s3_bucket: str):
    import httpx

    storage = S3Storage(s3_bucket, region=os.environ["AWS_REGION"])
    storage.put("demo/demo-1.0.tar.gz", b"bytes")
    url = storage.download("demo/demo-1.0.tar.gz", "demo-1.0.tar.gz").url or ""
    assert urlsplit(url).hostname == "127.0.0.1"  # the endpoint override, path-style
    assert httpx.get(url).content == b"bytes"
