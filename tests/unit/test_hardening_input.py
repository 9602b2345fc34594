"""Regression tests of issue 10's input items (8, 9, 12, 16, 17) at the domain level.

Each builds the hostile input of the review and checks it is refused with a 400
(``InvalidInput``) that names the problem, within bounded memory. The adapter-level items
(12 on every backend, 13, 14, 15) are in ``tests/integration/test_hardening_input.py``.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable

import pytest

from stratus.app.indexing import Digests, describe_distribution
from stratus.app.publish import check_digests
from stratus.domain import distributions, limits, metadata, names
from stratus.domain.errors import InvalidInput
from stratus.domain.models import FileRecord
from stratus.domain.objectmeta import (
    MAX_OBJECT_METADATA_BYTES,
    from_object_metadata,
    provenance,
    to_object_metadata,
)
from tests.support import hostile
from tests.support.distributions import core_metadata, sdist_bytes, wheel_bytes
from tests.support.memory import heap_peak

MIB = 1024 * 1024
# Far below any bomb here (32 MiB and more); above reading a 1 MiB member (and an 8 MiB
# LZMA dictionary, which tracemalloc sees).
MEMORY_BUDGET = 16 * MIB


def refused_within_budget(call: Callable[[], object], match: str) -> None:
    """``call`` raises InvalidInput matching ``match``, allocating at most MEMORY_BUDGET."""

    def refused() -> None:
        with pytest.raises(InvalidInput, match=match):
            call()

    _, peak = heap_peak(refused)
    assert peak < MEMORY_BUDGET, f"peak {peak / MIB:.1f} MiB"


def extract(built: tuple[str, bytes]) -> metadata.CoreMetadata:
    filename, data = built
    return metadata.extract(data, distributions.parse(filename))


# --- 8: zip bombs in METADATA / PKG-INFO -------------------------------------------------------


def _zip_bomb(method: int) -> None:
    # 32 MiB of METADATA in a few hundred bytes (bzip2) to 33 KB (deflate), its headers
    # claiming 200 bytes: only counting while decompressing catches it.
    built = hostile.zip_bomb_wheel("demo", "1.0", method)
    assert len(built[1]) < 40_000
    refused_within_budget(lambda: extract(built), "METADATA is larger than 1048576 bytes")


def test_h08_metadata_zip_bomb_deflate() -> None:
    _zip_bomb(zipfile.ZIP_DEFLATED)


def test_h08_metadata_zip_bomb_bzip2() -> None:
    _zip_bomb(zipfile.ZIP_BZIP2)


def test_h08_metadata_zip_bomb_lzma() -> None:
    _zip_bomb(zipfile.ZIP_LZMA)


def test_h08_sdist_pkg_info_bombs() -> None:
    zipped = ("demo-1.0.zip", hostile.zip_sdist_with_big_pkg_info("demo", "1.0"))
    refused_within_budget(lambda: extract(zipped), "PKG-INFO is larger than 1048576 bytes")
    tarred = hostile.tar_gz_with_big_pkg_info("demo", "1.0", inflated=32 * MIB)
    refused_within_budget(lambda: extract(tarred), "PKG-INFO is larger than 1048576 bytes")


def test_h08_metadata_under_the_cap_still_reads_with_every_method() -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        filename, data = wheel_bytes("demo", "1.0", summary="ok")
        src = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=method) as zf:
            for info in src.infolist():
                zf.writestr(info.filename, src.read(info))
        meta = metadata.extract(out.getvalue(), distributions.parse(filename))
        assert (meta.name, meta.version, meta.summary) == ("demo", "1.0", "ok")
        assert meta.core_metadata_bytes == src.read("demo-1.0.dist-info/METADATA")


def test_h08_corrupt_member_is_a_400_not_a_500() -> None:
    filename, data = wheel_bytes("demo", "1.0")
    flipped = bytearray(data)
    at = data.find(b"PK\x03\x04", data.find(b"METADATA") - 60)  # the METADATA local header
    flipped[at + 80] ^= 0xFF  # a byte of its deflated data
    with pytest.raises(InvalidInput):
        metadata.extract(bytes(flipped), distributions.parse(filename))


# --- 9: archives with too many members or too much to scan -------------------------------------


def test_h09_tar_member_count() -> None:
    # The review's million-member .tar.gz, cut to just over the limit: PKG-INFO comes
    # after limits.MAX_ARCHIVE_MEMBERS + 1 empty members (a few hundred KB compressed).
    built = hostile.tar_gz_with_members("demo", "1.0", limits.MAX_ARCHIVE_MEMBERS + 1)
    assert len(built[1]) < 1_000_000
    with pytest.raises(InvalidInput, match=f"more than {limits.MAX_ARCHIVE_MEMBERS} archive"):
        extract(built)


def test_h09_tar_scan_bytes() -> None:
    # 1 GiB + 64 MiB of zeros before PKG-INFO, in 1 MB: refused before decompressing it.
    size_mib = limits.MAX_ARCHIVE_SCAN_BYTES // MIB + 64
    built = hostile.tar_gz_with_big_member("demo", "1.0", size_mib)
    assert len(built[1]) < 2_000_000
    refused_within_budget(lambda: extract(built), "bytes to decompress before its PKG-INFO")


def test_h09_tar_header_record_bomb() -> None:
    # A 64 MiB pax header: tarfile would read it whole into memory.
    built = hostile.tar_gz_with_pax_header("demo", "1.0", 64)
    refused_within_budget(lambda: extract(built), "tar header or member of 67108864 bytes")


def test_h09_zip_member_count() -> None:
    built = hostile.zip_wheel_with_entries("demo", "1.0", limits.MAX_ARCHIVE_MEMBERS + 1)
    refused_within_budget(
        lambda: extract(built), f"more than {limits.MAX_ARCHIVE_MEMBERS} archive members"
    )
    assert extract(hostile.zip_wheel_with_entries("demo", "1.0", 100)).name == "demo"


# --- 12: every field bounded and validated ---------------------------------------------------


def test_h12_huge_version_field() -> None:
    dist = distributions.parse("demo-1.0.tar.gz")
    with pytest.raises(InvalidInput, match="longer than 128"):
        distributions.check_matches_form(dist, "demo", "1" * 1_000_000)
    with pytest.raises(InvalidInput, match="not a PEP 440 version"):
        distributions.check_matches_form(dist, "demo", "1.0\n")


@pytest.mark.parametrize(
    "name",
    ["demo\n", "demo\r\nX-Injected: 1", "de\rmo", "demo\x00", "\u212aelvin", "x" * 129],
)
def test_h12_project_name_with_crlf_controls_or_lookalikes(name: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid project name"):
        names.validate(name)


def test_h12_metadata_fields_bounded_and_validated() -> None:
    def meta(*lines: str) -> bytes:
        return ("Metadata-Version: 2.1\n" + "".join(f"{line}\n" for line in lines) + "\n").encode()

    ok = metadata.parse(meta("Name: demo", "Version: 1.0"), source="METADATA", strict=True)
    assert (ok.name, ok.version, ok.summary) == ("demo", "1.0", None)
    cases = {
        "Summary is longer than 512": meta("Name: demo", "Version: 1.0", "Summary: " + "s" * 513),
        "Version is longer than 128": meta("Name: demo", "Version: " + "1" * 100_000),
        "Name is longer than 128": meta("Name: " + "n" * 129, "Version: 1.0"),
        "Name is given more than once": meta("Name: demo", "Name: other", "Version: 1.0"),
        "Requires-Python": meta("Name: demo", "Version: 1.0", "Requires-Python: >=3.x"),
        "Summary contains control": meta("Name: demo", "Version: 1.0", "Summary: a\x00b"),
        "Name: ": meta("Name: de mo", "Version: 1.0"),
    }
    for expected, raw in cases.items():
        with pytest.raises(InvalidInput, match=expected):
            metadata.parse(raw, source="METADATA", strict=True)
        loose = metadata.parse(raw, source="METADATA", strict=False)  # bucket objects
        assert loose.core_metadata_bytes == raw
    latin1 = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: caf\xe9\n\n"
    with pytest.raises(InvalidInput, match="Summary is given more than once or is not valid UTF-8"):
        metadata.parse(latin1, source="METADATA", strict=True)


def test_h12_non_ascii_summary_in_every_field_store() -> None:
    summary = "Résumé — 日本語のパッケージ ☃ 🐍"
    filename, data = wheel_bytes("demo", "1.0", summary=summary)
    described = describe_distribution(filename, data, uploader="zoë")
    assert described.record.summary == summary  # decoded as UTF-8, not surrogate-escaped
    described.record.summary.encode("utf-8")  # storable: SQLite once failed right here
    encoded = to_object_metadata(described.record)
    assert all(value.isascii() and value.isprintable() for value in encoded.values())
    back = from_object_metadata(filename, len(data), encoded)
    assert back is not None
    assert (back.summary, back.uploader, back.sha256) == (summary, "zoë", described.record.sha256)


def test_h12_object_metadata_too_large_keeps_only_provenance() -> None:
    record = FileRecord(
        project="demo",
        filename="demo-1.0.tar.gz",
        version="1.0",
        sha256="a" * 64,
        size=1,
        upload_time=1_700_000_000.5,
        summary="日本" * 256,  # 512 characters, 4.6 KB percent-encoded
        uploader="zoë",
    )
    encoded = to_object_metadata(record)
    assert sum(len(k) + len(v) for k, v in encoded.items()) <= MAX_OBJECT_METADATA_BYTES
    assert from_object_metadata(record.filename, 1, encoded) is None  # described from bytes
    assert provenance(encoded) == ("zoë", 1_700_000_000.5)


@pytest.mark.parametrize("bad", ["é" * 64, "g" * 64, "ab", "a" * 65, "../" * 20])
def test_h12_digest_fields_must_be_hex(bad: str) -> None:
    with pytest.raises(InvalidInput, match="hex digest"):
        check_digests(Digests.of(b"data"), {"sha256_digest": bad})
    digest = hashlib.sha256(b"data").hexdigest().upper()
    check_digests(Digests.of(b"data"), {"sha256_digest": digest})


def test_each_digest_field_is_checked_against_its_own_hash() -> None:
    right = {
        "sha256_digest": hashlib.sha256(b"data").hexdigest(),
        "md5_digest": hashlib.md5(b"data").hexdigest(),
        "blake2_256_digest": hashlib.blake2b(b"data", digest_size=32).hexdigest(),
    }
    computed = Digests.of(b"data")
    check_digests(computed, right)
    for field in right:
        wrong = {**right, field: hashlib.sha256(b"other").hexdigest()[: len(right[field])]}
        with pytest.raises(InvalidInput, match="does not match"):
            check_digests(computed, wrong)


# --- 16: filenames ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("demo-1.0.tar.gz#sha256=00", "'#'"),
        ("demo-1.0.tar.gz?x=1", "'?'"),
        ("demo%2F..-1.0.tar.gz", "'%'"),
        ("sub/demo-1.0.tar.gz", "'/'"),
        ("\u212aelvin-1.0-py3-none-any.whl", "KELVIN SIGN"),
        ("demo 1.0.tar.gz", "' '"),
        ("demo-1.0.tar.gz\n", "U+000A"),
        ("demo-1.0-py3-none-any.whl\u200b", "ZERO WIDTH SPACE"),
    ],
)
def test_h16_filename_characters(filename: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match="character .*" + re.escape(problem)):
        distributions.parse(filename)


@pytest.mark.parametrize(
    ("filename", "canonical"),
    [
        ("Demo_Pkg-1.0-py3-none-any.whl", "demo_pkg-1.0-py3-none-any.whl"),
        ("demo.pkg-1.0-py3-none-any.whl", "demo_pkg-1.0-py3-none-any.whl"),
        ("demo-pkg-1.0.tar.gz", "demo_pkg-1.0.tar.gz"),
        ("demo-01.0.tar.gz", "demo-1.0.tar.gz"),
        ("demo-1.0-1-py3-none-any.whl", None),  # build tag: canonical already
    ],
)
def test_h16_filename_canonical_form(filename: str, canonical: str | None) -> None:
    if canonical is None:
        assert distributions.parse(filename).project == "demo"
        return
    with pytest.raises(InvalidInput, match=f"expected '{canonical}'"):
        distributions.parse(filename)
    assert distributions.parse(filename, strict=False).filename == filename  # legacy objects
    assert (
        distributions.parse(canonical).project
        == distributions.parse(filename, strict=False).project
    )


# --- 17: METADATA must agree with the filename and the form ------------------------------------


def test_h17_metadata_name_and_version_must_match_the_filename() -> None:
    filename = "demo-1.0-py3-none-any.whl"
    other_name = wheel_bytes("demo", "1.0", metadata=core_metadata("other", "1.0").encode())
    with pytest.raises(InvalidInput, match="METADATA field Name 'other' does not match"):
        describe_distribution(filename, other_name[1])
    other_version = wheel_bytes("demo", "1.0", metadata=core_metadata("demo", "2.0").encode())
    with pytest.raises(InvalidInput, match=r"METADATA field Version '2\.0' does not match"):
        describe_distribution(filename, other_version[1])
    spelled = wheel_bytes("demo", "1.0", metadata=core_metadata("DEMO", "1.0.0").encode())
    assert describe_distribution(filename, spelled[1]).record.display_name == "DEMO"


def test_h17_sdist_pkg_info_must_match_and_exist() -> None:
    filename, data = sdist_bytes("demo", "1.0")
    assert describe_distribution(filename, data).record.version == "1.0"
    with pytest.raises(InvalidInput, match="PKG-INFO field Name 'demo' does not match"):
        describe_distribution("other-1.0.tar.gz", data)


def test_h17_form_fields_must_match_the_filename() -> None:
    dist = distributions.parse("demo-1.0.tar.gz")
    with pytest.raises(InvalidInput, match="form field name 'other'"):
        distributions.check_matches_form(dist, "other", "1.0")
    with pytest.raises(InvalidInput, match=r"form field version '1\.1'"):
        distributions.check_matches_form(dist, "demo", "1.1")


def test_h17_core_metadata_served_exactly_as_stored() -> None:
    # CRLF line ends, a non-ASCII description body and fields newer than the declared
    # Metadata-Version (setuptools' License-File in 2.1): accepted, kept byte for byte.
    raw = (
        "Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0\r\nSummary: naïve\r\n"
        "License-File: LICENSE\r\n\r\nDescription with ünïcödé\r\n"
    ).encode()
    filename, data = wheel_bytes("demo", "1.0", metadata=raw)
    described = describe_distribution(filename, data)
    assert described.core_metadata == raw
    assert described.record.metadata_sha256 == hashlib.sha256(raw).hexdigest()
    assert described.record.summary == "naïve"
