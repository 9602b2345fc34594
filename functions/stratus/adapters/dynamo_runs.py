"""Reconcile run statuses in the Stratus table: ``pk=RUN#<run_id>, sk=RUN``, a JSON ``doc``
and the table's TTL attribute, so DynamoDB drops old statuses by itself."""

from __future__ import annotations

import time
from typing import Any

from ..domain.runs import KEEP_SECONDS, RunStatus
from . import table_schema
from .dynamo_table import TableAdapter, cached_per_table, table_for

RUN_PREFIX = "RUN#"
RUN_SK = "RUN"


def _build_models(table: str, aws_region: str | None) -> Any:
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute

    class RunItem(table_for(table, aws_region).base):  # type: ignore[misc]
        doc = UnicodeAttribute()
        expires_at = NumberAttribute(attr_name=table_schema.TTL_ATTRIBUTE)

    return RunItem


class DynamoReconcileRuns(TableAdapter):
    models_factory = staticmethod(cached_per_table(_build_models))

    def save(self, run: RunStatus) -> None:
        self.models(
            RUN_PREFIX + run.run_id,
            RUN_SK,
            doc=run.to_json(),
            expires_at=int(run.updated + KEEP_SECONDS),
        ).save()

    def get(self, run_id: str) -> RunStatus | None:
        from pynamodb.exceptions import DoesNotExist

        try:
            item = self.models.get(
                RUN_PREFIX + run_id, RUN_SK, consistent_read=self.consistent_read
            )
        except DoesNotExist:
            return None
        if item.expires_at < time.time():  # TTL deletion lags; expired is gone
            return None
        return RunStatus.from_json(item.doc)
