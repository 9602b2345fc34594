"""The project page's hot path: segment quoting, version order and the links it renders,
each checked against the plain library call it stands for."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import quote

from packaging.version import Version

from stratus.app.upstream import ProjectView
from stratus.domain.fallback import Answer
from stratus.domain.models import FileRecord, ProjectSummary
from stratus.domain.upstream import UpstreamFile
from stratus.domain.versions import in_order, ranks, version_key
from stratus.web.files import quote_segment
from stratus.web.simple import (
    iso_utc,
    page_links,
    render_project_html,
    render_project_json,
    render_root_html,
)

POOL = "abcXYZ019_.-~ #?%/&=+:@!$'()*,;\"<>[]{}|\\^`\t\né€\u2028\U0001d4b3\x00\x7f"


def test_quote_segment_is_quote_with_nothing_safe() -> None:
    rng = random.Random(7)
    samples = ["", "demo", "demo-1.0-py3-none-any.whl", "a" * 300, "0" * 64, "x#y", "ü"]
    samples += ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    for text in samples:
        assert quote_segment(text) == quote(text, safe=""), repr(text)


def _versions(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        v = ".".join(str(rng.randint(0, 12)) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.1:
            v = f"{rng.randint(1, 3)}!{v}"
        if rng.random() < 0.3:
            v += rng.choice(["a", "b", "rc", "alpha", "c", "pre"]) + str(rng.randint(0, 3))
        if rng.random() < 0.2:
            v += f".post{rng.randint(0, 3)}"
        if rng.random() < 0.2:
            v += f".dev{rng.randint(0, 3)}"
        if rng.random() < 0.15:
            v += "+" + rng.choice(["local", "ubuntu.1", "1.a", "abc.2"])
        out.append(v)
    return out


def test_versions_are_in_pep_440_order_with_invalid_ones_last() -> None:
    rng = random.Random(11)
    for _ in range(50):
        versions = (
            _versions(rng, rng.randint(1, 80)) + ["not a version", "zz-bad"][: rng.randint(0, 2)]
        )
        # ... and other spellings of equal versions (1.2 and 1.2.0)
        versions += [v + ".0" for v in versions[:5] if all(p.isdigit() for p in v.split("."))]
        valid = [v for v in set(versions) if v not in ("not a version", "zz-bad")]
        expected = sorted(valid, key=Version)
        expected += sorted(set(versions) - set(valid))
        got = in_order(versions)
        # Versions that compare equal (1.0 and 1.0.0) may come in either order.
        n = len(valid)
        assert [Version(v) for v in got[:n]] == [Version(v) for v in expected[:n]]
        assert got[n:] == expected[n:]
        assert sorted(got) == sorted(set(versions))
        assert in_order(reversed(versions)) == got  # the kept order, from any iterable
        rank = ranks(versions)
        for a in got:
            for b in got:
                assert (rank[a] < rank[b]) == (version_key(a) < version_key(b)), (a, b)
                assert (rank[a] == rank[b]) == (version_key(a) == version_key(b)), (a, b)


def _record(version: str, filename: str, upload_time: float) -> FileRecord:
    return FileRecord(
        project="demo",
        filename=filename,
        version=version,
        size=1,
        sha256="ab" * 32,
        upload_time=upload_time,
    )


def test_links_are_ordered_by_version_then_filename_and_dated_in_json() -> None:
    records = [
        _record("1.10", "demo-1.10.tar.gz", 0.5),
        _record("1.9", "demo-1.9-py3-none-any.whl", 1.0),
        _record("1.9", "demo-1.9.tar.gz", 2.0),
        _record("1.10", "demo-1.10-py3-none-any.whl", 1_700_000_000.123456),
        _record("1.10rc1", "demo-1.10rc1.tar.gz", 3.0),
    ]
    links = page_links("demo", ProjectView(Answer.PAGE, files=records))
    assert [link.filename for link in links] == [
        "demo-1.9-py3-none-any.whl",
        "demo-1.9.tar.gz",
        "demo-1.10rc1.tar.gz",
        "demo-1.10-py3-none-any.whl",
        "demo-1.10.tar.gz",
    ]
    assert links[0].url == "../../files/demo/demo-1.9-py3-none-any.whl"
    import json

    page = json.loads(render_project_json("demo", links))
    assert page["versions"] == ["1.9", "1.10rc1", "1.10"]
    times = {f["filename"]: f["upload-time"] for f in page["files"]}
    assert times["demo-1.10-py3-none-any.whl"] == "2023-11-14T22:13:20.123456Z"
    assert times["demo-1.10.tar.gz"] == "1970-01-01T00:00:00.500000Z"


class _Anchors(HTMLParser):
    """The attributes and text of each ``<a>`` of a page, unescaped by the parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self.anchors and "text" not in self.anchors[-1]:
            self.anchors[-1]["text"] = data


def _text(rng: random.Random, size: int = 10) -> str:
    return "".join(rng.choice(POOL) for _ in range(rng.randint(1, size)))


def test_html_page_escapes_every_attribute_however_hostile_the_data() -> None:
    """Stored records and upstream files of any content: each anchor's attributes, read
    back by an HTML parser, are exactly the URL, hashes and fields the page stands for.
    (Stored URLs are their own escape, upstream ones are escaped once: ``Link.href``.)"""
    rng = random.Random(5)
    for round_ in range(40):
        project = "demo" if round_ % 2 else _text(rng)
        records = [
            FileRecord(
                project=project,
                filename=_text(rng),
                version=rng.choice(["1.0", "2.0", "bad version"]),
                size=1,
                sha256=rng.choice(["ab" * 32, _text(rng)]),
                upload_time=1.0,
                requires_python=rng.choice([None, ">=3.8", _text(rng)]),
                metadata_sha256=rng.choice([None, "cd" * 32, _text(rng)]),
                yanked=rng.choice([None, "", _text(rng)]),
            )
            for _ in range(rng.randint(1, 8))
        ]
        upstream = [
            UpstreamFile(
                filename=f"up-{i}-{_text(rng)}",
                url="https://up.example/" + _text(rng),
                version="3.0",
                sha256=rng.choice([None, "ef" * 32, _text(rng)]),
                requires_python=rng.choice([None, "<4", _text(rng)]),
                yanked=rng.choice([None, "", _text(rng)]),
                has_metadata=rng.random() < 0.5,
                metadata_sha256=rng.choice([None, _text(rng)]),
            )
            for i in range(rng.randint(0, 4))
        ]
        via_index = rng.random() < 0.5
        view = ProjectView(Answer.PAGE, files=records, upstream=upstream, via_index=via_index)
        links = page_links(project, view)
        parser = _Anchors()
        parser.feed(render_project_html(project, links).decode())
        assert len(parser.anchors) == len(records) + len(upstream)
        for anchor, link in zip(parser.anchors, links, strict=True):
            stored = next((r for r in records if r.filename == link.filename), None)
            if stored is not None or via_index:
                url = f"../../files/{quote(project, safe='')}/{quote(link.filename, safe='')}"
            else:
                url = next(u.url for u in upstream if u.filename == link.filename)
            if link.sha256:
                url += "#sha256=" + quote(link.sha256, safe="")
            assert anchor["href"] == url
            assert anchor["text"] == link.filename
            assert anchor.get("data-requires-python") == (link.requires_python or None)
            assert anchor.get("data-yanked") == link.yanked
            core = link.core_metadata
            expected = None if not core else "true" if core is True else f"sha256={core}"
            assert anchor.get("data-core-metadata") == expected
            assert anchor.get("data-dist-info-metadata") == expected


def test_root_page_escapes_names_however_hostile() -> None:
    rng = random.Random(9)
    projects = [ProjectSummary(_text(rng), _text(rng), 1.0, 1, None) for _ in range(300)] + [
        ProjectSummary("demo", "Demo", 1.0, 1, None)
    ]
    parser = _Anchors()
    parser.feed(render_root_html(projects).decode())
    assert [(a["href"], a["text"]) for a in parser.anchors] == [
        (quote(p.name, safe="") + "/", p.display_name) for p in projects
    ]


def test_upload_times_are_pep_700_iso_8601_in_utc() -> None:
    rng = random.Random(3)
    times = [0.0, 0.5, 1e-6, 1_700_000_000.123456, 4_102_444_799.999999]
    times += [rng.uniform(0, 4_102_444_800) for _ in range(5000)]
    times += [float(rng.randint(0, 4_102_444_800)) for _ in range(500)]
    for ts in times:
        expected = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert iso_utc(ts) == expected, ts
