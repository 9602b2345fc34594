"""Contract suite for MutableAccessBackend (and AccessDirectory): every mutable backend.

Each builder of ``access_backends`` (``MUTABLE``) returns a backend holding the §1.6.2
sample; the tests change it through the port and check every promise of the docstrings
in ``stratus.ports``, plus what the mutable backends share:

- ``verify_user`` goes through ``stratus.domain.passwords.verify``, also (with no hash, a dummy
  verification) for unknown and pending users, so timing does not tell them apart;
- pending users cannot log in, are not listed and are no admins until approved;
- deleting a user or a group leaves nothing behind that a new one of the same name
  would inherit;
- a package whose last entry is revoked answers ``EMPTY_ACL`` (defaults apply again).
"""

from __future__ import annotations

import importlib

import pytest

from stratus.domain import passwords
from stratus.domain.errors import Conflict, InvalidInput, NotFound
from stratus.domain.permissions import EMPTY_ACL
from stratus.ports import AccessBackend, AccessDirectory, MutableAccessBackend, TokenRecord
from tests.support.concurrency import run_concurrently

from .access_backends import ADMINS, GROUPS, MUTABLE, PACKAGES, PASSWORDS
from .access_backends.mutable_sample import cheap_hash


def builder(name: str):
    """The builder module of a backend (every mutable backend must have one)."""
    return importlib.import_module(f"tests.contract.access_backends.{name}")


@pytest.fixture(params=MUTABLE)
def access(request, tmp_path) -> MutableAccessBackend:
    return builder(request.param).build(request, tmp_path)


def token(token_id: str = "t1", username: str = "dsa", **changes) -> TokenRecord:
    values = {
        "token_id": token_id,
        "username": username,
        "name": f"ci-{token_id}",
        "secret_sha256": "ab" * 32,
        "created": 1_700_000_000.0,
        "expires": None,
        "projects": None,
    }
    values.update(changes)
    return TokenRecord(**values)


def test_is_a_mutable_access_backend(access):
    assert isinstance(access, MutableAccessBackend)
    assert isinstance(access, AccessDirectory)
    assert isinstance(access, AccessBackend)


# --- the sample through the directory -------------------------------------------------


def test_list_users_sorted_with_admin_flag(access):
    users = access.list_users()
    assert [u.username for u in users] == sorted(PASSWORDS)
    assert {u.username for u in users if u.admin} == set(ADMINS)
    assert not any(u.pending for u in users)


def test_get_user_fills_groups(access):
    user = access.get_user("dsa")
    assert user is not None
    assert (user.username, user.admin, user.pending) == ("dsa", False, False)
    assert user.groups == ["brotatos", "sharkfest"]
    assert access.get_user("admin").admin
    assert access.get_user("admin").groups == []
    assert access.get_user("nobody") is None


def test_list_groups_and_members(access):
    assert access.list_groups() == sorted(GROUPS)
    for group, members in GROUPS.items():
        assert access.group_members(group) == sorted(members)
    with pytest.raises(NotFound):
        access.group_members("nobody")


def test_user_package_permissions(access):
    assert access.user_package_permissions("stevearc") == {"django-unchained": {"r", "w"}}
    assert access.user_package_permissions("dsa") == {"polite-requests": {"r", "w"}}
    assert access.user_package_permissions("donlan") == {}
    assert access.user_package_permissions("nobody") == {}


def test_group_package_permissions_include_special_groups(access):
    assert access.group_package_permissions("brotatos") == {
        "polite-requests": {"r", "w"},
        "pyramid-head": {"r", "w"},
    }
    assert access.group_package_permissions("everyone") == {"pyramid-head": {"r"}}
    assert access.group_package_permissions("authenticated") == {"polite-requests": {"r"}}
    assert access.group_package_permissions("nobody") == {}


def test_sample_package_acls(access):
    for project, kinds in PACKAGES.items():
        acl = access.package_acl(project)
        assert acl.users == {name: set(perm) for name, perm in kinds["user"].items()}
        assert acl.groups == {name: set(perm) for name, perm in kinds["group"].items()}


def test_get_password_hash(access):
    stored = access.get_password_hash("dsa")
    assert stored and passwords.verify(PASSWORDS["dsa"], stored)
    assert access.get_password_hash("nobody") is None


# --- users ------------------------------------------------------------------------------


def test_create_user_then_login(access):
    access.create_user("newbie", cheap_hash("pw1"))
    assert access.verify_user("newbie", "pw1")
    assert not access.verify_user("newbie", "pw2")
    assert not access.is_admin("newbie")
    assert access.get_user("newbie").groups == []
    assert "newbie" in [u.username for u in access.list_users()]


def test_create_admin(access):
    access.create_user("boss", cheap_hash("pw"), admin=True)
    assert access.is_admin("boss")
    assert access.get_user("boss").admin


def test_create_existing_user_conflicts(access):
    with pytest.raises(Conflict):
        access.create_user("dsa", cheap_hash("other"))
    assert access.verify_user("dsa", PASSWORDS["dsa"])  # unchanged
    access.create_user("later", cheap_hash("pw"), pending=True)
    with pytest.raises(Conflict):
        access.create_user("later", cheap_hash("pw"))
    with pytest.raises(Conflict):
        access.create_user("later", cheap_hash("pw"), pending=True)


def test_names_are_case_sensitive(access):
    access.create_user("DSA", cheap_hash("upper"))
    assert access.verify_user("DSA", "upper")
    assert access.verify_user("dsa", PASSWORDS["dsa"])
    assert not access.verify_user("DSA", PASSWORDS["dsa"])
    assert access.groups("DSA") == frozenset()
    access.create_group("Sharkfest")
    assert access.group_members("Sharkfest") == []


def test_concurrent_create_user_one_wins(access):
    results = run_concurrently(
        [lambda i=i: access.create_user("racer", cheap_hash(f"pw{i}")) for i in range(4)]
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    winner = results.index(None)
    assert access.verify_user("racer", f"pw{winner}")


def test_verify_user_always_goes_through_passwords_verify(access, monkeypatch):
    calls: list[str | None] = []
    real = passwords.verify

    def spy(password, hashed):
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords, "verify", spy)
    access.create_user("waiting", cheap_hash("pw"), pending=True)
    assert access.verify_user("dsa", PASSWORDS["dsa"])
    assert not access.verify_user("nobody", "pw")
    assert not access.verify_user("waiting", "pw")
    assert len(calls) == 3
    assert calls[0] and not calls[1] and not calls[2]  # dummy verifications: no hash


def test_set_password_hash(access):
    access.set_password_hash("dsa", cheap_hash("new-pw"))
    assert access.verify_user("dsa", "new-pw")
    assert not access.verify_user("dsa", PASSWORDS["dsa"])
    with pytest.raises(NotFound):
        access.set_password_hash("nobody", cheap_hash("pw"))


def test_set_admin_and_has_admin(access):
    assert access.has_admin()
    access.set_admin("dsa", True)
    assert access.is_admin("dsa")
    access.set_admin("dsa", True)  # idempotent
    access.set_admin("admin", False)
    assert not access.is_admin("admin")
    assert access.has_admin()
    access.set_admin("dsa", False)
    assert not access.is_admin("dsa")
    assert not access.has_admin()
    assert [u.username for u in access.list_users() if u.admin] == []


def test_has_admin_false_after_deleting_the_only_admin(access):
    access.delete_user("admin")
    assert not access.has_admin()


def test_create_first_admin_only_when_no_admin_exists(access):
    assert access.create_first_admin("usurper", cheap_hash("pw")) is False
    assert access.get_password_hash("usurper") is None  # nothing created
    access.delete_user("admin")
    with pytest.raises(Conflict):
        access.create_first_admin("dsa", cheap_hash("pw"))  # the name exists
    assert access.create_first_admin("first", cheap_hash("pw")) is True
    assert access.is_admin("first") and access.verify_user("first", "pw")
    assert access.pending_users() == []
    assert access.create_first_admin("second", cheap_hash("pw")) is False


def test_concurrent_first_admins_exactly_one_wins(access):
    """Issue 10 item 5: twenty concurrent first registrations make exactly one admin."""
    access.delete_user("admin")
    hashed = cheap_hash("pw")
    results = run_concurrently(
        [lambda i=i: access.create_first_admin(f"racer{i}", hashed) for i in range(20)]
    )
    assert [r for r in results if not isinstance(r, bool)] == []  # no errors
    assert results.count(True) == 1
    winner = f"racer{results.index(True)}"
    assert [u.username for u in access.list_users() if u.admin] == [winner]
    assert {u.username for u in access.list_users()} == set(PASSWORDS) - {"admin"} | {winner}


# --- pending users ----------------------------------------------------------------------


def test_pending_user_cannot_log_in_and_is_not_listed(access):
    access.create_user("zed", cheap_hash("pw"), pending=True)
    access.create_user("amy", cheap_hash("pw"), pending=True)
    assert access.pending_users() == ["amy", "zed"]
    assert not access.verify_user("zed", "pw")
    assert "zed" not in [u.username for u in access.list_users()]
    assert access.get_user("zed") is None
    assert access.get_password_hash("zed")  # still there for export and approval


def test_pending_admin_is_no_admin(access):
    access.delete_user("admin")
    access.create_user("wannabe", cheap_hash("pw"), admin=True, pending=True)
    assert not access.is_admin("wannabe")
    assert not access.has_admin()


def test_approve_user_makes_a_normal_user(access):
    access.create_user("zed", cheap_hash("pw"), pending=True)
    access.approve_user("zed")
    assert access.verify_user("zed", "pw")
    assert access.pending_users() == []
    assert "zed" in [u.username for u in access.list_users()]
    assert access.get_user("zed") is not None
    access.add_member("zed", "sharkfest")
    assert access.groups("zed") == {"sharkfest"}


def test_approve_user_needs_a_pending_user(access):
    with pytest.raises(NotFound):
        access.approve_user("dsa")  # approved already
    with pytest.raises(NotFound):
        access.approve_user("nobody")


def test_sample_has_no_pending_users(access):
    assert access.pending_users() == []


# --- deleting users ---------------------------------------------------------------------


def test_delete_user_removes_everything_about_it(access):
    access.add_token(token("t-dsa", "dsa"))
    access.delete_user("dsa")
    assert not access.verify_user("dsa", PASSWORDS["dsa"])
    assert access.get_password_hash("dsa") is None
    assert access.get_user("dsa") is None
    assert "dsa" not in [u.username for u in access.list_users()]
    assert access.groups("dsa") == frozenset()
    assert access.group_members("sharkfest") == ["stevearc"]
    assert access.group_members("brotatos") == ["donlan"]
    assert access.user_package_permissions("dsa") == {}
    assert access.package_acl("polite-requests").users == {}
    assert access.get_token("t-dsa") is None
    assert access.list_tokens("dsa") == []
    # Others are untouched.
    assert access.package_acl("django-unchained").users == {"stevearc": {"r", "w"}}
    assert access.groups("donlan") == {"brotatos"}


def test_recreated_user_inherits_nothing(access):
    access.delete_user("dsa")
    access.create_user("dsa", cheap_hash("fresh"))
    assert access.groups("dsa") == frozenset()
    assert access.user_package_permissions("dsa") == {}
    assert access.get_user("dsa").groups == []


def test_delete_pending_user(access):
    access.create_user("zed", cheap_hash("pw"), pending=True)
    access.delete_user("zed")
    assert access.pending_users() == []
    assert access.get_password_hash("zed") is None


def test_delete_unknown_user_is_no_error(access):
    access.delete_user("nobody")
    assert [u.username for u in access.list_users()] == sorted(PASSWORDS)


def test_delete_user_removes_permissions_given_before_it_existed(access):
    access.set_permission("ghost-lib", "user", "ghost", "r", True)
    access.delete_user("ghost")
    assert access.package_acl("ghost-lib") == EMPTY_ACL


# --- groups -----------------------------------------------------------------------------


def test_create_group_is_idempotent(access):
    access.create_group("newgroup")
    access.create_group("newgroup")
    assert "newgroup" in access.list_groups()
    assert access.group_members("newgroup") == []
    access.create_group("sharkfest")  # existing, with members: unchanged
    assert access.group_members("sharkfest") == ["dsa", "stevearc"]


def test_add_member_creates_the_group(access):
    access.add_member("donlan", "fresh")
    assert "fresh" in access.list_groups()
    assert access.group_members("fresh") == ["donlan"]
    assert access.groups("donlan") == {"brotatos", "fresh"}
    assert access.get_user("donlan").groups == ["brotatos", "fresh"]


def test_add_member_is_idempotent(access):
    access.add_member("donlan", "sharkfest")
    access.add_member("donlan", "sharkfest")
    assert access.group_members("sharkfest") == ["donlan", "dsa", "stevearc"]


def test_add_member_needs_a_known_user(access):
    with pytest.raises(NotFound):
        access.add_member("nobody", "sharkfest")
    assert access.group_members("sharkfest") == ["dsa", "stevearc"]


def test_remove_member(access):
    access.remove_member("dsa", "sharkfest")
    assert access.group_members("sharkfest") == ["stevearc"]
    assert access.groups("dsa") == {"brotatos"}
    access.remove_member("dsa", "sharkfest")  # absent: no error
    access.remove_member("nobody", "nogroup")
    assert "sharkfest" in access.list_groups()  # the group stays, even when emptied
    access.remove_member("stevearc", "sharkfest")
    assert access.group_members("sharkfest") == []


def test_delete_group_removes_memberships_and_permissions(access):
    access.delete_group("brotatos")
    assert "brotatos" not in access.list_groups()
    with pytest.raises(NotFound):
        access.group_members("brotatos")
    assert access.groups("dsa") == {"sharkfest"}
    assert access.groups("donlan") == frozenset()
    assert access.group_package_permissions("brotatos") == {}
    assert access.package_acl("pyramid-head").groups == {"everyone": {"r"}}
    assert access.package_acl("polite-requests").groups == {"authenticated": {"r"}}
    # Recreated: an empty group, no old permissions.
    access.create_group("brotatos")
    assert access.group_members("brotatos") == []
    assert access.group_package_permissions("brotatos") == {}


def test_delete_unknown_group_is_no_error(access):
    access.delete_group("nogroup")
    assert access.list_groups() == sorted(GROUPS)


def test_delete_special_group_permissions(access):
    access.delete_group("everyone")
    assert access.package_acl("pyramid-head").groups == {"brotatos": {"r", "w"}}


# --- package permissions ----------------------------------------------------------------


def test_grant_is_idempotent(access):
    access.set_permission("new-lib", "user", "donlan", "r", True)
    access.set_permission("new-lib", "user", "donlan", "r", True)
    assert access.package_acl("new-lib").users == {"donlan": {"r"}}
    access.set_permission("new-lib", "user", "donlan", "w", True)
    assert access.package_acl("new-lib").users == {"donlan": {"r", "w"}}
    assert access.user_package_permissions("donlan") == {"new-lib": {"r", "w"}}


def test_revoke_is_idempotent_and_last_revoke_empties_the_acl(access):
    access.set_permission("new-lib", "group", "brotatos", "w", True)
    access.set_permission("new-lib", "group", "brotatos", "r", False)  # absent: no-op
    assert access.package_acl("new-lib").groups == {"brotatos": {"w"}}
    access.set_permission("new-lib", "group", "brotatos", "w", False)
    access.set_permission("new-lib", "group", "brotatos", "w", False)
    assert access.package_acl("new-lib") == EMPTY_ACL
    assert "new-lib" not in access.group_package_permissions("brotatos")


def test_revoking_every_sample_entry_empties_the_acl(access):
    for kind, entries in PACKAGES["django-unchained"].items():
        for name, perms in entries.items():
            for perm in perms:
                access.set_permission("django-unchained", kind, name, perm, False)
    assert access.package_acl("django-unchained") == EMPTY_ACL
    assert access.user_package_permissions("stevearc") == {}


def test_revoke_one_of_two(access):
    access.set_permission("django-unchained", "user", "stevearc", "w", False)
    assert access.package_acl("django-unchained").users == {"stevearc": {"r"}}
    assert access.user_package_permissions("stevearc") == {"django-unchained": {"r"}}


def test_permissions_for_special_groups_and_unknown_names(access):
    access.set_permission("open-lib", "group", "everyone", "r", True)
    access.set_permission("open-lib", "group", "authenticated", "w", True)
    access.set_permission("open-lib", "user", "not-yet-registered", "r", True)
    acl = access.package_acl("open-lib")
    assert acl.groups == {"everyone": {"r"}, "authenticated": {"w"}}
    assert acl.users == {"not-yet-registered": {"r"}}
    assert "everyone" not in access.list_groups()


def test_set_permission_rejects_bad_arguments(access):
    with pytest.raises(InvalidInput):
        access.set_permission("new-lib", "user", "dsa", "x", True)
    with pytest.raises(InvalidInput):
        access.set_permission("new-lib", "robot", "dsa", "r", True)
    assert access.package_acl("new-lib") == EMPTY_ACL


def test_concurrent_grants_all_land(access):
    results = run_concurrently(
        [
            lambda: access.set_permission("race-lib", "user", "dsa", "r", True),
            lambda: access.set_permission("race-lib", "user", "dsa", "w", True),
            lambda: access.set_permission("race-lib", "group", "brotatos", "r", True),
            lambda: access.set_permission("race-lib", "group", "sharkfest", "w", True),
        ]
    )
    assert results == [None] * 4
    acl = access.package_acl("race-lib")
    assert acl.users == {"dsa": {"r", "w"}}
    assert acl.groups == {"brotatos": {"r"}, "sharkfest": {"w"}}
    assert access.user_package_permissions("dsa")["race-lib"] == {"r", "w"}


# --- registration -----------------------------------------------------------------------


def test_allow_register_defaults_to_false_and_toggles(access):
    assert access.allow_register() is False
    access.set_allow_register(True)
    assert access.allow_register() is True
    access.set_allow_register(False)
    assert access.allow_register() is False


# --- API tokens -------------------------------------------------------------------------


def test_token_round_trips_every_field(access):
    plain = token("t-plain")
    scoped = token("t-scoped", expires=1_800_000_000.5, projects=["pyramid-head", "x"])
    nothing = token("t-none", projects=[])
    limited = token("t-caps", capabilities=["read", "upload"])
    for record in (plain, scoped, nothing, limited):
        access.add_token(record)
        assert access.get_token(record.token_id) == record


def test_get_unknown_token(access):
    assert access.get_token("nope") is None


def test_token_of_an_unknown_user_needs_external_user(access):
    with pytest.raises(NotFound):
        access.add_token(token("t-ghost", "ghost"))
    assert access.get_token("t-ghost") is None
    # A user of another access backend (config file, LDAP): the store takes its word.
    access.add_token(token("t-ext", "ext-user"), external_user=True)
    assert access.get_token("t-ext") == token("t-ext", "ext-user")
    assert [t.token_id for t in access.list_tokens("ext-user")] == ["t-ext"]
    access.delete_token("t-ext")
    assert access.list_tokens("ext-user") == []


def test_list_tokens_of_one_user_oldest_first(access):
    access.add_token(token("b", "dsa", created=2.0))
    access.add_token(token("a", "dsa", created=3.0))
    access.add_token(token("c", "dsa", created=1.0))
    access.add_token(token("other", "donlan"))
    assert [t.token_id for t in access.list_tokens("dsa")] == ["c", "b", "a"]
    assert [t.token_id for t in access.list_tokens("donlan")] == ["other"]
    assert access.list_tokens("stevearc") == []
    assert access.list_tokens("dsa")[0] == token("c", "dsa", created=1.0)


def test_delete_token(access):
    access.add_token(token("t1"))
    access.add_token(token("t2"))
    access.delete_token("t1")
    assert access.get_token("t1") is None
    assert [t.token_id for t in access.list_tokens("dsa")] == ["t2"]
    access.delete_token("t1")  # absent: no error
    access.delete_token("never")


def test_tokens_survive_unrelated_changes(access):
    access.add_token(token("t1"))
    access.set_password_hash("dsa", cheap_hash("new"))
    access.add_member("dsa", "fresh")
    access.set_permission("new-lib", "user", "dsa", "r", True)
    access.delete_user("donlan")
    assert access.get_token("t1") == token("t1")


# --- health -----------------------------------------------------------------------------


def test_health(access):
    access.health()


def test_package_acls_follow_every_change(access):
    projects = ["django-unchained", "polite-requests", "pyramid-head", "new-lib"]

    def same_as_one_by_one() -> None:
        assert access.package_acls(projects) == {p: access.package_acl(p) for p in projects}

    access.set_permission("new-lib", "user", "dsa", "r", True)
    access.set_permission("new-lib", "group", "everyone", "w", True)
    same_as_one_by_one()
    assert access.package_acls(["new-lib"])["new-lib"].users == {"dsa": {"r"}}
    access.delete_user("dsa")
    same_as_one_by_one()
    access.delete_group("brotatos")
    access.set_permission("new-lib", "group", "everyone", "w", False)
    same_as_one_by_one()
    assert access.package_acls(["new-lib"]) == {"new-lib": EMPTY_ACL}
