"""Core metadata extraction from wheels and sdists (for PEP 658 and the index pages)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import BinaryIO

from packaging.version import InvalidVersion, Version

from .distributions import DistFilename
from .errors import InvalidInput

MAX_METADATA_SIZE = 4 * 1024 * 1024
# PEP 643: sdist metadata is only reliable (fields not Dynamic) from Metadata-Version 2.2.
MIN_SDIST_METADATA_VERSION = Version("2.2")


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    core_metadata_bytes: bytes | None  # the PEP 658 file to serve, or None if not servable
    name: str | None
    version: str | None
    requires_python: str | None
    summary: str | None


def _parse_headers(raw: bytes) -> CoreMetadata:
    msg = BytesHeaderParser().parsebytes(raw)
    return CoreMetadata(
        core_metadata_bytes=raw,
        name=msg.get("Name"),
        version=msg.get("Version"),
        requires_python=(msg.get("Requires-Python") or None),
        summary=msg.get("Summary"),
    )


def _metadata_version(raw: bytes) -> Version | None:
    value = BytesHeaderParser().parsebytes(raw).get("Metadata-Version")
    try:
        return Version(value) if value else None
    except InvalidVersion:
        return None


def _readable(data: bytes | BinaryIO) -> BinaryIO:
    """Bytes as a file; a (seekable) file as it is, from its start."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    data.seek(0)
    return data


def _from_wheel(data: bytes | BinaryIO, dist: DistFilename) -> CoreMetadata:
    try:
        with zipfile.ZipFile(_readable(data)) as zf:
            candidates = [
                info
                for info in zf.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            if len(candidates) != 1:
                raise InvalidInput(
                    f"Invalid wheel {dist.filename!r}: expected exactly one "
                    f"*.dist-info/METADATA file, found {len(candidates)}."
                )
            info = candidates[0]
            if info.file_size > MAX_METADATA_SIZE:
                raise InvalidInput(f"Invalid wheel {dist.filename!r}: METADATA is too large.")
            raw = zf.read(info)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InvalidInput(
            f"Invalid wheel {dist.filename!r}: not a valid zip file ({exc})."
        ) from None
    return _parse_headers(raw)


def _from_sdist(data: bytes | BinaryIO, dist: DistFilename) -> CoreMetadata:
    raw: bytes | None = None
    try:
        if dist.filename.endswith(".zip"):
            with zipfile.ZipFile(_readable(data)) as zf:
                for info in zf.infolist():
                    if info.filename.count("/") == 1 and info.filename.endswith("/PKG-INFO"):
                        if info.file_size <= MAX_METADATA_SIZE:
                            raw = zf.read(info)
                        break
        else:
            with tarfile.open(fileobj=_readable(data), mode="r:gz") as tf:
                for member in tf:
                    parts = member.name.strip("/").split("/")
                    if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                        if member.size <= MAX_METADATA_SIZE:
                            f = tf.extractfile(member)
                            raw = f.read() if f else None
                        break
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InvalidInput(
            f"Invalid source distribution {dist.filename!r}: not a readable archive ({exc})."
        ) from None
    if raw is None:
        return CoreMetadata(None, None, None, None, None)
    meta = _parse_headers(raw)
    mv = _metadata_version(raw)
    if mv is None or mv < MIN_SDIST_METADATA_VERSION:
        # Still useful for Requires-Python, but not servable as PEP 658 metadata.
        return CoreMetadata(None, meta.name, meta.version, meta.requires_python, meta.summary)
    return meta


def extract(data: bytes | BinaryIO, dist: DistFilename) -> CoreMetadata:
    """Read the core metadata of a distribution (bytes, or a seekable file: never read
    whole); raise InvalidInput for a broken archive."""
    if dist.kind == "bdist_wheel":
        return _from_wheel(data, dist)
    return _from_sdist(data, dist)
