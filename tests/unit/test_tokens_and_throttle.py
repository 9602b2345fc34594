"""API tokens, signup tokens and the login throttle."""

from __future__ import annotations

import pytest

from stratus.app import tokens
from stratus.app.throttle import LoginThrottle, TooManyAttempts, token_account, user_account
from stratus.domain.errors import InvalidInput


def test_token_round_trip_and_storage_has_no_secret():
    secret, record = tokens.new_token(
        "dev", "ci", projects=["b", "a", "a"], expires_in=60, now=1000
    )
    token_id, raw = tokens.split(secret)
    assert token_id == record.token_id
    assert raw not in repr(record)
    assert record.projects == ["a", "b"]
    assert tokens.matches(record, raw, now=1059)
    assert not tokens.matches(record, raw, now=1060)  # expired
    assert not tokens.matches(record, raw + "x", now=1000)
    assert "secret_sha256" not in tokens.public(record)
    assert record.capabilities == ["read", "upload"]  # scoped: never manage or admin


@pytest.mark.parametrize("text", ["", "password", "stratus_", "stratus_abc", "stratus__x"])
def test_split_rejects_non_tokens(text):
    assert tokens.split(text) is None


def test_token_needs_a_name_and_positive_expiry():
    with pytest.raises(InvalidInput):
        tokens.new_token("dev", "")
    with pytest.raises(InvalidInput):
        tokens.new_token("dev", "x", expires_in=0)


def test_signup_token():
    token = tokens.signup_token("carol", "key", 60, now=1000)
    assert tokens.check_signup_token(token, "key", now=1059) == "carol"
    assert tokens.check_signup_token(token, "key", now=1060) is None
    assert tokens.check_signup_token(token, "other-key", now=1000) is None
    forged = token.replace("carol", "admin", 1)
    assert tokens.check_signup_token(forged, "key", now=1000) is None
    assert tokens.check_signup_token("garbage", "key") is None


ALICE, BOB, CAROL = (user_account(n) for n in ("alice", "bob", "carol"))


def test_throttle_locks_account_and_source_then_releases():
    now = [0.0]
    throttle = LoginThrottle(per_account=3, per_source=5, window=100, clock=lambda: now[0])
    for _ in range(3):
        throttle.check([ALICE], "1.2.3.4")
        throttle.failed([ALICE], "1.2.3.4")
    with pytest.raises(TooManyAttempts) as exc:
        throttle.check([ALICE], "9.9.9.9")
    assert exc.value.retry_after == 100
    throttle.check([BOB], "5.6.7.8")  # others are not affected
    for _ in range(2):
        throttle.failed([BOB], "1.2.3.4")
    with pytest.raises(TooManyAttempts):
        throttle.check([CAROL], "1.2.3.4")  # the source is locked now
    now[0] = 101
    throttle.check([ALICE], "1.2.3.4")


def test_success_clears_account_failures():
    throttle = LoginThrottle(per_account=2, per_source=100, window=100, clock=lambda: 0.0)
    throttle.failed([ALICE], None)
    throttle.succeeded([ALICE])
    throttle.failed([ALICE], None)
    throttle.check([ALICE], None)


def test_token_accounts_are_separate_from_users():
    throttle = LoginThrottle(per_account=1, per_source=100, window=100, clock=lambda: 0.0)
    throttle.failed([token_account("abc")], None)
    with pytest.raises(TooManyAttempts):
        throttle.check([token_account("abc")], None)
    throttle.check([token_account("def"), user_account("abc")], None)
