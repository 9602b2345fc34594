"""Contract suite for the Access port: every backend gets the same behaviour tests.

The fixture builds each backend holding the sample of pypicloud's manual §1.6.2.
"""

from __future__ import annotations

import base64
import importlib

import pytest

from stratus.app.policy import AccessPolicy
from stratus.domain.permissions import EMPTY_ACL
from stratus.settings import Settings

from .access_backends import BACKENDS, PASSWORDS


@pytest.fixture(params=BACKENDS)
def access(request, tmp_path):
    module = importlib.import_module(f"tests.contract.access_backends.{request.param}")
    return module.build(request, tmp_path)


@pytest.mark.parametrize("user", ["stevearc", "dsa", "donlan"])
def test_verify_user_accepts_right_password(access, user):
    assert access.verify_user(user, PASSWORDS[user])


@pytest.mark.parametrize("user", ["stevearc", "dsa", "donlan"])
def test_verify_user_rejects_wrong_password(access, user):
    assert not access.verify_user(user, PASSWORDS[user] + "x")


def test_unknown_user_is_rejected(access):
    assert not access.verify_user("nobody", "gunface")


def test_groups(access):
    assert access.groups("dsa") == {"sharkfest", "brotatos"}
    assert access.groups("stevearc") == {"sharkfest"}
    assert access.groups("nobody") == frozenset()


def test_admins(access):
    assert access.is_admin("admin")
    assert not access.is_admin("dsa")


def test_package_acl_is_keyed_by_normalized_name(access):
    acl = access.package_acl("django-unchained")
    assert acl.users == {"stevearc": {"r", "w"}}
    assert acl.groups == {"sharkfest": {"r", "w"}}
    assert access.package_acl("unknown-project") == EMPTY_ACL


def test_health(access):
    access.health()


# The table of §1.6.2: who has what on which package (default_read = authenticated).
TABLE = {
    "stevearc": {"django-unchained": "rw", "polite-requests": "r", "pyramid-head": "r"},
    "dsa": {"django-unchained": "rw", "polite-requests": "rw", "pyramid-head": "rw"},
    "donlan": {"django-unchained": "", "polite-requests": "rw", "pyramid-head": "rw"},
    None: {"django-unchained": "", "polite-requests": "", "pyramid-head": "r"},
}


def identify(policy: AccessPolicy, user: str | None):
    header = None
    if user is not None:
        header = "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return policy.identify(header)


@pytest.mark.parametrize("user", list(TABLE), ids=lambda u: u or "everyone")
def test_manual_permission_table(access, user):
    policy = AccessPolicy(access, Settings())
    who = identify(policy, user)
    for project, expected in TABLE[user].items():
        got = "".join(p for p in "rw" if p in policy.permissions(who, project))
        assert got == expected, (user, project)


def test_admin_reads_and_writes_everything(access):
    policy = AccessPolicy(access, Settings())
    who = policy.identify("Basic " + base64.b64encode(b"admin:root").decode())
    for project in ("django-unchained", "anything-else"):
        assert policy.permissions(who, project) == {"r", "w"}


SAMPLE_PROJECTS = ["django-unchained", "polite-requests", "pyramid-head", "unknown-project"]


def test_package_acls_is_package_acl_for_many(access):
    assert access.package_acls(SAMPLE_PROJECTS) == {
        p: access.package_acl(p) for p in SAMPLE_PROJECTS
    }
    assert access.package_acls(["unknown-project"]) == {"unknown-project": EMPTY_ACL}
    assert access.package_acls([]) == {}


@pytest.mark.parametrize("user", list(TABLE), ids=lambda u: u or "everyone")
def test_readable_agrees_with_the_permission_table(access, user):
    policy = AccessPolicy(access, Settings())
    who = identify(policy, user)
    expected = {project for project, perms in TABLE[user].items() if "r" in perms}
    assert policy.readable(who, list(TABLE[user])) == expected
