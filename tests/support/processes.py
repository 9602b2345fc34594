"""Shared tail of the emulator fixtures: point env vars at a server, then clean up."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator


@contextlib.contextmanager
def environ_pointing_at(names: Iterable[str], endpoint: str) -> Iterator[None]:
    """Set each variable in ``names`` to ``endpoint``; restore the previous values after."""
    previous = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(previous, endpoint))
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def stop(process: subprocess.Popen) -> None:
    """Terminate, and kill if it does not exit within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused while the block runs: bound
    here, never listening. (A merely free port may be given to a client as its own
    source port; a connection to it then reaches itself and reads back what it sent.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
