"""Contract suite for the Access port: every backend gets the same behaviour tests.

The fixture builds each backend holding the sample of pypicloud's manual §1.6.2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from passlib.hash import sha256_crypt, sha512_crypt
from stratus import passwords
from stratus.adapters.config_access import ConfigAccess
from stratus.domain.permissions import EMPTY_ACL
from stratus.policy import AccessPolicy
from stratus.settings import Settings

PASSWORDS = {"stevearc": "gunface", "dsa": "paranoia", "donlan": "osptony"}

# pypicloud manual §1.6.2, with one user per hash scheme a pypicloud deployment may hold.
SAMPLE = """
[app:main]
user.stevearc = {stevearc}
user.dsa = {dsa}
user.donlan = {donlan}
auth.admins = admin
user.admin = {admin}

group.sharkfest =
    stevearc
    dsa
group.brotatos =
    donlan
    dsa

package.django_unchained.user.stevearc = rw
package.django_unchained.group.sharkfest = rw

package.polite_requests.user.dsa = rw
package.polite_requests.group.authenticated = r
package.polite_requests.group.brotatos = rw

package.pyramid_head.group.brotatos = rw
package.pyramid_head.group.everyone = r
"""


def write_sample(path: Path) -> Path:
    path.write_text(
        SAMPLE.format(
            stevearc=sha256_crypt.using(rounds=5000).hash("gunface"),  # ppc-gen-password, old
            dsa=sha512_crypt.using(rounds=5000).hash("paranoia"),  # ppc-gen-password, 1.x
            donlan=passwords.hash_password("osptony"),  # stratus hash-password
            admin=passwords.hash_password("root"),
        )
    )
    return path


@pytest.fixture(params=["config"])
def access(request, tmp_path):
    if request.param == "config":
        backend, _ = ConfigAccess.from_file(write_sample(tmp_path / "access.ini"))
        return backend
    raise AssertionError(request.param)


@pytest.mark.parametrize("user", sorted(PASSWORDS))
def test_verify_user_accepts_right_password(access, user):
    assert access.verify_user(user, PASSWORDS[user])


@pytest.mark.parametrize("user", sorted(PASSWORDS))
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


@pytest.mark.parametrize("user", list(TABLE), ids=lambda u: u or "everyone")
def test_manual_permission_table(access, user):
    import base64

    policy = AccessPolicy(access, Settings())
    header = None
    if user is not None:
        header = "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    who = policy.identify(header)
    for project, expected in TABLE[user].items():
        got = "".join(p for p in "rw" if p in policy.permissions(who, project))
        assert got == expected, (user, project)


def test_admin_reads_and_writes_everything(access):
    import base64

    policy = AccessPolicy(access, Settings())
    who = policy.identify("Basic " + base64.b64encode(b"admin:root").decode())
    for project in ("django-unchained", "anything-else"):
        assert policy.permissions(who, project) == {"r", "w"}
