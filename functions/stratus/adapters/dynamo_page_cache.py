"""PageCache and FillLocks on the Stratus DynamoDB table.

Cached upstream pages, one partition per page (``pk=UPSTREAM#<mirror>#<project>``):

* head ``sk=PAGE``: ``gen`` (time-ordered per write), ``chunks`` (how many), ``checked_at``;
* chunks ``sk=C#<gen>#<nnnn>``: ``data``, up to ``CHUNK_BYTES`` of the compressed page.

Why compressed chunks in the table and not S3: a page is one Query (head and chunks, in
sort-key order), about 5 ms, where an S3 GET costs 20-50 ms and a second IAM scope; a
10,000-file page is ~1 MB compressed (``domain.upstream.encode_page``), i.e. three items
of < 400 KB. A writer puts the chunks of a new generation first, then the head (only
over an older generation), then deletes the chunks of older generations (or its own if
a newer head won), so a head never names chunks that were not written or were deleted;
a reader that finds the head's chunks incomplete (a replace between its reads) reads
once more, then reports a miss, which refetches the page.
``mark_checked`` updates the head only.

Fill locks: ``pk=FILLLOCK#<key>, sk=LOCK`` with the table's TTL attribute: a conditional
put takes a free or expired lock; DynamoDB's TTL sweeps forgotten ones.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from ..domain.upstream import UpstreamPage, decode_page, encode_page
from . import table_schema
from .dynamo_table import TableAdapter, cached_per_table, table_for

PAGE_PREFIX = "UPSTREAM#"
HEAD_SK = "PAGE"
CHUNK_PREFIX = "C#"
CHUNK_BYTES = 350 * 1024  # plus keys and attribute names: well under 400 KB per item
LOCK_PREFIX = "FILLLOCK#"
LOCK_SK = "LOCK"


def page_pk(mirror: str, project: str) -> str:
    return f"{PAGE_PREFIX}{mirror}#{project}"


def new_generation() -> str:
    """Sortable by creation time (then random): the newest page wins a race of writers."""
    return f"{time.time_ns():020d}{os.urandom(3).hex()}"


def chunk_sk(gen: str, number: int) -> str:
    return f"{CHUNK_PREFIX}{gen}#{number:04d}"


@dataclass(frozen=True, slots=True)
class _Models:
    page: Any
    lock: Any


def _build_models(table: str, aws_region: str | None) -> _Models:
    from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute

    Item: Any = table_for(table, aws_region).base

    class PageItem(Item):  # the head and the chunks
        gen = UnicodeAttribute(null=True)
        chunks = NumberAttribute(null=True)
        checked_at = NumberAttribute(null=True)
        data = BinaryAttribute(null=True, legacy_encoding=False)

    class LockItem(Item):
        expires = NumberAttribute(attr_name=table_schema.TTL_ATTRIBUTE)

    return _Models(PageItem, LockItem)


models_for = cached_per_table(_build_models)


class DynamoPageCache(TableAdapter):
    """The PageCache port for one mirror on one table."""

    models_factory = staticmethod(models_for)

    def __init__(self, table_name: str, *, mirror: str, region: str | None = None) -> None:
        super().__init__(table_name, region=region, consistent_read=False)
        self.mirror = mirror

    def _read(self, project: str) -> tuple[Any, list[Any]] | None:
        model = self.models.page
        items = list(model.query(page_pk(self.mirror, project), consistent_read=False))
        head = next((i for i in items if i.sk == HEAD_SK), None)
        if head is None:
            return None
        prefix = f"{CHUNK_PREFIX}{head.gen}#"
        chunks = [i for i in items if i.sk.startswith(prefix)]
        return head, chunks

    def get(self, project: str) -> UpstreamPage | None:
        for _ in range(2):  # once more if a concurrent replace got in the way
            found = self._read(project)
            if found is None:
                return None
            head, chunks = found
            if len(chunks) == int(head.chunks):
                blob = b"".join(bytes(c.data) for c in chunks)  # sort-key order
                return decode_page(blob).checked(float(head.checked_at))
        return None

    def put(self, page: UpstreamPage) -> None:
        from pynamodb.exceptions import PutError

        model = self.models.page
        pk = page_pk(self.mirror, page.project)
        blob = encode_page(page)
        gen = new_generation()
        parts = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        for number, part in enumerate(parts):
            model(pk, chunk_sk(gen, number), data=part).save()
        try:  # only over an older generation: of racing writers the newest page stays
            model(pk, HEAD_SK, gen=gen, chunks=len(parts), checked_at=page.checked_at).save(
                condition=model.pk.does_not_exist() | (model.gen < gen)
            )
            won = True
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            won = False
        # Remove what no head will name again: older generations (if this one is the head
        # now), or this generation's own chunks (if a newer one is).
        keys = model.query(pk, model.sk.startswith(CHUNK_PREFIX), attributes_to_get=["pk", "sk"])
        for item in keys:
            item_gen = item.sk[len(CHUNK_PREFIX) :].split("#", 1)[0]
            if (won and item_gen < gen) or (not won and item_gen == gen):
                item.delete()

    def mark_checked(self, project: str, checked_at: float) -> None:
        from pynamodb.exceptions import UpdateError

        model = self.models.page
        item = model(page_pk(self.mirror, project), HEAD_SK)
        try:
            item.update(actions=[model.checked_at.set(checked_at)], condition=model.pk.exists())
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise


class DynamoFillLocks(TableAdapter):
    """The FillLocks port on one table (items expire through the table's TTL)."""

    models_factory = staticmethod(models_for)

    def acquire(self, key: str, ttl_seconds: float) -> bool:
        from pynamodb.exceptions import PutError

        model = self.models.lock
        now = time.time()
        try:
            model(LOCK_PREFIX + key, LOCK_SK, expires=int(now + ttl_seconds) + 1).save(
                condition=model.pk.does_not_exist() | (model.expires <= int(now))
            )
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, key: str) -> None:
        self.models.lock(LOCK_PREFIX + key, LOCK_SK).delete()
