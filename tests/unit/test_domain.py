"""Names, distribution filenames and core metadata extraction."""

from __future__ import annotations

import io
import zipfile

import pytest

from stratus.app.indexing import describe_distribution
from stratus.domain import distributions, metadata, names
from stratus.domain.errors import InvalidInput
from stratus.domain.keys import file_key, metadata_key, sequencer_key, split_key
from tests.support.distributions import sdist_bytes, wheel_bytes


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("Foo_Bar", "foo-bar"), ("foo.bar", "foo-bar"), ("FOO--_.bar", "foo-bar"), ("a", "a")],
)
def test_normalize(raw, normalized):
    assert names.normalize(raw) == normalized


@pytest.mark.parametrize("bad", ["", "-foo", "foo-", "foo bar", "f/oo", "føø", "../x"])
def test_invalid_names(bad):
    with pytest.raises(InvalidInput):
        names.validate(bad)


@pytest.mark.parametrize(
    "filename",
    [
        "../foo-1.0.tar.gz",
        "/etc/foo-1.0.tar.gz",
        "..\\foo-1.0.tar.gz",
        "sub\\foo-1.0.tar.gz",
        "foo-1.0.tar.gz\x00.whl",
        ".hidden-1.0.tar.gz",
        "C:foo-1.0.tar.gz",
        "",
    ],
)
def test_path_tricks_rejected(filename):
    with pytest.raises(InvalidInput):
        distributions.parse(filename)


def test_parse_wheel_and_sdist():
    w = distributions.parse("foo_bar-1.0-py3-none-any.whl")
    assert (w.project, str(w.version), w.kind) == ("foo-bar", "1.0", "bdist_wheel")
    s = distributions.parse("foo_bar-2.0rc1.tar.gz")
    assert (s.project, str(s.version), s.kind) == ("foo-bar", "2.0rc1", "sdist")
    legacy = distributions.parse("Foo_Bar-1.0-py3-none-any.whl", strict=False)
    assert (legacy.project, str(legacy.version)) == ("foo-bar", "1.0")


@pytest.mark.parametrize(
    "bad", ["foo.exe", "foo-1.0.egg", "foo-1.0-xx.whl", "foo-notaversion.tar.gz"]
)
def test_unsupported_or_broken_filenames(bad):
    with pytest.raises(InvalidInput):
        distributions.parse(bad)


def test_form_must_match_filename():
    dist = distributions.parse("foo-1.0.tar.gz")
    distributions.check_matches_form(dist, "Foo", "1.0.0")
    with pytest.raises(InvalidInput, match="project name"):
        distributions.check_matches_form(dist, "bar", "1.0")
    with pytest.raises(InvalidInput, match="version"):
        distributions.check_matches_form(dist, "foo", "1.1")


def test_wheel_metadata_extracted():
    filename, data = wheel_bytes("demo", "1.0", requires_python=">=3.9", requires_dist=("x",))
    meta = metadata.extract(data, distributions.parse(filename))
    assert meta.requires_python == ">=3.9"
    assert meta.core_metadata_bytes is not None
    assert b"Requires-Dist: x" in meta.core_metadata_bytes


def test_sdist_metadata_served_only_from_2_2():
    filename, data = sdist_bytes("demo", "1.0", requires_python=">=3.8")
    assert metadata.extract(data, distributions.parse(filename)).core_metadata_bytes
    filename, data = sdist_bytes("demo", "1.0", requires_python=">=3.8", metadata_version="2.1")
    old = metadata.extract(data, distributions.parse(filename))
    assert old.core_metadata_bytes is None
    assert old.requires_python == ">=3.8"


def test_broken_archives_rejected():
    with pytest.raises(InvalidInput, match="zip"):
        metadata.extract(b"not a zip", distributions.parse("demo-1.0-py3-none-any.whl"))
    with pytest.raises(InvalidInput, match="archive"):
        metadata.extract(b"not a tar", distributions.parse("demo-1.0.tar.gz"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("demo/__init__.py", "")
    with pytest.raises(InvalidInput, match="METADATA"):
        metadata.extract(buf.getvalue(), distributions.parse("demo-1.0-py3-none-any.whl"))


def test_describe_distribution_hashes():
    import hashlib

    filename, data = wheel_bytes("demo", "1.0")
    described = describe_distribution(filename, data)
    assert described.record.sha256 == hashlib.sha256(data).hexdigest()
    assert described.record.metadata_sha256 == hashlib.sha256(described.core_metadata).hexdigest()
    assert described.record.size == len(data)


def test_keys_round_trip():
    assert split_key(file_key("foo", "foo-1.0.tar.gz")) == ("foo", "foo-1.0.tar.gz")
    assert split_key(metadata_key("foo", "foo-1.0.tar.gz")) is None
    assert split_key("other/foo-1.0.tar.gz") is None
    assert split_key("packages/a/b/c") is None
    assert sequencer_key("0A") < sequencer_key("00B1")
