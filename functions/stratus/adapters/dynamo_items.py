"""A base pynamodb Model for further item kinds on the Stratus table.

Its subclasses get the table's key attributes (``table_schema``) and share the catalog's
TableConnection, i.e. one botocore client per table and process.
"""

from __future__ import annotations

from typing import Any

from . import table_schema
from .dynamo_catalog import models_for as catalog_models_for


def keyed_base(table: str, aws_region: str | None) -> Any:
    """A Model class on ``table`` with ``pk``/``sk``; subclass it for an item kind."""
    from pynamodb.attributes import UnicodeAttribute
    from pynamodb.models import Model

    class Item(Model):
        class Meta:
            table_name = table
            region = aws_region

        pk = UnicodeAttribute(hash_key=True, attr_name=table_schema.PARTITION_KEY.name)
        sk = UnicodeAttribute(range_key=True, attr_name=table_schema.SORT_KEY.name)

    Item._connection = catalog_models_for(table, aws_region).file._get_connection()
    return Item
