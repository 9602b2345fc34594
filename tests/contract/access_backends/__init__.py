"""One module per Access backend, each with ``build(request, tmp_path) -> backend``.

Every builder returns a backend holding :data:`SAMPLE` (pypicloud manual §1.6.2 plus one
admin), however that backend stores it: an INI file, rows, a secret, an LDAP tree, a
remote test server. ``tests/contract/test_access.py`` runs every behaviour on each.
Mutable backends are also listed in :data:`MUTABLE`.
"""

from __future__ import annotations

BACKENDS = ["config", "sqlite", "dynamo", "secretsmanager", "remote", "ldap"]
MUTABLE = ["sqlite", "dynamo", "secretsmanager"]

PASSWORDS = {"stevearc": "gunface", "dsa": "paranoia", "donlan": "osptony", "admin": "root"}
ADMINS = ["admin"]
GROUPS = {"sharkfest": ["dsa", "stevearc"], "brotatos": ["donlan", "dsa"]}
# project (normalized) -> kind -> name -> permissions
PACKAGES = {
    "django-unchained": {"user": {"stevearc": "rw"}, "group": {"sharkfest": "rw"}},
    "polite-requests": {"user": {"dsa": "rw"}, "group": {"authenticated": "r", "brotatos": "rw"}},
    "pyramid-head": {"user": {}, "group": {"brotatos": "rw", "everyone": "r"}},
}
