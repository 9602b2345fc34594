"""pypicloud's fallback table (``seeds/000_*``), transcribed, against ``domain.fallback.decide``.

The seed lost its row labels. In each mode its twelve answers run: package not stored,
then stored; within each, (no read, no cache_update), (read, no cache_update), (read and
cache_update); each anonymous, then logged in. ``ROWS`` spells that order out, and the
answers below are copied from the seed in its order, word for word.
"""

from __future__ import annotations

import itertools

import pytest

from stratus.domain.fallback import (
    Answer,
    DownloadAnswer,
    Mode,
    base_url,
    decide,
    decide_download,
    effective_mode,
    is_from_upstream,
    is_private,
    mirror_name,
    parse_mode,
    parse_patterns,
    redirect_url,
    upstream_uploader,
)

# (stored, may_read, may_update_cache, logged_in), in the seed's order.
ROWS = [
    (stored, read, cache_update, logged_in)
    for stored in (False, True)
    for read, cache_update in ((False, False), (True, False), (True, True))
    for logged_in in (False, True)
]

L401 = "401 (to force upload of basic auth)"
N404 = "404"
R302 = "302 to fallback"
SERVE = "Serve package list"
SERVE_REDIRECT = "Serve packages + redirect links 1"
SERVE_CACHE = "Serve package list + cache links 2"
UPSTREAM_CACHE = "Upstream links that will download & cache"

# The seed's five tables, each keyed by (fallback, always_show_upstream).
SEED = {
    ("none", None): [
        L401, N404, N404, N404, N404, N404,
        L401, N404, SERVE, SERVE, SERVE, SERVE,
    ],
    ("redirect", False): [
        R302, R302, R302, R302, R302, R302,
        L401, R302, SERVE, SERVE, SERVE, SERVE,
    ],
    ("redirect", True): [
        R302, R302, R302, R302, R302, R302,
        L401, R302, SERVE_REDIRECT, SERVE_REDIRECT, SERVE_REDIRECT, SERVE_REDIRECT,
    ],
    ("cache", False): [
        L401, N404, L401, N404, UPSTREAM_CACHE, UPSTREAM_CACHE,
        L401, N404, SERVE, SERVE, SERVE, SERVE,
    ],
    ("cache", True): [
        L401, R302, L401, R302, UPSTREAM_CACHE, UPSTREAM_CACHE,
        L401, R302, L401, SERVE_REDIRECT, SERVE_CACHE, SERVE_CACHE,
    ],
}  # fmt: skip

# The seed's words → Stratus' answers. Footnote 1: stored versions plus redirect links for
# the others; footnote 2: stored versions plus links that download & cache the others.
MEANING = {
    L401: Answer.LOGIN,
    N404: Answer.NOT_FOUND,
    R302: Answer.REDIRECT,
    SERVE: Answer.PAGE,
    SERVE_REDIRECT: Answer.PAGE_UPSTREAM_DIRECT,
    SERVE_CACHE: Answer.PAGE_UPSTREAM_CACHED,
    UPSTREAM_CACHE: Answer.PAGE_UPSTREAM_CACHED,  # nothing stored: upstream links only
}


def cells():
    for (mode, shown), answers in SEED.items():
        assert len(answers) == len(ROWS) == 12
        # "none" does not look at always_show_upstream: both values must give the table.
        for always_show in (False, True) if shown is None else (shown,):
            for row, expected in zip(ROWS, answers, strict=True):
                stored, read, cache_update, logged_in = row
                label = (
                    f"{mode}-asu={always_show}-{'stored' if stored else 'absent'}-"
                    f"read={read}-cu={cache_update}-{'user' if logged_in else 'anon'}"
                )
                yield pytest.param(Mode(mode), always_show, row, expected, id=label)


@pytest.mark.parametrize(("mode", "always_show", "row", "expected"), list(cells()))
def test_every_cell_of_pypiclouds_table(mode, always_show, row, expected):
    stored, read, cache_update, logged_in = row
    answer = decide(
        mode,
        always_show,
        stored=stored,
        may_read=read,
        may_update_cache=cache_update,
        logged_in=logged_in,
    )
    assert answer is MEANING[expected]


def test_the_table_has_sixty_cells():
    assert len(list(cells())) == 12 * 6  # none twice (always_show_upstream ignored)


@pytest.mark.parametrize(
    ("mode", "always_show", "stored", "logged_in"),
    list(itertools.product(Mode, (False, True), (False, True), (False, True))),
)
def test_cache_update_without_read_is_treated_as_no_read(mode, always_show, stored, logged_in):
    """A combination the table leaves out: pypicloud's views check read first."""
    with_cu = decide(
        mode,
        always_show,
        stored=stored,
        may_read=False,
        may_update_cache=True,
        logged_in=logged_in,
    )
    without = decide(
        mode,
        always_show,
        stored=stored,
        may_read=False,
        may_update_cache=False,
        logged_in=logged_in,
    )
    assert with_cu is without


def test_blocked_upstream_is_decided_as_no_fallback():
    assert effective_mode(Mode.CACHE, upstream_allowed=False) is Mode.NONE
    assert effective_mode(Mode.REDIRECT, upstream_allowed=True) is Mode.REDIRECT


# --- downloads of files that are not stored ------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "read", "cache_update", "logged_in", "expected"),
    [
        (Mode.CACHE, False, True, False, DownloadAnswer.LOGIN),
        (Mode.CACHE, False, True, True, DownloadAnswer.NOT_FOUND),
        (Mode.NONE, True, True, True, DownloadAnswer.NOT_FOUND),
        (Mode.REDIRECT, True, True, False, DownloadAnswer.NOT_FOUND),
        (Mode.CACHE, True, False, False, DownloadAnswer.LOGIN),
        (Mode.CACHE, True, False, True, DownloadAnswer.FORBIDDEN),
        (Mode.CACHE, True, True, False, DownloadAnswer.FILL),
        (Mode.CACHE, True, True, True, DownloadAnswer.FILL),
    ],
)
def test_download_of_a_file_not_stored(mode, read, cache_update, logged_in, expected):
    answer = decide_download(
        mode, may_read=read, may_update_cache=cache_update, logged_in=logged_in
    )
    assert answer is expected


# --- settings helpers ----------------------------------------------------------------------


def test_parse_mode():
    assert parse_mode(" Cache ") is Mode.CACHE
    with pytest.raises(ValueError, match="none, redirect, cache"):
        parse_mode("mirror")


@pytest.mark.parametrize(
    ("base", "deprecated", "expected"),
    [
        (None, None, "https://pypi.org"),
        ("https://mirror.example/", None, "https://mirror.example"),
        (None, "https://pypi.python.org/simple", "https://pypi.python.org"),
        (None, "https://mirror.example/pypi/simple/", "https://mirror.example/pypi"),
        (None, "https://mirror.example/root", "https://mirror.example/root"),
        ("https://wins.example", "https://loses.example/simple", "https://wins.example"),
    ],
)
def test_base_url_as_pypicloud_derives_it(base, deprecated, expected):
    assert base_url(base, deprecated) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "pypi.org", "https://x/?q=1", "https://"])
def test_base_url_must_be_http(bad):
    with pytest.raises(ValueError, match="http"):
        base_url(bad, None)


def test_redirect_url_and_mirror_name():
    assert redirect_url("https://pypi.org", "/simple/foo/") == "https://pypi.org/simple/foo/"
    assert redirect_url("http://h:81/base/", "/pypi/foo/json") == "http://h:81/base/pypi/foo/json"
    assert mirror_name("https://PyPI.org") == "pypi.org"
    assert mirror_name("http://127.0.0.1:8081/base/") == "127.0.0.1:8081/base"


def test_private_patterns_match_normalized_names():
    patterns = parse_patterns(["ACME-*", " internal-tools ", ""])
    assert patterns == ("acme-*", "internal-tools")
    assert is_private("acme-billing", patterns)
    assert is_private("internal-tools", patterns)
    assert not is_private("internal-tools-extra", patterns)
    assert not is_private("requests", patterns)


def test_upstream_uploader_cannot_be_a_user():
    assert is_from_upstream(upstream_uploader("pypi.org"))
    assert not is_from_upstream("alice")
    assert not is_from_upstream(None)
