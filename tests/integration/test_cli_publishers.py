"""``stratus publishers list|add|delete`` on a local data dir."""

from __future__ import annotations

import json

from stratus.cli.main import main


def run(capsys, *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_add_list_delete(tmp_path, capsys):
    config = tmp_path / "stratus.ini"
    config.write_text(
        "[app:main]\noidc.issuer.ci.url = https://ci.example\noidc.issuer.ci.claims = sub\n"
    )
    where = ["--data-dir", str(tmp_path / "data"), "--config", str(config)]
    code, added = run(
        capsys,
        "publishers",
        "add",
        "Widget",
        *where,
        "--issuer",
        "github",
        "--repository",
        "acme/widget",
        "--workflow",
        "release.yml",
        "--environment",
        "prod",
    )
    assert code == 0
    assert added[0]["project"] == "widget" and added[0]["environment"] == "prod"
    assert added[0]["pending"] is True and added[0]["created_by"].startswith("cli:")
    code, generic = run(
        capsys, "publishers", "add", "widget", *where, "--issuer", "ci", "--claim", "sub=x:y"
    )
    assert code == 0 and generic[0]["sub"] == "x:y"
    code, listed = run(capsys, "publishers", "list", "widget", *where)
    assert sorted(p["id"] for p in listed) == sorted([added[0]["id"], generic[0]["id"]])
    code, removed = run(capsys, "publishers", "delete", "widget", added[0]["id"], *where)
    assert code == 0 and removed[0]["id"] == added[0]["id"]
    code, listed = run(capsys, "publishers", "list", "widget", *where)
    assert [p["id"] for p in listed] == [generic[0]["id"]]


def test_errors_are_one_line(tmp_path, capsys):
    where = ["--data-dir", str(tmp_path / "data")]
    code, err = run(
        capsys,
        "publishers",
        "add",
        "widget",
        *where,
        "--issuer",
        "github",
        "--repository",
        "not-a-repo",
        "--workflow",
        "release.yml",
    )
    assert code == 1 and "owner/name" in err
    code, err = run(capsys, "publishers", "delete", "widget", "nope", *where)
    assert code == 1 and "No publisher" in err
