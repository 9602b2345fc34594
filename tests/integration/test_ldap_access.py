"""The LDAP access backend (manual §1.6.4) against a real OpenLDAP slapd on loopback.

The directory the ``slapd`` fixture loads is described in ``tests/support/slapd.py``.
Tests that change the directory or stop the server use a private one (``slapd_factory``).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from stratus.adapters.config_access import ConfigAccess
from stratus.adapters.ldap_access import LdapAccess
from stratus.domain import passwords
from stratus.domain.errors import BackendUnavailable, NotFound
from stratus.domain.permissions import EMPTY_ACL
from stratus.ports import AccessBackend, AccessDirectory
from tests.contract.access_backends import PASSWORDS
from tests.contract.access_backends.ldap import fallback_options
from tests.support.processes import closed_port
from tests.support.slapd import (
    ADMIN_GROUP_DN,
    ADMIN_TYPE,
    PEOPLE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
    STAFF,
    SUFFIX,
    UNIQUE_GROUP_DN,
    USER_DN_FORMAT,
    ssha,
    user_dn,
)

SEARCH_FILTER = "(&(objectClass=inetOrgPerson)(uid={username}))"
BOB = STAFF["Robert Paulson"]  # ("bob", password); DN cn=Robert Paulson,ou=staff,...


def ldap_options(url: str, **extra: str) -> dict[str, str]:
    options = {
        "auth.ldap.url": url,
        "auth.ldap.service_dn": SERVICE_DN,
        "auth.ldap.service_password": SERVICE_PASSWORD,
    }
    options.update({f"auth.ldap.{key}": value for key, value in extra.items()})
    if "base_dn" not in extra and "user_dn_format" not in extra:
        options["auth.ldap.user_dn_format"] = USER_DN_FORMAT
    return options


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dn_format(slapd) -> LdapAccess:
    return LdapAccess.from_options(ldap_options(slapd.url))


@pytest.fixture
def search(slapd) -> LdapAccess:
    return LdapAccess.from_options(
        ldap_options(slapd.url, base_dn=SUFFIX, user_search_filter=SEARCH_FILTER)
    )


def test_implements_the_ports(dn_format):
    assert isinstance(dn_format, AccessBackend)
    assert isinstance(dn_format, AccessDirectory)


# --- logging in ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["dn_format", "search"])
@pytest.mark.parametrize("user", sorted(PASSWORDS))
def test_right_password_binds(request, style, user):
    access = request.getfixturevalue(style)
    assert access.verify_user(user, PASSWORDS[user])


@pytest.mark.parametrize("style", ["dn_format", "search"])
def test_wrong_password_is_rejected(request, style):
    access = request.getfixturevalue(style)
    assert not access.verify_user("dsa", "paranoiax")
    assert not access.verify_user("dsa", PASSWORDS["stevearc"])  # another user's password
    assert not access.verify_user("dsa", " ")


@pytest.mark.parametrize("style", ["dn_format", "search"])
def test_empty_password_is_refused(request, style, slapd):
    """A simple bind with a DN and no password is an unauthenticated bind, which this slapd
    (``allow bind_anon_dn``, like many servers) answers with success: the backend must
    refuse it itself."""
    ldapwhoami = shutil.which("ldapwhoami")
    if ldapwhoami is not None:  # ldap3 refuses to send such a bind; OpenLDAP's client does not
        bind = [ldapwhoami, "-x", "-H", slapd.url, "-D", user_dn("dsa"), "-w", ""]
        assert subprocess.run(bind, capture_output=True).returncode == 0  # the hazard is real
    access = request.getfixturevalue(style)
    assert not access.verify_user("dsa", "")  # ... and the backend refuses it
    assert not access.verify_user("", "")


@pytest.mark.parametrize("style", ["dn_format", "search"])
def test_unknown_user_is_rejected(request, style):
    access = request.getfixturevalue(style)
    assert not access.verify_user("nobody", "gunface")
    assert not access.is_admin("nobody")
    assert access.get_user("nobody") is None


def test_search_finds_users_whose_dn_lacks_the_username(search, dn_format):
    username, password = BOB
    assert search.verify_user(username, password)
    assert not search.verify_user(username, password + "x")
    assert not dn_format.verify_user(username, password)  # uid=bob,ou=people does not exist


def test_search_with_several_results_refuses_unless_told_to_take_the_first(slapd, search):
    # cn=Twin One and cn=Twin Two both have uid twin.
    assert not search.verify_user("twin", "one")
    assert not search.verify_user("twin", "two")
    lenient = LdapAccess.from_options(
        ldap_options(
            slapd.url,
            base_dn=SUFFIX,
            user_search_filter=SEARCH_FILTER,
            ignore_multiple_results="true",
        )
    )
    # The first entry the server returns (the one added first) wins, the other cannot log in.
    assert lenient.verify_user("twin", "one")
    assert not lenient.verify_user("twin", "two")


def test_usernames_cannot_inject_into_filters_or_dns(slapd, search, dn_format):
    lenient = LdapAccess.from_options(
        ldap_options(
            slapd.url, base_dn=SUFFIX, user_search_filter="(uid={username})",
            ignore_multiple_results="true",
        )
    )  # fmt: skip
    for access in (search, lenient, dn_format):
        assert not access.verify_user("*", PASSWORDS["stevearc"])
        assert not access.verify_user("stevearc)(uid=*", PASSWORDS["stevearc"])
        assert not access.verify_user("stevearc,ou=people", PASSWORDS["stevearc"])
        assert not access.verify_user("*", "one")


def test_service_account_bind_failure_makes_everything_fail_closed(slapd):
    options = ldap_options(slapd.url)
    options["auth.ldap.service_password"] = "wrong"
    access = LdapAccess.from_options(options)
    assert not access.verify_user("dsa", PASSWORDS["dsa"])
    assert not access.is_admin("admin")
    with pytest.raises(BackendUnavailable, match="service bind"):
        access.health()


def test_service_username_logs_in_as_the_service_account_and_is_admin(slapd):
    access = LdapAccess.from_options(ldap_options(slapd.url, service_username="ldapsvc"))
    assert access.verify_user("ldapsvc", SERVICE_PASSWORD)
    assert not access.verify_user("ldapsvc", SERVICE_PASSWORD + "x")
    assert access.is_admin("ldapsvc")
    assert not access.is_admin("dsa")


# --- admins --------------------------------------------------------------------------------


def test_admin_by_field_and_value(slapd):
    access = LdapAccess.from_options(
        ldap_options(slapd.url, admin_field="employeeType", admin_value=ADMIN_TYPE)
    )
    assert access.is_admin("admin")
    assert not access.is_admin("dsa")
    assert not access.is_admin("")


def test_admin_by_memberof_overlay(slapd):
    # The manual's typical use: memberOf, maintained by the overlay; DNs compare like LDAP
    # does (case-insensitively); admin_value holds one value per line.
    access = LdapAccess.from_options(
        ldap_options(
            slapd.url,
            admin_field="memberOf",
            admin_value=f"cn=somebody-else,{PEOPLE_DN}\n    {ADMIN_GROUP_DN.upper()}\n",
        )
    )
    assert access.is_admin("admin")
    assert not access.is_admin("stevearc")


def test_admin_values_as_usernames(slapd):
    # The manual's second example: admin_field = cn, admin_value = one name per line.
    access = LdapAccess.from_options(
        ldap_options(slapd.url, admin_field="cn", admin_value="donlan\nstevearc")
    )
    assert access.is_admin("donlan")
    assert access.is_admin("stevearc")
    assert not access.is_admin("dsa")
    assert not access.is_admin("admin")


@pytest.mark.parametrize("style", ["dn_format", "search"])
def test_admin_by_group_of_names(slapd, style):
    lookup = {"dn_format": {}, "search": {"base_dn": SUFFIX, "user_search_filter": SEARCH_FILTER}}
    access = LdapAccess.from_options(
        ldap_options(slapd.url, admin_group_dn=ADMIN_GROUP_DN, **lookup[style])
    )
    assert access.is_admin("admin")
    assert not access.is_admin("dsa")
    assert not access.is_admin("nobody")


def test_admin_by_group_of_unique_names(slapd):
    access = LdapAccess.from_options(ldap_options(slapd.url, admin_group_dn=UNIQUE_GROUP_DN))
    assert access.is_admin("donlan")
    assert not access.is_admin("admin")


def test_missing_admin_group_means_no_admins(slapd):
    access = LdapAccess.from_options(
        ldap_options(slapd.url, admin_group_dn=f"cn=no-such-group,{SUFFIX}")
    )
    assert not access.is_admin("admin")
    assert access.verify_user("admin", PASSWORDS["admin"])


# --- fallback = config ---------------------------------------------------------------------


def test_fallback_config_gives_groups_and_permissions_but_not_logins_or_admins(slapd):
    options = ldap_options(
        slapd.url, admin_field="employeeType", admin_value=ADMIN_TYPE, fallback="config"
    )
    options.update(fallback_options())
    # Config keys LDAP must ignore: passwords and admins decide nothing here.
    options["user.dsa"] = passwords.hash_password("config-password")
    options["user.ghost"] = passwords.hash_password("config-password")
    options["auth.admins"] = "dsa"
    access = LdapAccess.from_options(options)
    assert access.groups("dsa") == {"sharkfest", "brotatos"}
    acl = access.package_acl("django-unchained")
    assert acl.users == {"stevearc": {"r", "w"}}
    assert acl.groups == {"sharkfest": {"r", "w"}}
    assert not access.verify_user("dsa", "config-password")
    assert not access.verify_user("ghost", "config-password")
    assert access.verify_user("dsa", PASSWORDS["dsa"])
    assert not access.is_admin("dsa")
    assert access.is_admin("admin")
    info = access.get_user("dsa")
    assert info is not None
    assert (info.username, info.admin, info.groups) == ("dsa", False, ["brotatos", "sharkfest"])


def test_without_fallback_there_are_no_groups_or_permissions(dn_format):
    assert dn_format.groups("dsa") == frozenset()
    assert dn_format.package_acl("django-unchained") == EMPTY_ACL
    assert dn_format.list_groups() == []
    with pytest.raises(NotFound):
        dn_format.group_members("sharkfest")
    assert dn_format.user_package_permissions("dsa") == {}
    assert dn_format.group_package_permissions("sharkfest") == {}
    info = dn_format.get_user("admin")
    assert info is not None and info.groups == []


@pytest.mark.skipif(
    not hasattr(ConfigAccess, "list_groups"),
    reason="the config backend does not implement AccessDirectory yet",
)
def test_directory_reads_come_from_the_fallback(slapd):
    options = ldap_options(
        slapd.url, admin_field="employeeType", admin_value=ADMIN_TYPE, fallback="config"
    )
    options.update(fallback_options())
    options["user.admin"] = passwords.hash_password("unused")
    options["user.ghost"] = passwords.hash_password("unused")  # not in LDAP: not listed
    access = LdapAccess.from_options(options)
    users = {(u.username, u.admin) for u in access.list_users()}
    assert users == {("admin", True), ("dsa", False), ("stevearc", False), ("donlan", False)}
    assert access.list_groups() == ["brotatos", "sharkfest"]
    assert access.group_members("sharkfest") == ["dsa", "stevearc"]
    assert access.user_package_permissions("dsa") == {"polite-requests": {"r", "w"}}
    assert access.group_package_permissions("brotatos") == {
        "polite-requests": {"r", "w"},
        "pyramid-head": {"r", "w"},
    }


# --- caching -------------------------------------------------------------------------------


def _add_admin_member(server, username: str) -> None:
    from ldap3 import MODIFY_ADD

    conn = server.admin_connection()
    try:
        conn.modify(ADMIN_GROUP_DN, {"member": [(MODIFY_ADD, [user_dn(username)])]})
    finally:
        conn.unbind()


@pytest.mark.parametrize("admin_option", ["admin_group_dn", "memberOf"])
def test_user_entries_are_cached_for_cache_time(slapd_factory, admin_option):
    server = slapd_factory()
    extra = (
        {"admin_group_dn": ADMIN_GROUP_DN}
        if admin_option == "admin_group_dn"
        else {"admin_field": "memberOf", "admin_value": ADMIN_GROUP_DN}
    )
    clock = FakeClock()
    access = LdapAccess.from_options(
        ldap_options(server.url, cache_time="60", **extra), clock=clock
    )
    assert not access.is_admin("dsa")
    _add_admin_member(server, "dsa")
    clock.now += 59
    assert not access.is_admin("dsa")  # the cached entry
    clock.now += 2
    assert access.is_admin("dsa")  # expired: fetched again


def test_without_cache_time_entries_are_cached_forever(slapd_factory):
    server = slapd_factory()
    clock = FakeClock()
    access = LdapAccess.from_options(
        ldap_options(server.url, admin_group_dn=ADMIN_GROUP_DN), clock=clock
    )
    assert not access.is_admin("dsa")
    _add_admin_member(server, "dsa")
    clock.now += 10 * 365 * 86400
    assert not access.is_admin("dsa")
    access.clear_cache()
    assert access.is_admin("dsa")


def test_cache_time_zero_does_not_cache(slapd_factory):
    server = slapd_factory()
    access = LdapAccess.from_options(
        ldap_options(server.url, admin_group_dn=ADMIN_GROUP_DN, cache_time="0")
    )
    assert not access.is_admin("dsa")
    _add_admin_member(server, "dsa")
    assert access.is_admin("dsa")


def test_passwords_are_never_cached(slapd_factory):
    from ldap3 import MODIFY_REPLACE

    server = slapd_factory()
    access = LdapAccess.from_options(ldap_options(server.url, cache_time="3600"))
    assert access.verify_user("dsa", PASSWORDS["dsa"])
    conn = server.admin_connection()
    try:
        conn.modify(user_dn("dsa"), {"userPassword": [(MODIFY_REPLACE, [ssha("new-password")])]})
        assert access.verify_user("dsa", "new-password")
        assert not access.verify_user("dsa", PASSWORDS["dsa"])
        conn.delete(user_dn("dsa"))
        assert not access.verify_user("dsa", "new-password")  # cached DN, gone from LDAP
    finally:
        conn.unbind()


def test_unknown_users_are_not_cached(slapd_factory):
    server = slapd_factory()
    access = LdapAccess.from_options(ldap_options(server.url))
    assert not access.verify_user("newcomer", "s3cret")
    conn = server.admin_connection()
    try:
        conn.add(
            user_dn("newcomer"),
            ["inetOrgPerson"],
            {"uid": "newcomer", "cn": "newcomer", "sn": "newcomer", "userPassword": ssha("s3cret")},
        )
    finally:
        conn.unbind()
    assert access.verify_user("newcomer", "s3cret")


# --- LDAP down -----------------------------------------------------------------------------


def test_slapd_down_fails_closed_and_health_raises_then_recovers(slapd_factory):
    server = slapd_factory()
    access = LdapAccess.from_options(
        ldap_options(server.url, admin_field="employeeType", admin_value=ADMIN_TYPE)
    )
    assert access.verify_user("dsa", PASSWORDS["dsa"])
    access.health()

    server.stop()
    assert not access.verify_user("dsa", PASSWORDS["dsa"])  # cached entry: the bind fails
    assert not access.verify_user("stevearc", PASSWORDS["stevearc"])  # lookup fails
    assert not access.is_admin("admin")
    with pytest.raises(BackendUnavailable):
        access.health()
    with pytest.raises(BackendUnavailable):
        access.get_user("donlan")

    server.start()  # same port and data: the backend reconnects by itself
    assert access.verify_user("dsa", PASSWORDS["dsa"])
    assert access.is_admin("admin")
    access.health()


def test_a_dead_service_connection_is_replaced_transparently(slapd_factory):
    server = slapd_factory()
    access = LdapAccess.from_options(ldap_options(server.url))
    assert access.get_user("dsa") is not None  # the service connection is open
    server.stop()
    server.start()  # the open connection is dead now; nothing used it meanwhile
    assert access.get_user("stevearc") is not None  # first try: reconnect and retry
    access.health()


def test_no_server_at_all(slapd):
    with closed_port() as port:
        access = LdapAccess.from_options(ldap_options(f"ldap://127.0.0.1:{port}"))
        assert not access.verify_user("dsa", PASSWORDS["dsa"])
        assert not access.is_admin("admin")
        with pytest.raises(BackendUnavailable):
            access.health()


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "auth.ldap.url"),
        ({"auth.ldap.url": "http://x"}, "ldap://"),
        ({"auth.ldap.url": "ldap://x"}, "user_dn_format or both"),
        ({"auth.ldap.url": "ldap://x", "auth.ldap.base_dn": SUFFIX}, "user_dn_format or both"),
        (
            {
                "auth.ldap.url": "ldap://x",
                "auth.ldap.user_dn_format": USER_DN_FORMAT,
                "auth.ldap.base_dn": SUFFIX,
                "auth.ldap.user_search_filter": SEARCH_FILTER,
            },
            "Cannot use",
        ),
        ({"auth.ldap.url": "ldap://x", "auth.ldap.user_dn_format": "uid=x,dc=y"}, "{username}"),
        (
            {
                "auth.ldap.url": "ldap://x",
                "auth.ldap.user_dn_format": USER_DN_FORMAT,
                "auth.ldap.fallback": "sql",
            },
            "only 'config'",
        ),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        LdapAccess.from_options(options)


def test_construction_does_not_touch_the_network():
    access = LdapAccess.from_options(
        {"auth.ldap.url": "ldap://ldap.invalid:389", "auth.ldap.user_dn_format": USER_DN_FORMAT}
    )
    assert access.groups("dsa") == frozenset()
