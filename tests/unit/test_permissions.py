"""Permission resolution rules (pypicloud §1.6.1-1.6.2) on the pure domain function."""

from __future__ import annotations

import pytest

from stratus.domain.models import ANONYMOUS, Identity
from stratus.domain.permissions import EMPTY_ACL, PackageAcl, effective, parse_perm

ALICE = Identity("alice", frozenset({"devs"}))


def test_defaults_apply_only_without_explicit_entries():
    acl = PackageAcl({"bob": frozenset("r")}, {})
    assert effective(ALICE, EMPTY_ACL, ["authenticated"], []) == {"r"}
    assert effective(ALICE, acl, ["authenticated"], []) == frozenset()


def test_default_write_grants_write_only_as_pypicloud_does():
    assert effective(ALICE, EMPTY_ACL, [], ["devs"]) == {"w"}
    assert effective(ALICE, EMPTY_ACL, ["authenticated"], ["devs"]) == {"r", "w"}


def test_everyone_includes_anonymous_and_authenticated_excludes_it():
    assert effective(ANONYMOUS, EMPTY_ACL, ["everyone"], []) == {"r"}
    assert effective(ANONYMOUS, EMPTY_ACL, ["authenticated"], []) == frozenset()


def test_user_and_group_entries_add_up():
    acl = PackageAcl({"alice": frozenset("r")}, {"devs": frozenset("w")})
    assert effective(ALICE, acl, [], []) == {"r", "w"}


def test_admin_has_everything():
    admin = Identity("root", is_admin=True)
    acl = PackageAcl({"bob": frozenset("r")}, {})
    assert effective(admin, acl, [], []) == {"r", "w"}


@pytest.mark.parametrize("value", ["", "x", "rwx", "read"])
def test_parse_perm_rejects_garbage(value):
    with pytest.raises(ValueError):
        parse_perm(value)


def test_parse_perm():
    assert parse_perm(" RW ") == {"r", "w"}
    assert parse_perm("r") == {"r"}
