"""``metadata.extract_from`` (upload sessions: the object read with ranged reads) keeps
every cap of ``metadata.extract`` (``domain.archives``): the same hostile archives are
refused the same way, within the same memory, and only the bytes needed are read."""

from __future__ import annotations

import io
import zipfile

import pytest

from stratus.app.ranged_reads import RangedReader
from stratus.domain import distributions, limits, metadata
from stratus.domain.errors import InvalidInput
from tests.support import hostile
from tests.support.distributions import sdist_bytes, wheel_bytes
from tests.unit.test_hardening_input import MIB, refused_within_budget


class _Objects:
    """A Storage stand-in with ``read_range`` only, counting the bytes served."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.served = 0

    def read_range(self, key: str, start: int, length: int) -> bytes:
        piece = self.data[start : start + length]
        self.served += len(piece)
        return piece


def extract_from(built: tuple[str, bytes]) -> metadata.CoreMetadata:
    filename, data = built
    return metadata.extract_from(io.BytesIO(data), distributions.parse(filename))


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=str
)
def test_zip_bombs_are_refused(method: int) -> None:
    built = hostile.zip_bomb_wheel("demo", "1.0", method)
    refused_within_budget(lambda: extract_from(built), "METADATA is larger than 1048576 bytes")


def test_sdist_bombs_are_refused() -> None:
    zipped = ("demo-1.0.zip", hostile.zip_sdist_with_big_pkg_info("demo", "1.0"))
    refused_within_budget(lambda: extract_from(zipped), "PKG-INFO is larger than 1048576 bytes")
    tarred = hostile.tar_gz_with_big_pkg_info("demo", "1.0", inflated=32 * MIB)
    refused_within_budget(lambda: extract_from(tarred), "PKG-INFO is larger than 1048576 bytes")


def test_member_counts_and_scan_bytes_are_capped() -> None:
    many = f"more than {limits.MAX_ARCHIVE_MEMBERS} archive members"
    built = hostile.zip_wheel_with_entries("demo", "1.0", limits.MAX_ARCHIVE_MEMBERS + 1)
    refused_within_budget(lambda: extract_from(built), many)
    built = hostile.tar_gz_with_members("demo", "1.0", limits.MAX_ARCHIVE_MEMBERS + 1)
    with pytest.raises(InvalidInput, match=f"more than {limits.MAX_ARCHIVE_MEMBERS} archive"):
        extract_from(built)
    size_mib = limits.MAX_ARCHIVE_SCAN_BYTES // MIB + 64
    built = hostile.tar_gz_with_big_member("demo", "1.0", size_mib)
    refused_within_budget(lambda: extract_from(built), "bytes to decompress before its PKG-INFO")
    built = hostile.tar_gz_with_pax_header("demo", "1.0", 64)
    refused_within_budget(lambda: extract_from(built), "tar header or member of 67108864 bytes")


def test_strict_checks_apply() -> None:
    _, data = wheel_bytes("demo", "1.0")
    with pytest.raises(InvalidInput, match="does not match"):
        metadata.extract_from(io.BytesIO(data), distributions.parse("other-1.0-py3-none-any.whl"))


def test_a_large_wheel_is_read_only_where_needed() -> None:
    filename, data = wheel_bytes("demo", "1.0", summary="ok")
    # A wheel with 8 MiB of incompressible payload before its METADATA.
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("demo/payload.bin", bytes(range(256)) * (32 * 1024))
        for info in src.infolist():
            zf.writestr(info.filename, src.read(info))
    big = out.getvalue()
    objects = _Objects(big)
    with RangedReader(objects, "k", len(big), block=64 * 1024) as reader:  # type: ignore[arg-type]
        meta = metadata.extract_from(reader, distributions.parse(filename))
    assert (meta.name, meta.version, meta.summary) == ("demo", "1.0", "ok")
    assert meta.source == src.read("demo-1.0.dist-info/METADATA")
    assert objects.served < len(big) // 10


def test_sdists_read_from_a_file() -> None:
    filename, data = sdist_bytes("demo", "1.0", summary="ok")
    meta = metadata.extract_from(io.BytesIO(data), distributions.parse(filename))
    assert (meta.name, meta.version, meta.summary) == ("demo", "1.0", "ok")
