"""PEP 691 content negotiation, with the Accept headers pip and uv really send."""

from __future__ import annotations

import pytest

from stratus.web.negotiation import HTML, HTML_V1, JSON_V1, choose

PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP, JSON_V1),
        (UV, JSON_V1),
        (None, HTML),
        ("", HTML),
        ("*/*", HTML),
        ("text/html", HTML),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.5", HTML),
        ("application/json", None),
        ("application/vnd.pypi.simple.v2+json", None),
        ("text/html;q=0", None),
    ],
)
def test_choose(accept, expected):
    assert choose(accept) == expected


def test_format_parameter_wins():
    assert choose("text/html", "json") == JSON_V1
    assert choose(None, "xml") is None
