"""`stratus export-acl` / `stratus import-acl` as a user runs them."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from tests.contract.access_backends.config import sample_ini

STRATUS = str(Path(sys.executable).parent / "stratus")


def stratus(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([STRATUS, *args], input=stdin, capture_output=True, timeout=120)


def test_config_to_sqlite_and_back(tmp_path):
    source = tmp_path / "old.ini"
    source.write_text(sample_ini())
    target = tmp_path / "new.ini"
    target.write_text(
        f"[app:main]\npypi.auth = sqlite\nauth.db.path = {tmp_path / 'acl.sqlite3'}\n"
    )

    out = stratus("export-acl", "--config", str(source), "-o", str(tmp_path / "acl.json.gz"))
    assert out.returncode == 0, out.stderr
    exported = json.loads(gzip.decompress((tmp_path / "acl.json.gz").read_bytes()))
    assert {u["username"] for u in exported["users"]} == {"stevearc", "dsa", "donlan", "admin"}

    for _ in range(2):  # idempotent
        imp = stratus("import-acl", "--config", str(target), "-i", str(tmp_path / "acl.json.gz"))
        assert imp.returncode == 0, imp.stderr
    again = stratus("export-acl", "--config", str(target))
    assert again.returncode == 0, again.stderr
    reexported = json.loads(again.stdout)
    for key in ("users", "groups", "packages"):
        assert reexported[key] == exported[key], key


def test_pipe_and_errors(tmp_path):
    source = tmp_path / "old.ini"
    source.write_text(sample_ini())
    target = tmp_path / "new.ini"
    target.write_text(f"[x]\npypi.auth = sqlite\nauth.db.path = {tmp_path / 'a.sqlite3'}\n")
    exported = stratus("export-acl", "--config", str(source))
    piped = stratus("import-acl", "--config", str(target), stdin=exported.stdout)
    assert piped.returncode == 0, piped.stderr
    readonly = stratus("import-acl", "--config", str(source), stdin=exported.stdout)
    assert readonly.returncode == 2 and b"read-only" in readonly.stderr
    broken = stratus("import-acl", "--config", str(target), stdin=b'{"users": 3}')
    assert broken.returncode == 1


def test_progress_on_stderr_and_quiet(tmp_path):
    data = {
        "allow_register": False,
        "groups": {f"team{g}": [f"user{g}"] for g in range(3)},
        "users": [{"username": f"user{u}", "admin": False, "password": None} for u in range(5)],
        "pending_users": [{"username": "newbie", "password": None}],
        "packages": {
            "users": {f"pkg{p}": {"user0": ["read"]} for p in range(4)},
            "groups": {"pkg0": {"team1": ["read", "write"]}, "extra": {"team2": ["read"]}},
        },
    }
    target = tmp_path / "acl.ini"
    target.write_text(f"[app:main]\npypi.auth = sqlite\nauth.db.path = {tmp_path / 'a.db'}\n")
    raw = json.dumps(data).encode()

    every = stratus("import-acl", "--config", str(target), "--progress-seconds", "0", stdin=raw)
    assert every.returncode == 0, every.stderr
    lines = every.stderr.decode().splitlines()
    # a line after each item (no pause between lines here), counting up to the totals
    assert [line for line in lines if line.endswith(" packages")] == [
        f"imported {n}/5 packages" for n in range(1, 6)
    ]
    assert "imported 5/5 users" in lines and "imported 3/3 groups" in lines
    assert "imported 1/1 pending users" in lines
    assert lines[-1] == "imported 5 users, 3 groups, 1 pending users"

    # by default at most a line every 2 s while a step runs, and each step's last count
    default = stratus("import-acl", "--config", str(target), stdin=raw)
    assert "imported 5/5 packages" in default.stderr.decode()
    assert "imported 1/5 packages" not in default.stderr.decode()

    exported = stratus("export-acl", "--config", str(target))
    assert exported.returncode == 0 and json.loads(exported.stdout)["users"]
    assert "exported 5/5 users" in exported.stderr.decode()
    assert "exported 3/3 groups" in exported.stderr.decode()

    for command, extra in (("import-acl", ()), ("export-acl", ("-o", str(tmp_path / "x.json")))):
        quiet = stratus(command, "--config", str(target), "-q", *extra, stdin=raw)
        assert quiet.returncode == 0 and quiet.stderr == b"", command
