"""Upload sessions in the index table (pynamodb): one item per session, expired by TTL.

Item: ``pk=UPLOAD#<session id>, sk=SESSION`` with the UploadSession fields and the
table's TTL attribute (``table_schema.TTL_ATTRIBUTE``) set to the session's expiry, so
DynamoDB deletes abandoned sessions itself (within a day or two; ``get`` hides expired
ones at once). Access patterns: GetItem, conditional PutItem (``attribute_not_exists``
to create, ``revision = <read revision>`` to update), DeleteItem. No Query, no Scan.
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from typing import Any

from ..domain.errors import Conflict
from ..ports import UploadSession
from . import table_schema
from .dynamo_table import TableAdapter, cached_per_table, table_for

SESSION_PK_PREFIX = "UPLOAD#"
SESSION_SK = "SESSION"
_FIELDS = [f.name for f in fields(UploadSession) if f.name != "session_id"]


def session_pk(session_id: str) -> str:
    return SESSION_PK_PREFIX + session_id


def _build_models(table: str, aws_region: str | None) -> Any:
    from pynamodb.attributes import NumberAttribute, UnicodeAttribute

    class SessionItem(table_for(table, aws_region).base):  # type: ignore[misc]
        owner = UnicodeAttribute(null=True)
        project = UnicodeAttribute()
        display_name = UnicodeAttribute()
        version = UnicodeAttribute()
        filename = UnicodeAttribute()
        size = NumberAttribute()
        sha256 = UnicodeAttribute()
        staging_key = UnicodeAttribute()
        created = NumberAttribute()
        expires = NumberAttribute()
        part_size = NumberAttribute()
        multipart_id = UnicodeAttribute(null=True)
        status = UnicodeAttribute()
        message = UnicodeAttribute(null=True)
        error_status = NumberAttribute(null=True)
        lease_until = NumberAttribute()
        revision = NumberAttribute()
        ttl = NumberAttribute(attr_name=table_schema.TTL_ATTRIBUTE)

    return SessionItem


models_for = cached_per_table(_build_models)

_INTEGERS = frozenset({"size", "part_size", "revision", "error_status"})


def _to_item(model: Any, session: UploadSession) -> Any:
    values = {name: getattr(session, name) for name in _FIELDS}
    return model(session_pk(session.session_id), SESSION_SK, ttl=int(session.expires) + 1, **values)


def _to_session(item: Any) -> UploadSession:
    values: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(item, name)
        if value is not None and name in _INTEGERS:
            value = int(value)
        elif value is not None and isinstance(value, float | int) and name not in _INTEGERS:
            value = float(value)
        values[name] = value
    return UploadSession(session_id=item.pk[len(SESSION_PK_PREFIX) :], **values)


class DynamoUploadSessions(TableAdapter):
    """The UploadSessions port on the Stratus table (schema in ``table_schema``)."""

    models_factory = staticmethod(models_for)

    def _save(self, session: UploadSession, condition: Any) -> None:
        from pynamodb.exceptions import PutError

        try:
            _to_item(self.models, session).save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                message = f"Upload session {session.session_id!r} changed meanwhile."
                raise Conflict(message) from None
            raise

    def create(self, session: UploadSession) -> None:
        self._save(session, self.models.pk.does_not_exist())

    def get(self, session_id: str, *, now: float | None = None) -> UploadSession | None:
        model = self.models
        try:
            item = model.get(session_pk(session_id), SESSION_SK, consistent_read=True)
        except model.DoesNotExist:
            return None
        session = _to_session(item)
        return None if session.expires < (time.time() if now is None else now) else session

    def update(self, session: UploadSession) -> UploadSession:
        stored = replace(session, revision=session.revision + 1)
        self._save(stored, self.models.revision == session.revision)
        return stored

    def delete(self, session_id: str) -> None:
        model = self.models
        model(session_pk(session_id), SESSION_SK).delete()
