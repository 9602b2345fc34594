"""Hostile archives for the hardening tests: small to build and to keep, costly to read.

Each builder streams its payload through the compressor in 1 MiB chunks, so a 1 GiB
bomb costs the test a few MiB of memory and well under a second.
"""

from __future__ import annotations

import io
import itertools
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable

from tests.support.distributions import core_metadata

MIB = 1024 * 1024
_CHUNK = bytes(MIB)


def _patch_claimed_size(data: bytearray, member: str, claimed: int) -> None:
    """Make the central directory and local header of ``member`` claim ``claimed`` bytes."""
    name = member.encode()
    cd_at = data.find(b"PK\x01\x02")
    while cd_at >= 0:
        name_length = struct.unpack_from("<H", data, cd_at + 28)[0]
        if data[cd_at + 46 : cd_at + 46 + name_length] == name:
            struct.pack_into("<L", data, cd_at + 24, claimed)
            local_at = struct.unpack_from("<L", data, cd_at + 42)[0]
            struct.pack_into("<L", data, local_at + 22, claimed)
            return
        cd_at = data.find(b"PK\x01\x02", cd_at + 4)
    raise AssertionError(f"{member} not found")


def zip_bomb_wheel(
    name: str, version: str, method: int, *, inflated: int = 32 * MIB, claimed: int = 200
) -> tuple[str, bytes]:
    """A wheel whose METADATA inflates to ``inflated`` bytes while its headers claim
    ``claimed``: the size must be counted while decompressing."""
    dist = name.replace("-", "_")
    member = f"{dist}-{version}.dist-info/METADATA"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        zf.writestr(f"{dist}/__init__.py", b"")
        with zf.open(member, "w") as out:
            out.write(core_metadata(name, version).encode())
            for _ in range(inflated // MIB):
                out.write(_CHUNK)
    data = bytearray(buf.getvalue())
    _patch_claimed_size(data, member, claimed)
    return f"{dist}-{version}-py3-none-any.whl", bytes(data)


def zip_sdist_with_big_pkg_info(name: str, version: str, *, inflated: int = 32 * MIB) -> bytes:
    """A .zip sdist whose PKG-INFO inflates to ``inflated`` bytes but claims 200."""
    base = f"{name.replace('-', '_')}-{version}"
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open(f"{base}/PKG-INFO", "w") as out,
    ):
        out.write(core_metadata(name, version, metadata_version="2.2").encode())
        for _ in range(inflated // MIB):
            out.write(_CHUNK)
    data = bytearray(buf.getvalue())
    _patch_claimed_size(data, f"{base}/PKG-INFO", 200)
    return bytes(data)


def zip_wheel_with_entries(name: str, version: str, entries: int) -> tuple[str, bytes]:
    """A valid wheel whose central directory also lists ``entries`` empty files.

    The extra entries all point at one local header, so the archive stays a few MiB.
    """
    dist = name.replace("-", "_")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", core_metadata(name, version))
        zf.writestr("f", b"")
    data = buf.getvalue()
    eocd_at = data.rfind(b"PK\x05\x06")
    size_cd, offset_cd = struct.unpack_from("<4s4H2LH", data, eocd_at)[5:7]
    central = data[offset_cd : offset_cd + size_cd]
    last_at = central.rfind(b"PK\x01\x02")  # the entry of "f"
    extra = central[last_at:] * entries
    central += extra
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(central), offset_cd, 0)
    return f"{dist}-{version}-py3-none-any.whl", data[:offset_cd] + central + eocd


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mtime = 1577836800
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _pkg_info_member(base: str, name: str, version: str) -> bytes:
    text = core_metadata(name, version, metadata_version="2.2").encode()
    padding = -len(text) % tarfile.BLOCKSIZE
    return _header(f"{base}/PKG-INFO", len(text)) + text + bytes(padding)


def _gzip(parts: Iterable[bytes]) -> bytes:
    """One gzip member holding the concatenated ``parts`` (streamed: any size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return b"".join(out)


def _tail(base: str, name: str, version: str) -> bytes:
    """A gzip member with the PKG-INFO member and the end-of-archive blocks."""
    return _gzip([_pkg_info_member(base, name, version), bytes(2 * tarfile.BLOCKSIZE)])


def tar_gz_with_members(name: str, version: str, members: int) -> tuple[str, bytes]:
    """A valid sdist whose PKG-INFO comes after ``members`` empty files."""
    base = f"{name.replace('-', '_')}-{version}"
    per_chunk = 2048
    block = _header(f"{base}/f", 0)
    full, rest = divmod(members, per_chunk)
    body = _gzip(itertools.chain(itertools.repeat(block * per_chunk, full), [block * rest]))
    return f"{base}.tar.gz", body + _tail(base, name, version)


def tar_gz_with_big_member(name: str, version: str, size_mib: int) -> tuple[str, bytes]:
    """A valid sdist whose PKG-INFO comes after a member of ``size_mib`` MiB of zeros.

    Gzip members concatenate: one member of 64 MiB of zeros is built once and repeated.
    """
    base = f"{name.replace('-', '_')}-{version}"
    zeros = _gzip(itertools.repeat(_CHUNK, 64))
    full, rest = divmod(size_mib, 64)
    body = _gzip([_header(f"{base}/data.bin", size_mib * MIB)]) + zeros * full
    body += _gzip(itertools.repeat(_CHUNK, rest))
    return f"{base}.tar.gz", body + _tail(base, name, version)


def tar_gz_with_big_pkg_info(
    name: str, version: str, *, inflated: int = 32 * 1024 * 1024
) -> tuple[str, bytes]:
    """An sdist whose PKG-INFO (a long description body) is ``inflated`` bytes."""
    base = f"{name.replace('-', '_')}-{version}"
    head = core_metadata(name, version, metadata_version="2.2").encode()
    full, rest = divmod(inflated - len(head), MIB)
    parts = itertools.chain(
        [_header(f"{base}/PKG-INFO", inflated), head],
        itertools.repeat(b" " * MIB, full),
        [b" " * rest, bytes(-inflated % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)],
    )
    return f"{base}.tar.gz", _gzip(parts)


def tar_gz_with_pax_header(name: str, version: str, size_mib: int) -> tuple[str, bytes]:
    """An sdist whose first record is a pax extended header of ``size_mib`` MiB (tarfile
    reads a header record whole) before its PKG-INFO."""
    base = f"{name.replace('-', '_')}-{version}"
    length = size_mib * MIB
    prefix = f"{length} comment=".encode()
    filler = length - len(prefix) - 1
    full, rest = divmod(filler, MIB)
    parts = itertools.chain(
        [_header("././@PaxHeader", length, tarfile.XHDTYPE), prefix],
        itertools.repeat(b"x" * MIB, full),
        [b"x" * rest + b"\n"],
    )
    return f"{base}.tar.gz", _gzip(parts) + _tail(base, name, version)
