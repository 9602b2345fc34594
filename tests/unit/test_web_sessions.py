"""Signed browser sessions, CSRF tokens, and the policy calls behind a web sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from passlib.hash import sha256_crypt

from stratus.adapters.sqlite_access import SqliteAccess
from stratus.app import tokens
from stratus.app.policy import AccessPolicy, BadCredentials
from stratus.app.throttle import LoginThrottle, TooManyAttempts
from stratus.domain.models import ANONYMOUS
from stratus.settings import Settings
from stratus.web.ui.sessions import Session, SessionCodec


def fast_hash(password: str) -> str:
    return sha256_crypt.using(rounds=1000).hash(password)


@pytest.fixture
def backend(tmp_path: Path) -> SqliteAccess:
    access = SqliteAccess(tmp_path / "access.sqlite3")
    access.create_user("dev", fast_hash("pw"))
    access.add_member("dev", "devs")
    return access


@pytest.fixture
def policy(backend: SqliteAccess) -> AccessPolicy:
    return AccessPolicy(
        backend, Settings(), token_store=backend, throttle=LoginThrottle(per_account=3)
    )


@pytest.fixture
def codec() -> SessionCodec:
    return SessionCodec("k" * 32)


def signed_in(codec: SessionCodec, policy: AccessPolicy, user: str = "dev") -> Session:
    state = policy.user_state(user)
    assert state is not None
    return codec.signed_in(user, state.password_stamp)


def test_a_session_round_trips_through_the_cookie(codec: SessionCodec):
    session = Session("csrf-token", "dev", "fp")
    assert codec.loads(codec.dumps(session)) == session
    anonymous = codec.anonymous()
    assert codec.loads(codec.dumps(anonymous)) == anonymous and anonymous.username is None


@pytest.mark.parametrize("value", [None, "", "garbage", "x" * 5000, "eyJ1IjoiYWRtaW4ifQ.AAAA.BBBB"])
def test_missing_or_forged_cookies_are_no_session(codec: SessionCodec, value):
    assert codec.loads(value) is None


def test_an_altered_or_foreign_cookie_is_refused(codec: SessionCodec):
    value = codec.dumps(Session("t", "dev"))
    _, _, rest = value.partition(".")
    forged = SessionCodec("another-key-entirely").dumps(Session("t", "admin"))
    assert codec.loads(forged) is None
    assert codec.loads(forged.split(".")[0] + "." + rest) is None  # payload swapped


def test_expired_sessions_are_refused():
    codec = SessionCodec("k" * 32, max_age=-1)  # every session is already too old
    assert codec.loads(codec.dumps(Session("t", "dev"))) is None


def test_csrf_token_must_match_the_session(codec: SessionCodec):
    session = codec.anonymous()
    assert codec.csrf_ok(session, session.csrf)
    assert not codec.csrf_ok(session, codec.anonymous().csrf)
    assert not codec.csrf_ok(session, "")
    assert not codec.csrf_ok(session, None)
    assert not codec.csrf_ok(None, session.csrf)
    assert codec.signed_in("dev", "stamp").csrf != session.csrf  # sign-in: a fresh token


def test_the_session_user_is_looked_up_with_groups(codec, policy):
    who = codec.identity(signed_in(codec, policy), policy)
    assert who.username == "dev" and who.groups == {"devs"} and not who.is_admin
    assert codec.identity(codec.anonymous(), policy) == ANONYMOUS
    assert codec.identity(None, policy) == ANONYMOUS


def test_a_deleted_user_is_anonymous_at_once(codec, policy, backend):
    session = signed_in(codec, policy)
    backend.delete_user("dev")
    policy.forget("dev")
    assert codec.identity(session, policy) == ANONYMOUS


def test_a_password_change_ends_the_old_sessions(codec, policy, backend):
    session = signed_in(codec, policy)
    backend.set_password_hash("dev", fast_hash("new-password"))
    policy.forget("dev")
    assert codec.identity(session, policy) == ANONYMOUS
    assert codec.identity(signed_in(codec, policy), policy).username == "dev"


def test_a_demotion_follows_after_forget(codec, policy, backend):
    backend.set_admin("dev", True)
    session = signed_in(codec, policy)
    assert codec.identity(session, policy).is_admin
    backend.set_admin("dev", False)
    policy.forget("dev")
    assert not codec.identity(session, policy).is_admin


def test_sessions_signed_with_another_key_do_not_name_users(policy):
    mine, theirs = SessionCodec("a" * 32), SessionCodec("b" * 32)
    session = signed_in(theirs, policy)  # right user, fingerprint under another key
    assert mine.identity(session, policy) == ANONYMOUS


def test_web_sign_in_shares_the_basic_auth_throttle(policy):
    for _ in range(3):
        with pytest.raises(BadCredentials):
            policy.authenticate("dev", "wrong", "10.0.0.1", api_tokens=False)
    with pytest.raises(TooManyAttempts):
        policy.authenticate("dev", "pw", "10.0.0.1", api_tokens=False)
    with pytest.raises(TooManyAttempts):  # the same counter as Basic auth
        policy.identify("Basic ZGV2OnB3", "10.0.0.2")  # dev:pw


def test_web_sign_in_refuses_api_tokens(policy, backend):
    secret, record = tokens.new_token("dev", "ci")
    backend.add_token(record)
    assert policy.authenticate("__token__", secret).username == "dev"  # as Basic auth does
    with pytest.raises(BadCredentials):
        policy.authenticate("__token__", secret, api_tokens=False)
    with pytest.raises(BadCredentials):
        policy.authenticate("dev", secret, api_tokens=False)
    assert policy.authenticate("dev", "pw", api_tokens=False).username == "dev"
