"""Read one small member of an untrusted zip or .tar.gz, with hard caps on every cost.

Archive headers lie: a 2 KB zip can declare a 100-byte METADATA that inflates to 4 GB,
a .tar.gz can hold a million members or a member header that claims gigabytes. So:

* zip: the central directory's entries are counted before ``zipfile`` parses them
  (``zipfile`` builds an object per entry); a member's bytes are decompressed here, from
  the raw stream, with the decompressor's own output cap (``max_length``), so no more
  than ``MAX_CORE_METADATA_BYTES + 1`` bytes ever exist, whatever the method (stored,
  deflate, bzip2, lzma: ``zipfile``'s own reader inflates a bzip2/lzma chunk whole);
  the size and CRC-32 are then checked against the central directory.
* tar.gz: ``tarfile`` reads through a view of the decompressed stream that refuses to
  go past ``MAX_ARCHIVE_SCAN_BYTES`` or to read a single header record larger than
  ``MAX_TAR_HEADER_BYTES``, and the scan stops after ``MAX_ARCHIVE_MEMBERS`` members.

Every refusal is an ``InvalidInput`` (HTTP 400) naming the limit. Pure: works on bytes
or on a seekable binary file (an object read with ranged reads, ``app.ranged_reads``),
from which only the bytes needed are read: a zip's end, its central directory and one
member (whose compressed size is bounded too), a tar.gz from its start, under the caps.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO

from . import limits
from .errors import InvalidInput

# --- zip -------------------------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header, 46 bytes
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # local file header, 30 bytes
_EOCD_SIG = b"PK\x05\x06"
_EOCD64_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64_SIG = b"PK\x06\x06"
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL_SIG = b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF
_ENCRYPTED = 0x1
_TAIL = _MAX_COMMENT + _EOCD.size + _EOCD64_LOCATOR.size + _EOCD64.size
_CD_CHUNK = 256 * 1024  # central directory bytes read at a time from a file

# An archive: its bytes, or a seekable binary file (read only where needed).
Source = bytes | BinaryIO


class _Reader:
    """Random access to a ``Source``: slices of bytes, or seek + read of a file."""

    def __init__(self, source: Source) -> None:
        if isinstance(source, bytes | bytearray | memoryview):
            self._data: bytes | None = bytes(source)
            self._file: BinaryIO | None = None
            self.size = len(self._data)
        else:
            self._data = None
            self._file = source
            self.size = source.seek(0, io.SEEK_END)

    def read_at(self, offset: int, length: int) -> bytes:
        """At most ``length`` bytes from ``offset`` (fewer at the end)."""
        length = min(length, self.size - offset)
        if offset < 0 or length <= 0:
            return b""
        if self._data is not None:
            return self._data[offset : offset + length]
        assert self._file is not None
        self._file.seek(offset)
        pieces: list[bytes] = []
        left = length
        while left > 0:
            piece = self._file.read(left)
            if not piece:
                break
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)

    def stream(self) -> BinaryIO:
        """The archive as a file positioned at its start."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._file is not None
        self._file.seek(0)
        return self._file


def _central_directory(src: _Reader) -> tuple[int, int] | None:
    """(start, size) of the central directory, found as ``zipfile`` finds it."""
    base = max(src.size - _TAIL, 0)
    data = src.read_at(base, src.size - base)  # the end of the archive, positions from base
    record: tuple | None = None
    eocd_at = len(data) - _EOCD.size
    if eocd_at >= 0 and data[eocd_at : eocd_at + 4] == _EOCD_SIG and data[-2:] == b"\0\0":
        record = _EOCD.unpack_from(data, eocd_at)
    else:
        search_from = max(len(data) - _MAX_COMMENT - _EOCD.size, 0)
        eocd_at = data.rfind(_EOCD_SIG, search_from)
        if eocd_at < 0 or eocd_at + _EOCD.size > len(data):
            return None
        record = _EOCD.unpack_from(data, eocd_at)
    size_cd, offset_cd = record[5], record[6]
    concat = base + eocd_at - size_cd - offset_cd
    locator_at = eocd_at - _EOCD64_LOCATOR.size
    eocd64_at = locator_at - _EOCD64.size
    if (
        eocd64_at >= 0
        and data[locator_at : locator_at + 4] == _EOCD64_LOCATOR_SIG
        and data[eocd64_at : eocd64_at + 4] == _EOCD64_SIG
    ):
        zip64 = _EOCD64.unpack_from(data, eocd64_at)
        size_cd, offset_cd = zip64[8], zip64[9]
        concat = base + eocd_at - size_cd - offset_cd - _EOCD64.size - _EOCD64_LOCATOR.size
    return offset_cd + concat, size_cd


def _check_member_count(src: _Reader, label: str) -> None:
    """Count the central directory entries zipfile would build, without building them."""
    found = _central_directory(src)
    if found is None:
        return  # not a zip: zipfile says so
    start, size = found
    if start < 0:
        return
    end = min(start + size, src.size)
    position, count = start, 0
    chunk_at, chunk = start, b""
    while position < end:
        if position + _CENTRAL_ENTRY.size > end:
            return  # truncated: zipfile refuses it
        if position + _CENTRAL_ENTRY.size > chunk_at + len(chunk):  # read on, in chunks
            chunk_at = position
            chunk = src.read_at(position, min(_CD_CHUNK, end - position))
            if len(chunk) < _CENTRAL_ENTRY.size:
                return
        entry = _CENTRAL_ENTRY.unpack_from(chunk, position - chunk_at)
        if entry[0] != _CENTRAL_SIG:
            return
        count += 1
        if count > limits.MAX_ARCHIVE_MEMBERS:
            raise InvalidInput(
                f"Invalid {label}: more than {limits.MAX_ARCHIVE_MEMBERS} archive members."
            )
        position += _CENTRAL_ENTRY.size + entry[12] + entry[13] + entry[14]


def _lzma_filter(header: bytes, label: str) -> tuple[dict, int]:
    """The LZMA1 filter of a zip member (APPNOTE 5.8.8: version, props size, props)."""
    if len(header) < 4:
        raise InvalidInput(f"Invalid {label}: truncated LZMA header.")
    props_size = int.from_bytes(header[2:4], "little")
    props = header[4 : 4 + props_size]
    if props_size != 5 or len(props) != 5:
        raise InvalidInput(f"Invalid {label}: bad LZMA properties.")
    lclppb, dict_size = props[0], int.from_bytes(props[1:5], "little")
    lc, rest = lclppb % 9, lclppb // 9
    lp, pb = rest % 5, rest // 5
    if pb > 4 or dict_size > limits.MAX_LZMA_DICT_BYTES:
        raise InvalidInput(f"Invalid {label}: unsupported LZMA properties.")
    spec = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    return spec, 4 + props_size


def _inflate(method: int, raw: bytes, cap: int, label: str) -> bytes:
    """Decompress ``raw`` producing at most ``cap`` bytes (the decompressors' own cap)."""
    if method == zipfile.ZIP_STORED:
        return raw[:cap]
    if method == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-15).decompress(raw, cap)
    if method == zipfile.ZIP_BZIP2:
        return bz2.BZ2Decompressor().decompress(raw, max_length=cap)
    if method == zipfile.ZIP_LZMA:
        spec, skip = _lzma_filter(raw[:64], label)
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[spec])
        return decompressor.decompress(raw[skip:], max_length=cap)
    raise InvalidInput(f"Invalid {label}: unsupported compression method {method}.")


def read_zip_member(
    source: Source, zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str
) -> bytes:
    """The member's bytes, at most ``MAX_CORE_METADATA_BYTES``, decompressed under that cap."""
    src = source if isinstance(source, _Reader) else _Reader(source)
    limit = limits.MAX_CORE_METADATA_BYTES
    too_large = InvalidInput(f"Invalid {label}: {info.filename} is larger than {limit} bytes.")
    if info.file_size > limit:
        raise too_large
    if info.flag_bits & _ENCRYPTED:
        raise InvalidInput(f"Invalid {label}: {info.filename} is encrypted.")
    # A member of at most ``limit`` bytes never compresses to much more: a larger
    # compressed size is a lie, and is not read.
    if info.compress_size > 2 * limit + 65536:
        raise too_large
    at = info.header_offset
    if at < 0 or at + _LOCAL_HEADER.size > src.size:
        raise InvalidInput(f"Invalid {label}: {info.filename} lies outside the archive.")
    header = _LOCAL_HEADER.unpack_from(src.read_at(at, _LOCAL_HEADER.size))
    name_length, extra_length = header[10], header[11]
    name = src.read_at(at + _LOCAL_HEADER.size, name_length)
    if header[0] != _LOCAL_SIG or name != info.orig_filename.encode(
        "utf-8" if info.flag_bits & 0x800 else "cp437", "replace"
    ):
        raise InvalidInput(f"Invalid {label}: the local header of {info.filename} disagrees.")
    start = at + _LOCAL_HEADER.size + name_length + extra_length
    raw = src.read_at(start, info.compress_size)
    if len(raw) != info.compress_size:
        raise InvalidInput(f"Invalid {label}: {info.filename} is truncated.")
    try:
        content = _inflate(info.compress_type, raw, limit + 1, label)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise InvalidInput(f"Invalid {label}: cannot decompress {info.filename} ({exc}).") from None
    if len(content) > limit:
        raise too_large
    if len(content) != info.file_size or zlib.crc32(content) != info.CRC:
        raise InvalidInput(f"Invalid {label}: {info.filename} fails its size or CRC check.")
    return content


def open_zip(source: Source, label: str) -> zipfile.ZipFile:
    """A ZipFile on ``source`` once its member count is known to be within the limit."""
    src = _Reader(source)
    _check_member_count(src, label)
    try:
        return zipfile.ZipFile(src.stream())
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InvalidInput(f"Invalid {label}: not a valid zip file ({exc}).") from None


# --- tar.gz ----------------------------------------------------------------------------


class _BoundedStream(io.RawIOBase):
    """A read-only, seekable view of a decompressed stream that refuses to go too far."""

    def __init__(self, raw: gzip.GzipFile, label: str) -> None:
        self._raw = raw
        self._label = label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def _refuse_beyond(self, position: int) -> None:
        if position > limits.MAX_ARCHIVE_SCAN_BYTES:
            raise InvalidInput(
                f"Invalid {self._label}: more than {limits.MAX_ARCHIVE_SCAN_BYTES} bytes to "
                "decompress before its PKG-INFO."
            )

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell()}.get(whence)
        if target is None:
            raise io.UnsupportedOperation("seek from the end")
        self._refuse_beyond(target + offset)
        return self._raw.seek(target + offset)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = limits.MAX_TAR_HEADER_BYTES + 1
        if size > limits.MAX_TAR_HEADER_BYTES + tarfile.BLOCKSIZE:
            raise InvalidInput(
                f"Invalid {self._label}: a tar header or member of {size} bytes to read whole "
                f"(at most {limits.MAX_TAR_HEADER_BYTES})."
            )
        self._refuse_beyond(self.tell() + size)
        return self._raw.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _CappedInput(io.RawIOBase):
    """The compressed side of a tar.gz scan: refuses to read more than could be needed
    to decompress ``MAX_ARCHIVE_SCAN_BYTES`` (gzip barely grows incompressible data)."""

    LIMIT = limits.MAX_ARCHIVE_SCAN_BYTES + limits.MAX_ARCHIVE_SCAN_BYTES // 64 + 65536

    def __init__(self, file: BinaryIO, label: str) -> None:
        self._file = file
        self._label = label
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._read >= self.LIMIT:
            raise InvalidInput(
                f"Invalid {self._label}: more than {limits.MAX_ARCHIVE_SCAN_BYTES} bytes to "
                "decompress before its PKG-INFO."
            )
        data = self._file.read(min(len(buffer), self.LIMIT - self._read))
        buffer[: len(data)] = data
        self._read += len(data)
        return len(data)


def read_tar_gz_member(
    source: Source, wanted: Callable[[tarfile.TarInfo], bool], label: str
) -> bytes | None:
    """The first member ``wanted`` accepts (at most ``MAX_CORE_METADATA_BYTES``), or None."""
    if isinstance(source, bytes | bytearray | memoryview):
        compressed: BinaryIO = io.BytesIO(source)
    else:
        source.seek(0)
        compressed = _CappedInput(source, label)  # type: ignore[assignment]
    stream = _BoundedStream(gzip.GzipFile(fileobj=compressed, mode="rb"), label)
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tf:
            for count in range(1, limits.MAX_ARCHIVE_MEMBERS + 2):
                member = tf.next()
                if member is None:
                    return None
                if count > limits.MAX_ARCHIVE_MEMBERS:
                    raise InvalidInput(
                        f"Invalid {label}: more than {limits.MAX_ARCHIVE_MEMBERS} archive "
                        "members before its PKG-INFO."
                    )
                if not wanted(member):
                    continue
                if member.size > limits.MAX_CORE_METADATA_BYTES:
                    raise InvalidInput(
                        f"Invalid {label}: {member.name} is larger than "
                        f"{limits.MAX_CORE_METADATA_BYTES} bytes."
                    )
                extracted = tf.extractfile(member)
                content = extracted.read(limits.MAX_CORE_METADATA_BYTES + 1) if extracted else b""
                if len(content) > limits.MAX_CORE_METADATA_BYTES:
                    raise InvalidInput(f"Invalid {label}: {member.name} is too large.")
                return content
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as exc:
        raise InvalidInput(f"Invalid {label}: not a readable archive ({exc}).") from None
    return None
