"""The per-process credential cache: one hash and one group lookup per user, until forgotten."""

from __future__ import annotations

import base64

import pytest
from passlib.hash import sha256_crypt

from stratus.adapters.config_access import ConfigAccess
from stratus.app.policy import AccessPolicy, BadCredentials
from stratus.settings import Settings


class CountingAccess(ConfigAccess):
    """The real config backend, counting the calls the cache should spare."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = {"verify_user": 0, "groups": 0}

    def verify_user(self, username: str, password: str) -> bool:
        self.calls["verify_user"] += 1
        return super().verify_user(username, password)

    def groups(self, username: str) -> frozenset[str]:
        self.calls["groups"] += 1
        return super().groups(username)


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def make_policy() -> tuple[AccessPolicy, CountingAccess]:
    options = {
        "user.alice": sha256_crypt.using(rounds=1000).hash("pw"),
        "group.devs": "alice",
    }
    access = CountingAccess.from_options(options)
    return AccessPolicy(access, Settings()), access  # type: ignore[return-value]


def test_repeated_requests_use_the_cache():
    policy, access = make_policy()
    for _ in range(5):
        who = policy.identify(header("alice", "pw"))
        assert who.groups == {"devs"}
    assert access.calls == {"verify_user": 1, "groups": 1}


def test_wrong_password_is_not_answered_from_the_cache():
    policy, access = make_policy()
    policy.identify(header("alice", "pw"))
    with pytest.raises(BadCredentials):
        policy.identify(header("alice", "other"))
    assert access.calls["verify_user"] == 2


def test_forget_makes_the_next_request_check_again():
    policy, access = make_policy()
    policy.identify(header("alice", "pw"))
    policy.forget("alice")
    policy.identify(header("alice", "pw"))
    policy.forget()
    policy.identify(header("alice", "pw"))
    assert access.calls == {"verify_user": 3, "groups": 3}
