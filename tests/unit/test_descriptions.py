"""Long descriptions rendered as PyPI renders them, and sanitized."""

from __future__ import annotations

import pytest

from stratus.app.descriptions import render, render_metadata
from tests.support.distributions import core_metadata

HOSTILE_MARKDOWN = """# Title

<script>alert("md")</script>

<img src="x.png" onerror="alert('img')">

<a href="javascript:alert('link')">click</a>

[md link](javascript:alert('mdlink'))
"""


def test_markdown_is_rendered_gfm_by_default():
    html = render("# Hello\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~\n", "text/markdown")
    assert '<h1 id="user-content-hello">Hello' in html
    assert "<table>" in html and "<del>gone</del>" in html


def test_commonmark_variant_has_no_gfm_tables():
    html = render("| a | b |\n|---|---|\n| 1 | 2 |\n", "text/markdown; variant=CommonMark")
    assert "<table>" not in html


def test_rest_is_the_default_without_a_content_type():
    html = render("Title\n=====\n\nSome *emphasis* here.\n", None)
    assert "<h1>Title" in html and "<em>emphasis</em>" in html


def test_plain_text_is_escaped_and_preformatted():
    assert render("a <b> & c\nnext", "text/plain") == "<pre>a &lt;b&gt; &amp; c<br>next</pre>"


@pytest.mark.parametrize(
    ("text", "content_type"),
    [
        ("Bad\n===\n\n.. raw:: html\n\n   <script>x</script>\n", "text/x-rst"),  # rst error
        ("# <b>a</b>\n", "text/markdown; variant=NoSuchVariant"),
        ("<b>x</b>", "application/x-unknown"),
    ],
)
def test_anything_unrenderable_falls_back_to_escaped_text(text, content_type):
    html = render(text, content_type)
    assert "<script" not in html and "<b>" not in html
    assert "&lt;" in html


def test_no_script_survives_markdown():
    html = render(HOSTILE_MARKDOWN, "text/markdown")
    lowered = html.lower()
    assert "<script" not in lowered
    assert "onerror" not in lowered
    assert "javascript:" not in lowered.replace("javascript:alert('mdlink')", "")
    assert 'href="javascript' not in lowered
    assert "Title" in html  # the harmless part is kept


def test_no_script_survives_rest():
    html = render(
        "Title\n=====\n\n`x <javascript:alert(1)>`_\n\n.. image:: javascript:alert(2)\n", None
    )
    assert 'href="javascript' not in html.lower() and 'src="javascript' not in html.lower()


def test_render_metadata_reads_the_body_and_content_type():
    source = core_metadata(
        "demo",
        "1.0",
        headers=("Description-Content-Type: text/markdown",),
        description="# Demo\n\nThe **demo** package.\n",
    ).encode()
    html = render_metadata(source)
    assert html is not None and "<strong>demo</strong>" in html


def test_render_metadata_unfolds_the_old_description_header():
    source = (
        b"Metadata-Version: 1.1\nName: old\nVersion: 1.0\n"
        b"Description: Old style\n        =========\n        \n        Some *text*.\n\n"
    )
    html = render_metadata(source)
    assert html is not None and "<h1>Old style" in html and "<em>text</em>" in html


@pytest.mark.parametrize("body", [None, "", "   \n", "UNKNOWN"])
def test_no_description_renders_nothing(body):
    assert render_metadata(core_metadata("demo", "1.0", description=body).encode()) is None
