"""Reading a stored object without holding it: a seekable file over ranged reads, and a
SHA-256 streamed in chunks. Memory stays bounded whatever the object's size."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, cast

from ..ports import Storage
from .indexing import Described, Digests, describe_archive, describe_distribution

DEFAULT_BLOCK = 256 * 1024
# Objects larger than this whose SHA-256 is known (S3's checksum of a checked upload, or
# the catalog's) are described with ranged reads, never read whole into memory.
RANGED_DESCRIBE_BYTES = 8 * 1024 * 1024
HASH_CHUNK = 16 * 1024 * 1024  # S3 serves ranges of 8-16 MB best


class RangedReader(io.RawIOBase):
    """A read-only, seekable binary file over ``storage.read_range`` of one object.

    Reads are served from a few cached blocks of ``block`` bytes, so ``zipfile`` (which
    seeks to the end, then to the central directory, then to one member) and ``tarfile``
    (which reads forward in small pieces) cost a handful of requests, not one per call.
    ``requests`` counts the ranged reads made.
    """

    def __init__(
        self, storage: Storage, key: str, size: int, *, block: int = DEFAULT_BLOCK, blocks: int = 4
    ) -> None:
        super().__init__()
        self.storage = storage
        self.key = key
        self.size = size
        self.block = block
        self.requests = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._max_blocks = blocks
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError("negative seek position")
        self._pos = position
        return position

    def _block_at(self, index: int) -> bytes:
        data = self._blocks.get(index)
        if data is None:
            self.requests += 1
            data = self.storage.read_range(self.key, index * self.block, self.block)
            self._blocks[index] = data
            while len(self._blocks) > self._max_blocks:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(index)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(self.size - self._pos, 0))
        done = 0
        while done < wanted:
            index, offset = divmod(self._pos, self.block)
            data = self._block_at(index)
            piece = data[offset : offset + wanted - done]
            if not piece:  # the object is shorter than it was said to be
                break
            view[done : done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done


def stream_sha256(
    storage: Storage,
    key: str,
    size: int,
    *,
    chunk: int = HASH_CHUNK,
    parallel: int = 4,
    sink: Callable[[bytes], object] | None = None,
) -> str:
    """The hex SHA-256 of the first ``size`` bytes of an object, read in ``chunk``-sized
    ranges with up to ``parallel`` reads in flight (so at most ``parallel`` chunks are in
    memory). Each chunk also goes to ``sink`` in order (a file's ``write``: a streamed
    copy). ``ValueError`` if the object ends early."""
    digest = hashlib.sha256()
    starts = iter(range(0, size, chunk))
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(max(1, parallel)) as pool:

        def submit_next() -> None:
            start = next(starts, None)
            if start is not None:
                pending.append(
                    pool.submit(storage.read_range, key, start, min(chunk, size - start))
                )

        for _ in range(max(1, parallel)):
            submit_next()
        read = 0
        while pending:
            data = pending.popleft().result()
            submit_next()
            if not data:
                raise ValueError(f"object {key!r} ended after {read} of {size} bytes")
            digest.update(data)
            if sink is not None:
                sink(data)
            read += len(data)
            del data
        if read != size:
            raise ValueError(f"object {key!r} has {read} bytes, not {size}")
    return digest.hexdigest()


def describe_ranged(
    storage: Storage,
    key: str,
    filename: str,
    *,
    size: int,
    sha256: str,
    strict: bool = True,
    uploader: str | None = None,
    upload_time: float | None = None,
    display_name: str | None = None,
) -> Described:
    """The record of a stored distribution whose size and SHA-256 are known (checked by
    the store), its core metadata read with a few ranged reads (a zip's central directory,
    a tar.gz's start): the object is never held whole. ``InvalidInput`` as
    ``indexing.describe_distribution``; ``strict`` likewise."""
    with RangedReader(storage, key, size) as reader:
        return describe_archive(
            filename,
            cast(BinaryIO, reader),  # a seekable, read-only binary file
            Digests(size, sha256),
            strict=strict,
            uploader=uploader,
            upload_time=upload_time,
            display_name=display_name,
        )


def describe_stored(
    storage: Storage,
    key: str,
    filename: str,
    *,
    size: int,
    sha256: str | None,
    strict: bool = True,
    uploader: str | None = None,
    upload_time: float | None = None,
) -> Described:
    """A stored distribution described: with ranged reads when it is large and its SHA-256
    is known (``describe_ranged``), else read whole and hashed (``describe_distribution``)."""
    if sha256 is not None and size > RANGED_DESCRIBE_BYTES:
        return describe_ranged(
            storage,
            key,
            filename,
            size=size,
            sha256=sha256,
            strict=strict,
            uploader=uploader,
            upload_time=upload_time,
        )
    data = storage.read(key)
    return describe_distribution(
        filename, data, uploader=uploader, upload_time=upload_time, strict=strict
    )
