"""Export/import of access control data (§1.8.2) in pypicloud's ``ppc-export`` format.

- a ``ppc-export -o acl.json.gz`` file of a pypicloud deployment imports unchanged into
  every mutable backend (logins with the old hashes, groups, permissions, pending users,
  the registration switch);
- ``load`` is idempotent and merges as pypicloud's does;
- dump -> file -> load between every ordered pair of mutable backends, and from the
  config-file backend into each, gives equal dumps.
"""

from __future__ import annotations

import copy
import gzip
import importlib
import io
import json
from functools import cache
from typing import Any

import pytest
from passlib.hash import sha256_crypt

from stratus.app import acl_transfer
from stratus.domain.names import normalize
from stratus.ports import TokenRecord
from tests.contract.access_backends import MUTABLE, PASSWORDS
from tests.contract.access_backends.config import build as build_config

# dsa's hash is the one of the manual's §1.6.2 sample, as ppc-gen-password made it.
MANUAL_DSA_HASH = "$5$rounds=80000$U/lot7eW6gFvuvna$KDyrQvi40XXWzMRkBq1Z/0odJEXzqUVNaPIArL/W0s6"
EXPORT_PASSWORDS = {
    "stevearc": "gunface",
    "dsa": "paranoia",
    "donlan": "osptony",
    "root": "hunter2",
    "newbie": "please",
}


@cache
def pypicloud_export() -> dict[str, Any]:
    """What pypicloud 1.3's ``access.dump()`` gives for a SQL backend (key order as it)."""

    def hashed(user: str) -> str:
        if user == "dsa":
            return MANUAL_DSA_HASH
        return sha256_crypt.using(rounds=5000).hash(EXPORT_PASSWORDS[user])

    return {
        "allow_register": True,
        "version": "1.3.12",
        "groups": {
            "sharkfest": ["stevearc", "dsa"],
            "brotatos": ["donlan", "dsa"],
            "release-managers": [],
        },
        "users": [
            {"username": "stevearc", "admin": False, "password": hashed("stevearc")},
            {"username": "dsa", "admin": False, "password": hashed("dsa")},
            {"username": "donlan", "admin": False, "password": hashed("donlan")},
            {"username": "root", "admin": True, "password": hashed("root")},
        ],
        "packages": {
            "users": {
                "django_unchained": {"stevearc": ["read", "write"]},
                "polite_requests": {"dsa": ["read", "write"]},
            },
            "groups": {
                "django_unchained": {"sharkfest": ["read", "write"]},
                "polite_requests": {"brotatos": ["read", "write"], "authenticated": ["read"]},
                "pyramid_head": {"brotatos": ["read", "write"], "everyone": ["read"]},
            },
        },
        "pending_users": [{"username": "newbie", "password": hashed("newbie")}],
    }


def write_ppc_export(path) -> None:
    """As ``ppc-export config.ini -o acl.json.gz`` writes it: json.dump into gzip.open."""
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump(pypicloud_export(), out)


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """A dump without its exporter version, order-free, with normalized project names."""
    packages: dict[str, dict[str, dict[str, list[str]]]] = {"users": {}, "groups": {}}
    for kind in ("users", "groups"):
        for package, entries in data["packages"][kind].items():
            target = packages[kind].setdefault(normalize(package), {})
            for name, perms in entries.items():
                target[name] = sorted(set(target.get(name, [])) | set(perms))
    return {
        "allow_register": data["allow_register"],
        "groups": {group: sorted(members) for group, members in data["groups"].items()},
        "users": sorted(data["users"], key=lambda u: u["username"]),
        "packages": packages,
        "pending_users": sorted(data.get("pending_users", []), key=lambda u: u["username"]),
    }


def builder(name: str):
    module_name = f"tests.contract.access_backends.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        pytest.skip(f"no {name} backend builder yet")
    if not hasattr(module, "build_empty"):
        pytest.skip(f"the {name} builder has no build_empty")
    return module


def empty_backend(name: str, request, tmp_path, label: str):
    where = tmp_path / label
    where.mkdir()
    return builder(name).build_empty(request, where)


def sample_backend(name: str, request, tmp_path, label: str):
    """The §1.6.2 sample plus what only a mutable backend holds."""
    where = tmp_path / label
    where.mkdir()
    backend = builder(name).build(request, where)
    backend.create_user("newbie", sha256_crypt.using(rounds=1000).hash("please"), pending=True)
    backend.create_group("release-managers")
    backend.set_allow_register(True)
    backend.add_token(TokenRecord("tok1", "dsa", "ci", "00" * 32, 1.0))
    return backend


# --- a real pypicloud export ------------------------------------------------------------


@pytest.mark.parametrize("name", MUTABLE)
def test_pypicloud_export_imports_unchanged(name, request, tmp_path):
    path = tmp_path / "acl.json.gz"
    write_ppc_export(path)
    backend = empty_backend(name, request, tmp_path, "target")

    acl_transfer.load(backend, acl_transfer.read_acl_file(path))

    for user in ("stevearc", "dsa", "donlan", "root"):
        assert backend.verify_user(user, EXPORT_PASSWORDS[user]), user
    assert backend.is_admin("root") and not backend.is_admin("dsa")
    assert backend.has_admin()
    assert backend.pending_users() == ["newbie"]
    assert not backend.verify_user("newbie", EXPORT_PASSWORDS["newbie"])
    assert backend.groups("dsa") == {"sharkfest", "brotatos"}
    assert backend.group_members("release-managers") == []
    acl = backend.package_acl("polite-requests")
    assert acl.users == {"dsa": {"r", "w"}}
    assert acl.groups == {"brotatos": {"r", "w"}, "authenticated": {"r"}}
    assert backend.package_acl("pyramid-head").groups == {
        "brotatos": {"r", "w"},
        "everyone": {"r"},
    }
    assert backend.allow_register()

    exported = acl_transfer.dump(backend)
    assert comparable(exported) == comparable(pypicloud_export())
    assert exported["version"] != pypicloud_export()["version"]  # ours, not the file's


@pytest.mark.parametrize("name", MUTABLE)
def test_load_twice_changes_nothing(name, request, tmp_path):
    backend = empty_backend(name, request, tmp_path, "target")
    acl_transfer.load(backend, pypicloud_export())
    first = acl_transfer.dump(backend)
    acl_transfer.load(backend, pypicloud_export())
    assert acl_transfer.dump(backend) == first


@pytest.mark.parametrize("name", MUTABLE)
def test_load_merges_into_existing_data_as_pypicloud(name, request, tmp_path):
    backend = empty_backend(name, request, tmp_path, "target")
    backend.create_user("dsa", sha256_crypt.using(rounds=1000).hash("mine"), admin=True)
    backend.create_user("stevearc", sha256_crypt.using(rounds=1000).hash("s"), pending=True)
    backend.add_member("dsa", "locals")
    backend.set_permission("polite-requests", "user", "dsa", "r", True)
    backend.set_permission("local-lib", "group", "locals", "w", True)

    acl_transfer.load(backend, pypicloud_export())

    assert backend.verify_user("dsa", "mine")  # existing users keep their password
    assert not backend.verify_user("dsa", "paranoia")
    assert not backend.is_admin("dsa")  # ... and get the exported admin flag
    assert "stevearc" in backend.pending_users()  # ... and stay pending
    assert backend.groups("dsa") == {"locals", "sharkfest", "brotatos"}  # never removed
    assert backend.package_acl("local-lib").groups == {"locals": {"w"}}
    assert backend.package_acl("polite-requests").users == {"dsa": {"r", "w"}}


@pytest.mark.parametrize("name", MUTABLE)
def test_invalid_data_changes_nothing(name, request, tmp_path):
    backend = empty_backend(name, request, tmp_path, "target")
    broken = copy.deepcopy(pypicloud_export())
    broken["packages"]["users"]["polite_requests"]["dsa"] = ["read", "admin"]
    with pytest.raises(ValueError, match="admin"):
        acl_transfer.load(backend, broken)
    assert backend.list_users() == []
    assert backend.pending_users() == []


@pytest.mark.parametrize("name", MUTABLE)
def test_unknown_group_members_are_skipped(name, request, tmp_path):
    backend = empty_backend(name, request, tmp_path, "target")
    data = copy.deepcopy(pypicloud_export())
    data["groups"]["sharkfest"].append("ghost")
    acl_transfer.load(backend, data)
    assert backend.group_members("sharkfest") == ["dsa", "stevearc"]


@pytest.mark.parametrize("name", MUTABLE)
def test_users_without_hash_import_and_cannot_log_in(name, request, tmp_path):
    """An export of a backend that never sees hashes (LDAP) has ``"password": null``."""
    backend = empty_backend(name, request, tmp_path, "target")
    data = {
        "allow_register": False,
        "groups": {"staff": ["ldapuser"]},
        "users": [{"username": "ldapuser", "admin": False, "password": None}],
        "packages": {"users": {"lib": {"ldapuser": ["read"]}}, "groups": {}},
    }
    acl_transfer.load(backend, data)
    assert [u.username for u in backend.list_users()] == ["ldapuser"]
    assert not backend.verify_user("ldapuser", "")
    assert not backend.verify_user("ldapuser", "anything")
    assert backend.groups("ldapuser") == {"staff"}
    assert backend.package_acl("lib").users == {"ldapuser": {"r"}}


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("target", MUTABLE)
@pytest.mark.parametrize("source", MUTABLE)
def test_round_trip_between_mutable_backends(source, target, request, tmp_path):
    src = sample_backend(source, request, tmp_path, "source")
    dst = empty_backend(target, request, tmp_path, "target")
    exported = acl_transfer.dump(src)
    assert "pending_users" in exported

    path = tmp_path / "acl.json.gz"
    acl_transfer.write_acl_file(exported, path)
    acl_transfer.load(dst, acl_transfer.read_acl_file(path))

    assert acl_transfer.dump(dst) == exported
    assert dst.list_tokens("dsa") == []  # tokens are not part of the format
    for user, password in PASSWORDS.items():
        assert dst.verify_user(user, password)


@pytest.mark.parametrize("target", MUTABLE)
def test_config_backend_exports_into_each_mutable_backend(target, request, tmp_path):
    config = build_config(request, tmp_path)
    exported = acl_transfer.dump(config)
    assert "pending_users" not in exported  # as pypicloud: read-only backends have none
    assert exported["allow_register"] is False
    assert exported["packages"]["groups"]["pyramid-head"] == {
        "brotatos": ["read", "write"],
        "everyone": ["read"],
    }

    dst = empty_backend(target, request, tmp_path, "target")
    acl_transfer.load(dst, exported)
    assert acl_transfer.dump(dst) == {**exported, "pending_users": []}
    for user, password in PASSWORDS.items():
        assert dst.verify_user(user, password)


def test_config_dump_shape(request, tmp_path):
    exported = acl_transfer.dump(build_config(request, tmp_path))
    assert list(exported) == ["allow_register", "version", "groups", "users", "packages"]
    assert exported["groups"] == {"brotatos": ["donlan", "dsa"], "sharkfest": ["dsa", "stevearc"]}
    assert [u["username"] for u in exported["users"]] == sorted(PASSWORDS)
    assert all(list(u) == ["username", "admin", "password"] for u in exported["users"])
    assert exported["packages"]["users"] == {
        "django-unchained": {"stevearc": ["read", "write"]},
        "polite-requests": {"dsa": ["read", "write"]},
    }


# --- files ------------------------------------------------------------------------------


def test_files_gzip_plain_and_stdin(tmp_path, monkeypatch, capsys):
    data = pypicloud_export()
    gz, plain = tmp_path / "acl.json.gz", tmp_path / "acl.json"
    acl_transfer.write_acl_file(data, gz)
    acl_transfer.write_acl_file(data, plain)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(gz.read_bytes())) == data
    assert json.loads(plain.read_text()) == data
    assert acl_transfer.read_acl_file(gz) == data
    assert acl_transfer.read_acl_file(str(plain)) == data

    # ppc-export without -o prints indented JSON; import-acl reads it (or gzip) from stdin.
    acl_transfer.write_acl_file(data, "-")
    printed = capsys.readouterr().out
    assert json.loads(printed) == data
    for raw in (printed.encode(), gz.read_bytes()):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))
        assert acl_transfer.read_acl_file("-") == data
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))
        assert acl_transfer.read_acl_file(None) == data


def test_admin_download_bytes():
    data = pypicloud_export()
    raw = acl_transfer.gzip_bytes(data)
    assert gzip.decompress(raw) == json.dumps(data, separators=(",", ":")).encode()
    assert acl_transfer.decode(raw) == data


def test_ppc_export_file_from_disk_reads(tmp_path):
    path = tmp_path / "acl.json.gz"
    write_ppc_export(path)
    assert acl_transfer.read_acl_file(path) == pypicloud_export()
