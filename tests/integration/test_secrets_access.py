"""The AWS Secrets Manager access backend (§1.6.5) on moto server.

Beyond the contract suites: pypicloud's own secrets load unchanged and stay readable by
pypicloud after Stratus writes; the secret is created (with the KMS key) on first write;
the read cache and its invalidation by writes; lost-update protection between writers.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from passlib.hash import sha256_crypt

from stratus.adapters.secrets_access import SecretsManagerAccess, version_token
from stratus.domain.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from stratus.domain.permissions import PackageAcl
from stratus.ports import MutableAccessBackend, TokenRecord
from tests.contract.access_backends.secretsmanager import new_secret_id, use_moto


def cheap_hash(password: str) -> str:
    return sha256_crypt.using(rounds=1000).hash(password)


# The example of §1.6.5 (trailing commas removed: the manual's is not valid JSON), as a
# pypicloud admin writes it, plus the keys pypicloud's mutable JSON backend adds.
PYPICLOUD_SECRET = {
    "users": {f"user{i}": cheap_hash(f"pw{i}") for i in range(1, 6)},
    "groups": {"admins": ["user1", "user2"], "group1": ["user3"]},
    "admins": ["user1"],
    "packages": {
        "MyPackage": {
            "groups": {"group1": ["read", "write"], "group2": ["read"], "group3": []},
            "users": {
                "user1": ["read", "write"],
                "user2": ["read"],
                "user3": [],
                "user5": ["read"],
            },
        }
    },
}


class RecordingClient:
    """Wraps a boto3 client: counts calls, can run a hook before the next write."""

    def __init__(self, client: Any, write_lock: threading.Lock | None = None) -> None:
        self._client = client
        self._write_lock = write_lock
        self.calls: Counter[str] = Counter()
        self.before_next_write: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name in ("put_secret_value", "create_secret"):
                hook, self.before_next_write = self.before_next_write, None
                if hook is not None:
                    hook()
                if self._write_lock is not None:
                    with self._write_lock:
                        return attr(*args, **kwargs)
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def sm(request):
    """A plain boto3 Secrets Manager client on the moto server."""
    import boto3

    return boto3.client("secretsmanager", endpoint_url=use_moto(request))


@pytest.fixture
def secret_id(request) -> str:
    return new_secret_id(request)


def stored(sm, secret_id: str) -> dict[str, Any]:
    return json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])


def version_count(sm, secret_id: str) -> int:
    return len(sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)["Versions"])


def backend(sm, secret_id: str, **kwargs: Any) -> tuple[SecretsManagerAccess, RecordingClient]:
    client = RecordingClient(sm, kwargs.pop("write_lock", None))
    return SecretsManagerAccess(secret_id, client=client, **kwargs), client


# --- pypicloud compatibility ------------------------------------------------------------------


def test_pypicloud_secret_loads_unchanged(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET, indent=4))
    access, _ = backend(sm, secret_id)
    assert isinstance(access, MutableAccessBackend)

    assert access.verify_user("user3", "pw3")
    assert not access.verify_user("user3", "pw4")
    assert access.groups("user1") == {"admins"}
    assert access.groups("user3") == {"group1"}
    assert access.is_admin("user1")
    assert not access.is_admin("user2")  # a group called "admins" is just a group
    assert access.has_admin()

    acl = access.package_acl("mypackage")
    assert acl == PackageAcl(
        {"user1": {"r", "w"}, "user2": {"r"}, "user3": frozenset(), "user5": {"r"}},
        {"group1": {"r", "w"}, "group2": {"r"}, "group3": frozenset()},
    )
    assert not acl.empty  # pypicloud: an explicit [] entry turns the defaults off

    assert [u.username for u in access.list_users()] == [
        "user1",
        "user2",
        "user3",
        "user4",
        "user5",
    ]
    assert [u.admin for u in access.list_users()] == [True, False, False, False, False]
    user = access.get_user("user1")
    assert user is not None and user.admin and user.groups == ["admins"]
    assert access.get_user("nobody") is None
    assert access.list_groups() == ["admins", "group1"]
    assert access.group_members("admins") == ["user1", "user2"]
    with pytest.raises(NotFound):
        access.group_members("group2")  # has permissions, but is not a defined group
    assert access.user_package_permissions("user2") == {"mypackage": {"r"}}
    assert access.group_package_permissions("group1") == {"mypackage": {"r", "w"}}
    assert access.pending_users() == []
    assert access.allow_register() is False
    assert access.get_password_hash("user4") == PYPICLOUD_SECRET["users"]["user4"]
    access.health()
    assert version_count(sm, secret_id) == 1  # reading never writes


def test_pypicloud_mutable_keys_load(sm, secret_id):
    doc = {**PYPICLOUD_SECRET, "pending_users": {"newbie": cheap_hash("x")}}
    doc["allow_registration"] = True
    sm.create_secret(Name=secret_id, SecretString=json.dumps(doc))
    access, _ = backend(sm, secret_id)
    assert access.pending_users() == ["newbie"]
    assert access.allow_register() is True
    assert not access.verify_user("newbie", "x")  # pending users cannot log in
    assert access.get_user("newbie") is None
    access.approve_user("newbie")
    assert access.verify_user("newbie", "x")
    assert stored(sm, secret_id)["pending_users"] == {}


def test_writes_keep_pypicloud_format_and_foreign_keys(sm, secret_id):
    doc = {**PYPICLOUD_SECRET, "x-owner": {"team": "platform"}}
    doc["packages"] = {**doc["packages"], "MYPACKAGE": {"users": {"user4": ["write"]}}}
    sm.create_secret(Name=secret_id, SecretString=json.dumps(doc))
    access, _ = backend(sm, secret_id)
    acl = access.package_acl("mypackage")  # both spellings, merged
    assert acl.users["user4"] == {"w"} and acl.users["user1"] == {"r", "w"}

    access.set_permission("mypackage", "user", "user4", "r", True)
    access.set_permission("mypackage", "group", "group2", "w", True)
    access.create_user("user6", cheap_hash("pw6"))

    after = stored(sm, secret_id)
    assert after["x-owner"] == {"team": "platform"}
    assert list(after["packages"]) == ["mypackage"]  # one key, normalized
    assert after["packages"]["mypackage"] == {
        "groups": {"group1": ["read", "write"], "group2": ["read", "write"], "group3": []},
        "users": {
            "user1": ["read", "write"],
            "user2": ["read"],
            "user3": [],
            "user4": ["read", "write"],
            "user5": ["read"],
        },
    }
    assert after["users"]["user6"].startswith("$5$")
    # What pypicloud's JSON backend would do with it: plain dict lookups.
    assert after["groups"]["group1"] == ["user3"] and after["admins"] == ["user1"]


def test_revoking_the_last_permission_drops_the_entry(sm, secret_id):
    access, _ = backend(sm, secret_id)
    access.set_permission("Some.Project", "group", "devs", "r", True)
    assert stored(sm, secret_id)["packages"] == {
        "some-project": {"groups": {"devs": ["read"]}, "users": {}}
    }
    access.set_permission("some-project", "group", "devs", "r", False)
    assert stored(sm, secret_id)["packages"] == {}
    assert access.package_acl("some-project").empty
    with pytest.raises(InvalidInput):
        access.set_permission("p", "role", "devs", "r", True)
    with pytest.raises(InvalidInput):
        access.set_permission("p", "user", "devs", "x", True)


# --- creation, KMS ----------------------------------------------------------------------------


def test_secret_is_created_on_first_write(sm, secret_id):
    access, client = backend(sm, secret_id)
    access.health()  # no secret yet: a new deployment, not a failure
    assert access.list_users() == [] and not access.has_admin()
    assert not access.verify_user("root", "pw")
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=secret_id)

    access.create_user("root", cheap_hash("pw"), admin=True)
    assert client.calls["create_secret"] == 1 and client.calls["put_secret_value"] == 0
    doc = stored(sm, secret_id)
    assert set(doc) >= {"users", "groups", "admins", "packages", "pending_users"}
    assert doc["admins"] == ["root"] and set(doc["users"]) == {"root"}
    assert access.has_admin() and access.verify_user("root", "pw")

    access.create_user("second", cheap_hash("pw"), pending=True)
    assert client.calls["create_secret"] == 1 and client.calls["put_secret_value"] == 1
    assert stored(sm, secret_id)["pending_users"].keys() == {"second"}


def test_kms_key_id_is_passed_on_creation(sm, secret_id):
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/6c2f0b7e-8f34-4f3e-9d0f-0a4b0c1d2e3f"
    access = SecretsManagerAccess.from_options(
        {"auth.secret_id": secret_id, "auth.kms_key_id": key_arn, "auth.region_name": "us-east-1"}
    )
    access.set_allow_register(True)
    assert sm.describe_secret(SecretId=secret_id)["KmsKeyId"] == key_arn
    assert stored(sm, secret_id)["allow_registration"] is True


def test_from_options():
    with pytest.raises(ValueError, match=r"auth\.secret_id"):
        SecretsManagerAccess.from_options({})
    access = SecretsManagerAccess.from_options({"auth.secret_id": "s", "auth.cache_seconds": "0"})
    assert access.secret_id == "s" and access.kms_key_id is None and access.cache_seconds == 0


# --- cache ------------------------------------------------------------------------------------


def test_reads_are_cached_and_writes_refresh_the_cache(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET))
    access, client = backend(sm, secret_id, cache_seconds=600)
    other, _ = backend(sm, secret_id, cache_seconds=600)

    for _ in range(20):  # what one pip run asks
        access.verify_user("user1", "pw1")
        access.groups("user1")
        access.package_acl("mypackage")
    assert client.calls["get_secret_value"] == 1

    other.create_user("late", cheap_hash("pw"))  # another container
    assert access.get_user("late") is None  # not seen before the cache expires

    access.add_member("user4", "group1")  # our write: a fresh read, then the put
    assert client.calls["get_secret_value"] == 2
    assert access.groups("user4") == {"group1"}  # seen at once ...
    assert access.get_user("late") is not None  # ... together with the other change
    assert client.calls["get_secret_value"] == 2  # the write refreshed the cache

    other.create_user("later", cheap_hash("pw"))
    access.invalidate()
    assert access.get_user("later") is not None
    assert client.calls["get_secret_value"] == 3


def test_no_cache_when_cache_seconds_is_zero(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET))
    access, client = backend(sm, secret_id, cache_seconds=0)
    access.groups("user1")
    access.groups("user1")
    assert client.calls["get_secret_value"] == 2


def test_a_change_that_changes_nothing_writes_nothing(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET))
    access, client = backend(sm, secret_id)
    access.create_group("group1")
    access.remove_member("user5", "group1")
    access.set_permission("mypackage", "group", "group2", "r", True)
    access.delete_token("no-such-token")
    assert client.calls["put_secret_value"] == 0
    assert version_count(sm, secret_id) == 1


# --- lost updates -----------------------------------------------------------------------------


def test_interleaved_writers_do_not_lose_updates(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET))
    first, first_client = backend(sm, secret_id)
    second, _ = backend(sm, secret_id)
    # ``first`` reads, then ``second`` writes, then ``first`` puts on its stale read.
    first_client.before_next_write = lambda: second.add_member("user5", "group1")
    first.create_user("user6", cheap_hash("pw6"))

    assert first_client.calls["put_secret_value"] == 2  # the stale put was refused, then redone
    doc = stored(sm, secret_id)
    assert "user6" in doc["users"]
    assert doc["groups"]["group1"] == ["user3", "user5"]


def test_racing_creators_do_not_lose_updates(sm, secret_id):
    first, first_client = backend(sm, secret_id)
    second, _ = backend(sm, secret_id)
    first_client.before_next_write = lambda: second.create_user("b", cheap_hash("b"))
    first.create_user("a", cheap_hash("a"))
    assert first_client.calls["create_secret"] == 1 and first_client.calls["put_secret_value"] == 1
    assert set(stored(sm, secret_id)["users"]) == {"a", "b"}


def test_concurrent_writers_do_not_lose_updates(sm, secret_id):
    # moto server checks a version id and stores the version as two steps on its request
    # threads; AWS decides atomically. The lock restores that atomicity (only the write
    # calls, not the reads: the read-modify-write windows still interleave freely).
    write_lock = threading.Lock()
    writers = [backend(sm, secret_id, write_lock=write_lock)[0] for _ in range(4)]
    errors: list[BaseException] = []

    def work(index: int, access: SecretsManagerAccess) -> None:
        try:
            for n in range(2):
                access.create_user(f"u{index}-{n}", "$5$x")
                access.add_member(f"u{index}-{n}", "crowd")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    doc = stored(sm, secret_id)
    expected = {f"u{i}-{n}" for i in range(4) for n in range(2)}
    assert set(doc["users"]) == expected
    assert set(doc["groups"]["crowd"]) == expected


def test_a_rolled_back_version_does_not_block_writes(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET))
    access, client = backend(sm, secret_id)
    base = sm.get_secret_value(SecretId=secret_id)["VersionId"]
    # What a rollback of AWSCURRENT leaves behind: the chain's next id from the current
    # version exists, with other content, and is not current. (moto's
    # UpdateSecretVersionStage does not move what GetSecretValue returns, so the version
    # is made directly, without the AWSCURRENT label.)
    sm.put_secret_value(
        SecretId=secret_id,
        SecretString=json.dumps({"users": {"temp": "x"}}),
        ClientRequestToken=version_token(secret_id, base),
        VersionStages=["ROLLED-BACK"],
    )
    assert sm.get_secret_value(SecretId=secret_id)["VersionId"] == base

    access.create_user("after-rollback", cheap_hash("y"))
    assert client.calls["put_secret_value"] == 2  # refused once, then the next derived id
    current = sm.get_secret_value(SecretId=secret_id)
    assert current["VersionId"] == version_token(secret_id, base, 1)
    doc = json.loads(current["SecretString"])
    assert "after-rollback" in doc["users"] and "temp" not in doc["users"]


# --- users, tokens, errors --------------------------------------------------------------------


def test_user_lifecycle_and_tokens(sm, secret_id):
    sm.create_secret(Name=secret_id, SecretString=json.dumps(PYPICLOUD_SECRET))
    access, _ = backend(sm, secret_id)
    with pytest.raises(Conflict):
        access.create_user("user1", cheap_hash("x"))
    with pytest.raises(NotFound):
        access.add_member("ghost", "group1")
    with pytest.raises(NotFound):
        access.set_password_hash("ghost", "h")
    with pytest.raises(NotFound):
        access.approve_user("user1")

    token = TokenRecord("tok1", "user5", "ci", "ab" * 32, 1700000000.0, None, ["mypackage"])
    access.add_token(token)
    with pytest.raises(Conflict):
        access.add_token(token)
    assert access.get_token("tok1") == token
    assert access.list_tokens("user5") == [token]
    assert stored(sm, secret_id)["tokens"]["tok1"]["secret_sha256"] == "ab" * 32

    access.set_admin("user5", True)
    access.delete_user("user5")
    doc = stored(sm, secret_id)
    assert "user5" not in doc["users"] and "user5" not in doc["admins"]
    assert "user5" not in doc["packages"]["MyPackage"]["users"]
    assert doc["tokens"] == {}
    assert access.get_token("tok1") is None

    access.delete_group("group1")
    doc = stored(sm, secret_id)
    assert "group1" not in doc["groups"] and "group1" not in doc["packages"]["MyPackage"]["groups"]


def test_secret_size_limit_is_a_clear_error(sm, secret_id):
    access, _ = backend(sm, secret_id)
    with pytest.raises(InvalidInput, match="at most 65536"):
        access.create_user("big", "h" * 70000)


def test_broken_secret_or_endpoint_is_unavailable(sm, secret_id, monkeypatch):
    sm.create_secret(Name=secret_id, SecretString="{not json")
    access, _ = backend(sm, secret_id)
    with pytest.raises(BackendUnavailable, match="not valid JSON"):
        access.health()
    with pytest.raises(BackendUnavailable):
        access.verify_user("user1", "pw1")

    import boto3
    from botocore.config import Config

    dead = boto3.client(
        "secretsmanager",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(BackendUnavailable, match="unreachable"):
        SecretsManagerAccess(secret_id, client=dead).health()
