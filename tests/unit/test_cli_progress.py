"""The progress lines of long commands: throttled in time, each step's last count always."""

from __future__ import annotations

import io

from stratus.cli.progress import Progress


def test_lines_at_most_every_interval_and_the_last_one_always():
    now = [0.0]
    out = io.StringIO()
    progress = Progress(every=2.0, stream=out, clock=lambda: now[0])
    count = progress.counter("imported")
    for done in range(1, 301):
        now[0] += 0.25  # 75 s in all: a line every 2 s (8 items), then the final one
        count("packages", done, 300)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["imported 8/300 packages", "imported 16/300 packages"]
    assert lines[-1] == "imported 300/300 packages"
    assert len(lines) == 300 // 8 + 1


def test_quiet_prints_nothing():
    out = io.StringIO()
    progress = Progress(quiet=True, every=0, stream=out)
    progress.counter("exported")("users", 1, 1)
    progress.say("done")
    assert out.getvalue() == ""
