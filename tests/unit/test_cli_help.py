"""The ``stratus`` command introduces itself: ``--version`` and one help line per command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stratus import __version__
from stratus.cli.main import build_parser


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"stratus {__version__}"


def test_help_lists_every_command_with_a_line_each():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert commands.choices, "no subcommands"
    described = {a.dest: a.help for a in commands._choices_actions}
    missing = sorted(set(commands.choices) - {k for k, v in described.items() if v})
    assert not missing, f"commands without a help line: {missing}"
    out = subprocess.run(
        [sys.executable, "-m", "stratus.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in commands.choices:
        assert name in out


def test_installed_metadata_matches_the_code_version():
    from importlib.metadata import version

    assert version("stratus-index") == __version__
