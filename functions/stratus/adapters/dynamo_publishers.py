"""Trusted publishing state on DynamoDB (pynamodb), in the catalog's single table.

Item layout (key attribute names from ``table_schema``, listed there too):

=======================  ===============================  ======================  ===========
item                     pk                               sk                      attributes
=======================  ===============================  ======================  ===========
publisher                ``PUB#<project>``                ``PUB#<id>``            see below
publisher, lookup copy   ``PUBLOOKUP#<issuer>#<lookup>``  ``PUB#<project>#<id>``  the same
used jti                 ``JTI#<key>``                    ``JTI``                 expires_at
minted upload token      ``MINTED#<token_id>``            ``TOKEN``               see below
=======================  ===============================  ======================  ===========

Publisher attributes: project, issuer, claims (JSON text), lookup, pending, created,
created_by. Minted token attributes: the TokenRecord fields (username is the publisher's
``oidc:...`` principal), claims (JSON text: the token claims that minted it) and
``expires_at``. ``expires_at`` is the table's TTL attribute (``table_schema.TTL_ATTRIBUTE``):
DynamoDB removes these items after they expire, and readers check it themselves since
that removal can come late.

A project's publishers = Query ``PUB#<project>``; the publishers a token may match = Query
``PUBLOOKUP#<issuer>#<lookup>``; both copies are written, changed and deleted in one
TransactWrite. A jti's first use is one PutItem conditioned on the key being absent or
expired, so of two concurrent mints with one jti exactly one succeeds. No Scan.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.errors import BackendUnavailable, Conflict, NotFound
from ..domain.oidc import TrustedPublisher
from ..ports import TokenRecord
from . import table_schema
from .dynamo_table import TableAdapter, cached_per_table, table_for

if TYPE_CHECKING:
    from pynamodb.connection import Connection

PUBLISHER_PREFIX = "PUB#"
LOOKUP_PREFIX = "PUBLOOKUP#"
JTI_PREFIX = "JTI#"
JTI_SK = "JTI"
MINTED_PREFIX = "MINTED#"
MINTED_SK = "TOKEN"
TRANSACTION_ATTEMPTS = 5


def publisher_key(project: str, publisher_id: str) -> tuple[str, str]:
    return PUBLISHER_PREFIX + project, PUBLISHER_PREFIX + publisher_id


def lookup_key(issuer: str, lookup: str, project: str, publisher_id: str) -> tuple[str, str]:
    return f"{LOOKUP_PREFIX}{issuer}#{lookup}", f"{PUBLISHER_PREFIX}{project}#{publisher_id}"


@dataclass(frozen=True, slots=True)
class _Models:
    publisher: Any
    jti: Any
    minted: Any
    connection: Connection


def _build_models(table: str, aws_region: str | None) -> _Models:
    from pynamodb.attributes import (
        BooleanAttribute,
        ListAttribute,
        NumberAttribute,
        UnicodeAttribute,
    )

    shared = table_for(table, aws_region)
    Item: Any = shared.base

    class PublisherItem(Item):
        project = UnicodeAttribute()
        publisher_id = UnicodeAttribute()
        issuer = UnicodeAttribute()
        claims = UnicodeAttribute()  # JSON object
        lookup = UnicodeAttribute()
        pending = BooleanAttribute()
        created = NumberAttribute()
        created_by = UnicodeAttribute()

    class JtiItem(Item):
        expires_at = NumberAttribute(attr_name=table_schema.TTL_ATTRIBUTE)

    class MintedItem(Item):
        username = UnicodeAttribute()
        name = UnicodeAttribute()
        secret_sha256 = UnicodeAttribute()
        created = NumberAttribute()
        expires = NumberAttribute()
        projects = ListAttribute(of=UnicodeAttribute)
        claims = UnicodeAttribute()  # JSON object
        expires_at = NumberAttribute(attr_name=table_schema.TTL_ATTRIBUTE)

    # The table's shared connection for transactions (one botocore client per process).
    return _Models(PublisherItem, JtiItem, MintedItem, shared.transactions)


models_for = cached_per_table(_build_models)


def _to_publisher(item: Any) -> TrustedPublisher:
    return TrustedPublisher(
        publisher_id=item.publisher_id,
        project=item.project,
        issuer=item.issuer,
        claims=json.loads(item.claims),
        lookup=item.lookup,
        pending=bool(item.pending),
        created=float(item.created),
        created_by=item.created_by,
    )


def _reasons(exc: Exception) -> list[str]:
    return [
        (reason.code if reason is not None else "") or ""
        for reason in getattr(exc, "cancellation_reasons", None) or []
    ]


class DynamoPublishers(TableAdapter):
    """The TrustedPublishers, ReplayGuard and MintedTokens ports on the Stratus table."""

    models_factory = staticmethod(models_for)

    def __init__(self, table_name: str, *, clock=time.time, **kwargs: Any) -> None:
        super().__init__(table_name, **kwargs)
        self.clock = clock

    def _get(self, model: Any, pk: str, sk: str) -> Any | None:
        try:
            return model.get(pk, sk, consistent_read=True)
        except model.DoesNotExist:
            return None

    def _transact(self, build, on_condition_failed) -> None:
        """Commit the TransactWrite that ``build(tx)`` fills; retry on contention."""
        from pynamodb.exceptions import TransactWriteError
        from pynamodb.transactions import TransactWrite

        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with TransactWrite(connection=self.models.connection) as tx:
                    build(tx)
                return
            except TransactWriteError as exc:
                codes = _reasons(exc)
                if "ConditionalCheckFailed" in codes:
                    raise on_condition_failed() from None
                if not {"TransactionConflict", "ThrottlingError"} & set(codes):
                    raise
                time.sleep(0.02 * 2**attempt)
        raise BackendUnavailable(f"DynamoDB table {self.table_name!r}: too much contention")

    # --- TrustedPublishers ---

    def add_publisher(self, publisher: TrustedPublisher) -> None:
        model = self.models.publisher
        values = {
            "project": publisher.project,
            "publisher_id": publisher.publisher_id,
            "issuer": publisher.issuer,
            "claims": json.dumps(dict(publisher.claims), sort_keys=True),
            "lookup": publisher.lookup,
            "pending": publisher.pending,
            "created": publisher.created,
            "created_by": publisher.created_by,
        }
        main = model(*publisher_key(publisher.project, publisher.publisher_id), **values)
        copy = model(
            *lookup_key(
                publisher.issuer, publisher.lookup, publisher.project, publisher.publisher_id
            ),
            **values,
        )

        def build(tx: Any) -> None:
            tx.save(main, condition=model.pk.does_not_exist())
            tx.save(copy)

        self._transact(
            build, lambda: Conflict(f"Project {publisher.project!r} has this publisher already.")
        )

    def get_publisher(self, project: str, publisher_id: str) -> TrustedPublisher | None:
        item = self._get(self.models.publisher, *publisher_key(project, publisher_id))
        return None if item is None else _to_publisher(item)

    def list_publishers(self, project: str) -> list[TrustedPublisher]:
        model = self.models.publisher
        items = model.query(
            PUBLISHER_PREFIX + project,
            model.sk.startswith(PUBLISHER_PREFIX),
            consistent_read=True,
        )
        return sorted((_to_publisher(i) for i in items), key=lambda p: p.publisher_id)

    def find_publishers(self, issuer: str, lookup: str) -> list[TrustedPublisher]:
        model = self.models.publisher
        items = model.query(f"{LOOKUP_PREFIX}{issuer}#{lookup}", consistent_read=True)
        return sorted((_to_publisher(i) for i in items), key=lambda p: (p.project, p.publisher_id))

    def activate_publisher(self, project: str, publisher_id: str) -> None:
        model = self.models.publisher
        current = self._get(model, *publisher_key(project, publisher_id))
        if current is None:
            raise NotFound(f"No publisher {publisher_id!r} for project {project!r}.")
        if not current.pending:
            return

        def build(tx: Any) -> None:
            tx.update(
                model(*publisher_key(project, publisher_id)),
                actions=[model.pending.set(False)],
                condition=model.pk.exists(),
            )
            tx.update(
                model(*lookup_key(current.issuer, current.lookup, project, publisher_id)),
                actions=[model.pending.set(False)],
                condition=model.pk.exists(),
            )

        self._transact(
            build, lambda: NotFound(f"No publisher {publisher_id!r} for project {project!r}.")
        )

    def delete_publisher(self, project: str, publisher_id: str) -> TrustedPublisher | None:
        model = self.models.publisher
        current = self._get(model, *publisher_key(project, publisher_id))
        if current is None:
            return None

        def build(tx: Any) -> None:
            tx.delete(model(*publisher_key(project, publisher_id)))
            tx.delete(model(*lookup_key(current.issuer, current.lookup, project, publisher_id)))

        self._transact(build, lambda: NotFound(publisher_id))  # no conditions: never raised
        return _to_publisher(current)

    # --- ReplayGuard ---

    def first_use(self, key: str, expires: float, *, now: float | None = None) -> bool:
        from pynamodb.exceptions import PutError

        now = self.clock() if now is None else now
        model = self.models.jti
        item = model(JTI_PREFIX + key, JTI_SK, expires_at=math.ceil(expires))
        try:
            item.save(condition=model.pk.does_not_exist() | (model.expires_at <= now))
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- MintedTokens ---

    def add_minted_token(self, record: TokenRecord, claims: Mapping[str, str]) -> None:
        from pynamodb.exceptions import PutError

        if record.expires is None:
            raise ValueError("a minted token must expire")
        model = self.models.minted
        item = model(
            MINTED_PREFIX + record.token_id,
            MINTED_SK,
            username=record.username,
            name=record.name,
            secret_sha256=record.secret_sha256,
            created=record.created,
            expires=record.expires,
            projects=list(record.projects or ()),
            claims=json.dumps(dict(claims), sort_keys=True),
            expires_at=math.ceil(record.expires),
        )
        try:
            item.save(condition=model.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise Conflict(f"Token {record.token_id!r} already exists.") from None
            raise

    def _minted(self, token_id: str) -> Any | None:
        return self._get(self.models.minted, MINTED_PREFIX + token_id, MINTED_SK)

    def get_minted_token(self, token_id: str) -> TokenRecord | None:
        item = self._minted(token_id)
        if item is None or not item.secret_sha256 or float(item.expires) <= self.clock():
            return None
        return TokenRecord(
            token_id=token_id,
            username=item.username,
            name=item.name,
            secret_sha256=item.secret_sha256,
            created=float(item.created),
            expires=float(item.expires),
            projects=list(item.projects),
            upload_only=True,
        )

    def minted_token_claims(self, token_id: str) -> dict[str, str] | None:
        item = self._minted(token_id)
        return None if item is None else json.loads(item.claims)

    def revoke_minted_token(self, token_id: str) -> None:
        from pynamodb.exceptions import UpdateError

        model = self.models.minted
        try:
            model(MINTED_PREFIX + token_id, MINTED_SK).update(
                actions=[model.secret_sha256.set("")], condition=model.pk.exists()
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def health(self) -> None:
        try:
            self._get(self.models.jti, JTI_PREFIX + "#health", JTI_SK)
        except Exception as exc:
            raise BackendUnavailable(
                f"DynamoDB table {self.table_name!r} cannot answer: {exc}"
            ) from exc
