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
