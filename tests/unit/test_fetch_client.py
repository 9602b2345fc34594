"""`stratus fetch` reads requirements files as pip does: ``-r`` includes (every spelling,
relative to the including file, each file once), option lines and ``--hash`` left out."""

from __future__ import annotations

from pathlib import Path

from stratus.cli.fetch import read_requirements


def test_includes_are_followed_and_options_left_out(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("gamma ; python_version >= '3'\n-r ../a.txt\n")
    (tmp_path / "b.txt").write_text("beta==2.0 \\\n  --hash=sha256:abc\n-rsub/c.txt\n")
    (tmp_path / "a.txt").write_text(
        "# comment\n--index-url https://example.invalid/simple\n-e .\nalpha>=1  # why\n"
        "--requirement=b.txt\n--requirement b.txt\n"
    )
    assert list(read_requirements(tmp_path / "a.txt")) == [
        "alpha>=1",
        "beta==2.0",  # pip-compile's --hash options are not part of it
        "gamma ; python_version >= '3'",
    ]


def test_the_server_drops_hash_options_too() -> None:
    """What ``curl -F requirements=@requirements.txt`` sends from pip-compile."""
    from stratus.app.fetch import requirement_lines

    text = "beta==2.0 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\n-r x.txt\n"
    assert requirement_lines(text) == ["beta==2.0", "-r x.txt"]
