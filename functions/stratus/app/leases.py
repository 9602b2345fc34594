"""One writer per storage key at a time, through ``Catalog.acquire_lease``.

Uploads, deletes and reconcile repairs of a key each hold the key's lease while they
write its object, its core metadata file and its catalog entry, so their steps never
interleave: two overwrites cannot leave the entry of one with the bytes of the other,
and a retry may replace the object a crashed attempt left behind (nobody else is writing
it). A holder that dies keeps the lease until it expires (``LEASE_SECONDS``, far longer
than one request may run: 30 s on API Gateway); the S3 event sync takes no lease, as it
only mirrors the bucket's current state.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ..domain.errors import Conflict
from ..ports import Catalog

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0
POLL_SECONDS = 0.05  # first wait between attempts; doubled up to POLL_CAP_SECONDS
POLL_CAP_SECONDS = 0.5


def new_owner() -> str:
    """A lease owner id: host and process (for the logs), plus a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


class KeyLease:
    def __init__(self, catalog: Catalog, key: str, *, seconds: float = LEASE_SECONDS) -> None:
        self.catalog = catalog
        self.name = key
        self.seconds = seconds
        self.owner = new_owner()

    def acquire(self, *, wait: float = 0.0) -> bool:
        """Take the lease, retrying for up to ``wait`` seconds while another holds it."""
        deadline = time.monotonic() + wait
        delay = POLL_SECONDS
        while True:
            if self.catalog.acquire_lease(self.name, self.owner, self.seconds):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, random.uniform(delay / 2, delay)))
            delay = min(delay * 2, POLL_CAP_SECONDS)

    def renew(self) -> bool:
        """Extend the lease; False if it expired and another owner took it meanwhile."""
        return self.catalog.acquire_lease(self.name, self.owner, self.seconds)

    def release(self) -> None:
        self.catalog.release_lease(self.name, self.owner)


@contextmanager
def holding(
    catalog: Catalog, key: str, *, wait: float, busy: str, seconds: float = LEASE_SECONDS
) -> Iterator[KeyLease]:
    """Hold ``key``'s lease for the block; ``Conflict(busy)`` if it stays taken ``wait`` s."""
    lease = KeyLease(catalog, key, seconds=seconds)
    if not lease.acquire(wait=wait):
        raise Conflict(busy)
    try:
        yield lease
    finally:
        try:
            lease.release()
        except Exception:  # it expires by itself; do not hide the block's own outcome
            log.warning("could not release the lease of %r; it expires in %ss", key, lease.seconds)
