"""What every adapter on the Stratus DynamoDB table shares (catalog, access, tokens).

* ``table_for(table, region)``: the table's base pynamodb ``Model`` (the key attributes
  of ``table_schema``), from which every item class of every adapter derives, and the
  pynamodb ``Connection`` that runs transactions. The base makes its ``TableConnection``
  first, so every subclass finds it through the class hierarchy as pynamodb intends for
  model inheritance: one botocore client for all reads and single-item writes, plus one
  for transactions (made on the first write). Public pynamodb API only.
* ``Transaction``: a TransactWrite whose items have names, to read cancellation reasons.
* ``TableAdapter.transact``: plan, commit, re-plan on a failed condition, back off on
  conflicts and throttling.

The endpoint is never passed: botocore reads ``AWS_ENDPOINT_URL_DYNAMODB`` /
``AWS_ENDPOINT_URL`` itself. pynamodb is imported on first use, not at import.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.errors import BackendUnavailable
from . import table_schema

if TYPE_CHECKING:
    from pynamodb.connection import Connection
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.expressions.condition import Condition
    from pynamodb.models import Model

MAX_ATTEMPTS = 20
BACKOFF_BASE = 0.02  # seconds; doubled per attempt, capped, full jitter
BACKOFF_CAP = 0.5
RETRY_AFTER_BACKOFF = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)
CONDITION_FAILED = "ConditionalCheckFailed"
AGAIN = object()  # a plan's result: part of the work committed, plan the rest


def cached_per_table[T](build: Callable[[str, str | None], T]) -> Callable[..., T]:
    """Build a table's Model classes once per (table, region); pynamodb configures tables
    per class, so every adapter on the table needs its own classes, built once."""
    lock = threading.Lock()
    cache: dict[tuple[str, str | None], T] = {}

    def models_for(table_name: str, region: str | None = None) -> T:
        key = (table_name, region)
        with lock:
            if key not in cache:
                cache[key] = build(table_name, region)
            return cache[key]

    return models_for


@dataclass(frozen=True, slots=True)
class Table:
    base: Any  # the pynamodb Model class every item class of the table derives from
    transactions: Connection  # runs TransactWriteItems


def _build_table(table: str, aws_region: str | None) -> Table:
    from pynamodb.attributes import UnicodeAttribute
    from pynamodb.connection import Connection
    from pynamodb.models import Model

    class Item(Model):
        class Meta:
            table_name = table
            region = aws_region
            # no ``host``: botocore resolves AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL

        pk = UnicodeAttribute(hash_key=True, attr_name=table_schema.PARTITION_KEY.name)
        sk = UnicodeAttribute(range_key=True, attr_name=table_schema.SORT_KEY.name)

    # No I/O: makes the base's TableConnection now, before any subclass makes its own.
    Item.get_operation_kwargs_from_class("#", "#")
    return Table(Item, Connection(region=aws_region))


table_for = cached_per_table(_build_table)


class Transaction:
    """A TransactWrite whose items have names, to read cancellation reasons by name."""

    def __init__(self) -> None:
        self._checks: list[tuple[str, Any, str, str, Condition]] = []
        self._deletes: list[tuple[str, Model, Condition | None]] = []
        self._puts: list[tuple[str, Model, Condition | None]] = []

    def check(self, name: str, model: Any, pk: str, sk: str, condition: Condition) -> None:
        self._checks.append((name, model, pk, sk, condition))

    def delete(self, name: str, item: Model, condition: Condition | None = None) -> None:
        self._deletes.append((name, item, condition))

    def put(self, name: str, item: Model, condition: Condition | None = None) -> None:
        self._puts.append((name, item, condition))

    def names(self) -> list[str]:
        # The order pynamodb sends them in: checks, deletes, puts.
        return [e[0] for e in self._checks] + [e[0] for e in self._deletes + self._puts]

    def commit(self, connection: Connection) -> None:
        from pynamodb.transactions import TransactWrite

        with TransactWrite(connection=connection) as tx:
            for _, model, pk, sk, condition in self._checks:
                tx.condition_check(model, pk, sk, condition=condition)
            for _, item, if_deleted in self._deletes:
                tx.delete(item, condition=if_deleted)
            for _, item, if_saved in self._puts:
                tx.save(item, condition=if_saved)

    def reasons(self, error: TransactWriteError) -> dict[str, str] | None:
        """``{item name: reason code}`` of a cancelled transaction; None if not a cancellation."""
        if error.cause_response_code != "TransactionCanceledException":
            return None
        reasons = error.cancellation_reasons
        names = self.names()
        if len(reasons) != len(names):
            return None
        return {
            name: reason.code
            for name, reason in zip(names, reasons, strict=True)
            if reason is not None and reason.code not in ("None", "", None)
        }


@dataclass(slots=True)
class Plan:
    """What one attempt decided: the transaction to run (None: nothing to write), the result.

    A result of ``AGAIN`` means the transaction does part of the work: plan again after it.
    """

    transaction: Transaction | None
    result: Any = None


class TableAdapter:
    """What every adapter on the Stratus table shares: its name and lazily built models.

    Subclasses set ``models_factory`` (table name, region → their pynamodb models).
    """

    models_factory: Callable[[str, str | None], Any]

    def __init__(
        self, table_name: str, *, region: str | None = None, consistent_read: bool = True
    ) -> None:
        self.table_name = table_name
        self.region = region
        self.consistent_read = consistent_read
        self._models: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.table_name!r})"

    @property
    def models(self) -> Any:
        if self._models is None:
            self._models = type(self).models_factory(self.table_name, self.region)
        return self._models

    def connect(self) -> None:
        """Build the table's models and the transactions client now, sending nothing (a
        Lambda init). pynamodb makes the client for reads itself on the first read: its
        public API has no way to make it sooner."""
        _ = self.models
        _ = table_for(self.table_name, self.region).transactions.client

    def close_connections(self) -> None:
        """Close the transactions client's pooled connections; the next write opens new
        ones. (The reads' client is pynamodb's own; botocore reconnects it on a dead
        connection.)"""
        table_for(self.table_name, self.region).transactions.client.close()

    def transact(
        self,
        plan: Callable[[], Plan],
        on_condition: tuple[str, Callable[[], Exception]] | None = None,
    ) -> Any:
        """Run ``plan`` and its transaction until it commits or there is nothing to write.

        ``on_condition``: (item name, error factory) to raise instead of retrying when that
        item's condition failed.
        """
        from pynamodb.exceptions import TransactWriteError

        connection = table_for(self.table_name, self.region).transactions
        attempt = 0
        while attempt < MAX_ATTEMPTS:
            decided = plan()
            if decided.transaction is None:
                return decided.result
            try:
                decided.transaction.commit(connection)
            except TransactWriteError as exc:
                reasons = decided.transaction.reasons(exc)
                if reasons is None:
                    raise
                if on_condition is not None and reasons.get(on_condition[0]) == CONDITION_FAILED:
                    raise on_condition[1]() from None
                codes = set(reasons.values())
                if not codes <= RETRY_AFTER_BACKOFF | {CONDITION_FAILED}:
                    raise
                if codes & RETRY_AFTER_BACKOFF or attempt > 2:
                    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
                    time.sleep(random.uniform(0, delay))  # full jitter
                attempt += 1
                continue
            if decided.result is not AGAIN:
                return decided.result
            attempt = 0  # progress: the remaining work is a fresh plan
        raise BackendUnavailable(
            f"DynamoDB table {self.table_name!r}: too much contention, gave up after "
            f"{MAX_ATTEMPTS} attempts"
        )
