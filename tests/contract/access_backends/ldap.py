"""LDAP (manual §1.6.4) holding the sample: users, passwords and admins in a real slapd.

Logins and admin status come from LDAP (the ``slapd`` fixture loads the sample's users and
marks its admins); groups and package permissions come from ``auth.ldap.fallback = config``,
that is from the config-file keys ``group.*`` and ``package.*``, as in pypicloud.
"""

from __future__ import annotations

from stratus.adapters.ldap_access import LdapAccess
from tests.support.slapd import ADMIN_TYPE, SERVICE_DN, SERVICE_PASSWORD, USER_DN_FORMAT

from . import GROUPS, PACKAGES


def fallback_options() -> dict[str, str]:
    """The sample's groups and package permissions as config-file keys."""
    options = {f"group.{group}": " ".join(members) for group, members in GROUPS.items()}
    for project, kinds in PACKAGES.items():
        for kind, entries in kinds.items():
            for name, perm in entries.items():
                options[f"package.{project}.{kind}.{name}"] = perm
    return options


def build(request, tmp_path):
    server = request.getfixturevalue("slapd")
    options = {
        "pypi.auth": "ldap",
        "auth.ldap.url": server.url,
        "auth.ldap.service_dn": SERVICE_DN,
        "auth.ldap.service_password": SERVICE_PASSWORD,
        "auth.ldap.user_dn_format": USER_DN_FORMAT,
        "auth.ldap.admin_field": "employeeType",
        "auth.ldap.admin_value": ADMIN_TYPE,
        "auth.ldap.fallback": "config",
        **fallback_options(),
    }
    return LdapAccess.from_options(options)
