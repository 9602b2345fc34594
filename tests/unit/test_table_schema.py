"""The DynamoDB schema helper: plain data that boto3, pynamodb and CDK all read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stratus.adapters import table_schema
from stratus.adapters.table_schema import (
    GlobalSecondaryIndex,
    KeyAttribute,
    create_table_kwargs,
    key_attributes,
)


def test_create_table_kwargs() -> None:
    assert create_table_kwargs("stratus-index") == {
        "TableName": "stratus-index",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def test_create_table_kwargs_is_a_valid_create_table_request() -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("dynamodb")
    shape = model.operation_model("CreateTable").input_shape
    report = ParamValidator().validate(create_table_kwargs("t"), shape)
    assert not report.has_errors(), report.generate_report()


def test_each_call_returns_fresh_data() -> None:
    first = create_table_kwargs("a")
    first["KeySchema"].clear()
    assert create_table_kwargs("a")["KeySchema"]


def test_indexes_are_rendered_with_their_key_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    index = GlobalSecondaryIndex("by-kind", KeyAttribute("kind"), KeyAttribute("sk"), "KEYS_ONLY")
    monkeypatch.setattr(table_schema, "GLOBAL_SECONDARY_INDEXES", (index,))
    kwargs = create_table_kwargs("t")
    assert kwargs["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "kind", "AttributeType": "S"},
    ]
    assert kwargs["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "by-kind",
            "KeySchema": [
                {"AttributeName": "kind", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]


def test_a_key_attribute_cannot_have_two_types(monkeypatch: pytest.MonkeyPatch) -> None:
    index = GlobalSecondaryIndex("bad", KeyAttribute("sk", "N"))
    monkeypatch.setattr(table_schema, "GLOBAL_SECONDARY_INDEXES", (index,))
    with pytest.raises(ValueError, match="two types"):
        key_attributes()


def test_schema_settings_for_the_stack() -> None:
    assert table_schema.BILLING_MODE == "PAY_PER_REQUEST"
    assert table_schema.POINT_IN_TIME_RECOVERY is True
    assert table_schema.GLOBAL_SECONDARY_INDEXES == ()


def test_pynamodb_models_use_the_schema_keys() -> None:
    from stratus.adapters.dynamo_catalog import models_for

    models = models_for("schema-check-table")
    for model in (models.file, models.tombstone, models.project):
        assert model.Meta.table_name == "schema-check-table"
        assert model._hash_keyname == "pk"
        assert model.pk.attr_name == table_schema.PARTITION_KEY.name
        assert model.sk.attr_name == table_schema.SORT_KEY.name
        assert model.pk.is_hash_key and model.sk.is_range_key
    assert models_for("schema-check-table") is models  # cached per table name
    # One TableConnection (one botocore client) for every item class of the table, the
    # access backend's included: they derive from the table's base model, which made it
    # first. (Peeking at pynamodb's cache here; the adapters only use public API.)
    from stratus.adapters.dynamo_access import models_for as access_models_for

    access = access_models_for("schema-check-table")
    classes = (models.file, models.project, access.user, access.token, access.item)
    assert len({id(model._get_connection()) for model in classes}) == 1


def _imported_modules(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_schema_imports_no_aws_libraries() -> None:
    loaded = _imported_modules("stratus.adapters.table_schema")
    assert not {m for m in loaded if m.split(".")[0] in {"boto3", "botocore", "pynamodb"}}
    assert not {m for m in loaded if m.startswith(("aws_cdk", "constructs"))}


def test_dynamo_catalog_import_defers_pynamodb() -> None:
    """Cold starts: pynamodb/botocore load on first use, not when the module is imported."""
    loaded = _imported_modules("stratus.adapters.dynamo_catalog")
    assert not {m for m in loaded if m.split(".")[0] in {"boto3", "botocore", "pynamodb"}}


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"])
def test_pynamodb_client_takes_the_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """DynamoCatalog passes no host: botocore must read the standard variables itself."""
    from stratus.adapters.dynamo_catalog import models_for

    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv(variable, "http://127.0.0.1:4567")
    from stratus.adapters.dynamo_table import table_for

    models = models_for(f"endpoint-check-{variable}")
    assert models.file.Meta.host is None  # no host given: botocore resolves the endpoint
    table = table_for(f"endpoint-check-{variable}")
    assert table.transactions.client.meta.endpoint_url == "http://127.0.0.1:4567"
