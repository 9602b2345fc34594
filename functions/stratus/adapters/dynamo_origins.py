"""OriginStore on the Stratus DynamoDB table: ``pk=ORIGIN#<index>#<project>, sk=ORIGIN``
with ``upstream``, ``publish`` and ``set_by``. ``claim`` is a conditional put
(``attribute_not_exists``), so of concurrent first origins exactly one is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain.indexes import DEFAULT_INDEX, check_index_name
from ..domain.origins import OriginControls
from .dynamo_table import TableAdapter, cached_per_table, table_for

ORIGIN_PREFIX = "ORIGIN#"
ORIGIN_SK = "ORIGIN"


def origin_pk(index: str, project: str) -> str:
    return f"{ORIGIN_PREFIX}{index}#{project}"


@dataclass(frozen=True, slots=True)
class _Models:
    origin: Any


def _build_models(table: str, aws_region: str | None) -> _Models:
    from pynamodb.attributes import UnicodeAttribute

    class OriginItem(table_for(table, aws_region).base):  # type: ignore[misc]
        upstream = UnicodeAttribute()
        publish = UnicodeAttribute()
        set_by = UnicodeAttribute()

    return _Models(OriginItem)


models_for = cached_per_table(_build_models)


class DynamoOrigins(TableAdapter):
    """The OriginStore port for one index on one table."""

    models_factory = staticmethod(models_for)

    def __init__(
        self, table_name: str, *, index: str = DEFAULT_INDEX, region: str | None = None
    ) -> None:
        super().__init__(table_name, region=region)
        self.index = check_index_name(index)

    def get(self, project: str) -> OriginControls | None:
        model = self.models.origin
        try:
            item = model.get(origin_pk(self.index, project), ORIGIN_SK, consistent_read=True)
        except model.DoesNotExist:
            return None
        return OriginControls(item.upstream, item.publish, item.set_by)

    def _item(self, project: str, c: OriginControls) -> Any:
        return self.models.origin(
            origin_pk(self.index, project),
            ORIGIN_SK,
            upstream=c.upstream,
            publish=c.publish,
            set_by=c.set_by,
        )

    def put(self, project: str, controls: OriginControls) -> None:
        self._item(project, controls).save()

    def claim(self, project: str, controls: OriginControls) -> OriginControls:
        from pynamodb.exceptions import PutError

        try:
            self._item(project, controls).save(condition=self.models.origin.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            stored = self.get(project)
            assert stored is not None  # items are never deleted
            return stored
        return controls
