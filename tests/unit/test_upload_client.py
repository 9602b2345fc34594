"""``stratus upload``'s pieces that need no server: credentials as twine finds them, the
session API's URL, the resume state, and the file slices it streams."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stratus.cli.upload import (
    FileSlice,
    Http,
    Repository,
    State,
    Uploader,
    UploadError,
    describe,
    find_repository,
)
from tests.support.distributions import wheel_bytes, write


def args(**values: object) -> argparse.Namespace:
    base = {
        "repository_url": None,
        "repository": None,
        "config_file": None,
        "username": None,
        "password": None,
        "non_interactive": True,
    }
    return argparse.Namespace(**(base | values))


PYPIRC = """
[distutils]
index-servers = corp

[corp]
repository = https://pypi.example.com/
username = carol
password = carol-pw

[other]
repository = https://other.example.com/legacy/
username = dave
"""


@pytest.fixture
def pypirc(tmp_path: Path) -> str:
    path = tmp_path / ".pypirc"
    path.write_text(PYPIRC)
    return str(path)


def test_flags_win(pypirc: str) -> None:
    found = find_repository(
        args(
            repository_url="https://x.example.com/",
            username="u",
            password="p",
            config_file=pypirc,
        ),
        {"TWINE_USERNAME": "env", "TWINE_PASSWORD": "env-pw"},
        interactive=False,
    )
    assert (found.url, found.username, found.password) == ("https://x.example.com/", "u", "p")


def test_twine_environment_variables(pypirc: str) -> None:
    found = find_repository(
        args(config_file=pypirc),
        {
            "TWINE_REPOSITORY_URL": "https://env.example.com/",
            "TWINE_USERNAME": "env",
            "TWINE_PASSWORD": "env-pw",
        },
        interactive=False,
    )
    assert (found.url, found.username, found.password) == (
        "https://env.example.com/",
        "env",
        "env-pw",
    )


def test_pypirc_section_by_name_or_by_url(pypirc: str) -> None:
    by_name = find_repository(args(repository="corp", config_file=pypirc), {}, interactive=False)
    assert (by_name.url, by_name.username, by_name.password) == (
        "https://pypi.example.com/",
        "carol",
        "carol-pw",
    )
    by_url = find_repository(
        args(repository_url="https://pypi.example.com", config_file=pypirc), {}, interactive=False
    )
    assert (by_url.username, by_url.password) == ("carol", "carol-pw")
    with pytest.raises(UploadError, match=r"no \[nope\] section"):
        find_repository(args(repository="nope", config_file=pypirc), {}, interactive=False)


def test_credentials_in_the_url_are_used_and_stripped() -> None:
    found = find_repository(
        args(repository_url="https://erin:s3cret@pypi.example.com:8443/"), {}, interactive=False
    )
    assert (found.url, found.username, found.password) == (
        "https://pypi.example.com:8443/",
        "erin",
        "s3cret",
    )
    assert "s3cret" not in repr(found)


def test_keyring_supplies_a_missing_password(pypirc: str, monkeypatch) -> None:
    import sys
    import types

    calls: list[tuple[str, str]] = []
    fake = types.ModuleType("keyring")
    fake.get_password = lambda url, user: calls.append((url, user)) or "from-keyring"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    found = find_repository(args(repository="other", config_file=pypirc), {}, interactive=False)
    assert found.password == "from-keyring"
    assert calls == [("https://other.example.com/legacy/", "dave")]


def test_no_repository_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="--repository-url"):
        find_repository(args(config_file=str(tmp_path / "none")), {}, interactive=False)
    with pytest.raises(UploadError, match="http"):
        find_repository(args(repository_url="ftp://x/"), {}, interactive=False)


@pytest.mark.parametrize(
    ("url", "sessions"),
    [
        ("https://pypi.example.com/", "https://pypi.example.com/_/upload-sessions/"),
        ("https://pypi.example.com", "https://pypi.example.com/_/upload-sessions/"),
        ("https://pypi.example.com/legacy/", "https://pypi.example.com/_/upload-sessions/"),
        ("https://h.example.com/stage/simple/", "https://h.example.com/stage/_/upload-sessions/"),
    ],
)
def test_the_session_api_sits_at_the_index_root(url: str, sessions: str) -> None:
    uploader = Uploader(Http(Repository(url), parallel=1), progress=False)
    assert uploader.sessions_url == sessions


def test_credentials_go_to_the_index_only() -> None:
    http = Http(Repository("https://pypi.example.com/", "u", "p"), parallel=1)
    assert http.auth["Authorization"].startswith("Basic ")
    assert http.index_host == "pypi.example.com"


def test_state_survives_a_restart_and_clears(tmp_path: Path) -> None:
    path = write(tmp_path / "dist", wheel_bytes("demo", "1.0"))
    dist = describe(path)
    state = State(tmp_path / "state", "https://pypi.example.com/", dist)
    assert state.session_url is None
    state.start("https://pypi.example.com/_/upload-sessions/abc/", dist.filename)
    state.part_done(3)
    state.part_done(1)
    again = State(tmp_path / "state", "https://pypi.example.com/", dist)
    assert again.session_url == "https://pypi.example.com/_/upload-sessions/abc/"
    assert again.data["parts"] == [1, 3]
    assert State(tmp_path / "state", "https://other.example.com/", dist).session_url is None
    again.clear()
    assert State(tmp_path / "state", "https://pypi.example.com/", dist).session_url is None


def test_describe_reads_name_and_version_from_the_metadata(tmp_path: Path) -> None:
    path = write(tmp_path, wheel_bytes("Demo_Pkg", "2.0rc1"))
    dist = describe(path)
    assert (dist.name, dist.version, dist.filetype) == ("Demo_Pkg", "2.0rc1", "bdist_wheel")
    bad = tmp_path / "broken-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UploadError, match="not a valid zip"):
        describe(bad)


def test_file_slices_stream_their_range_and_report_progress(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 10)
    seen: list[int] = []
    piece = FileSlice(path, 100, 1000, seen.append)
    data = b""
    while chunk := piece.read(300):
        data += chunk
    piece.close()
    assert data == path.read_bytes()[100:1100]
    assert seen == [300, 300, 300, 100]
