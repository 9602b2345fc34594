"""DynamoAccess beyond the contract: its items, multi-transaction deletions, the ``rev`` guard."""

from __future__ import annotations

import boto3
import pytest

from stratus.adapters import dynamo_access
from stratus.ports import TokenRecord

from .access_backends import dynamo


@pytest.fixture
def access(request, tmp_path) -> dynamo_access.DynamoAccess:
    return dynamo.build(request, tmp_path)


def raw_items(access: dynamo_access.DynamoAccess) -> set[tuple[str, str]]:
    """Every (pk, sk) of the table: a test may Scan, the backend never does."""
    client = boto3.client("dynamodb")
    pages = client.get_paginator("scan").paginate(TableName=access.table_name)
    return {(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]}


def token(token_id: str, username: str) -> TokenRecord:
    return TokenRecord(token_id, username, "ci", "00" * 32, 1.0)


def test_sample_layout(access):
    items = raw_items(access)
    assert ("USERS", "U#dsa") in items
    assert ("GROUPS", "G#sharkfest") in items
    assert ("U#dsa", "G#sharkfest") in items
    assert ("G#sharkfest", "M#dsa") in items
    assert ("PKGACL#polite-requests", "U#dsa") in items
    assert ("U#dsa", "P#polite-requests") in items
    assert ("PKGACL#pyramid-head", "G#everyone") in items
    assert ("G#everyone", "P#pyramid-head") in items
    assert ("PKGACLS", "polite-requests#U#dsa") in items  # all ACLs in one partition
    assert ("PKGACLS", "pyramid-head#G#everyone") in items
    assert ("GROUPS", "G#everyone") not in items


def test_deleting_everything_leaves_an_empty_table(access):
    access.add_token(token("t1", "dsa"))
    access.set_allow_register(True)
    for user in [u.username for u in access.list_users()]:
        access.delete_user(user)
    for group in [*access.list_groups(), "everyone", "authenticated"]:
        access.delete_group(group)
    assert raw_items(access) == {("ACCESS", "ALLOW_REGISTER")}


def test_large_deletion_runs_in_several_transactions(access, monkeypatch):
    monkeypatch.setattr(dynamo_access, "MAX_TRANSACTION_ITEMS", 7)  # two items + copies, owner
    for i in range(7):
        access.set_permission(f"lib-{i}", "user", "dsa", "r", True)
    access.add_token(token("t1", "dsa"))
    access.delete_user("dsa")
    assert not {item for item in raw_items(access) if "dsa" in item[0] + item[1]}
    assert access.get_token("t1") is None
    assert access.package_acl("lib-3").users == {}


def test_a_token_added_during_a_deletion_is_deleted_too(access, monkeypatch):
    """delete_user read the user's partition, then a token lands: the rev guard retries."""
    models = access.models
    real_query = models.item.query
    injected = []

    def query(*args, **kwargs):
        result = list(real_query(*args, **kwargs))
        if not injected:
            injected.append(True)
            access.add_token(token("late", "dsa"))
        return result

    monkeypatch.setattr(models.item, "query", query)
    access.delete_user("dsa")
    assert injected
    assert access.get_token("late") is None
    assert not {item for item in raw_items(access) if "dsa" in item[0] + item[1]}


def test_a_member_added_during_a_group_deletion_is_removed_too(access, monkeypatch):
    models = access.models
    real_query = models.item.query
    injected = []

    def query(*args, **kwargs):
        result = list(real_query(*args, **kwargs))
        if not injected:
            injected.append(True)
            access.add_member("donlan", "sharkfest")
        return result

    monkeypatch.setattr(models.item, "query", query)
    access.delete_group("sharkfest")
    assert injected
    assert access.groups("donlan") == {"brotatos"}
    assert not {item for item in raw_items(access) if "sharkfest" in item[0] + item[1]}


def test_backfill_writes_the_missing_acl_index_copies(access):
    """A table from before the PKGACLS index: every grant comes back, without a Scan."""
    from tests.contract.test_access import SAMPLE_PROJECTS

    expected = access.package_acls(SAMPLE_PROJECTS)
    index = {item for item in raw_items(access) if item[0] == dynamo_access.ACL_INDEX_PK}
    assert len(index) >= 3  # users' and groups' (everyone's too) grants
    client = boto3.client("dynamodb")
    for pk, sk in index:  # as an older Stratus left the table
        client.delete_item(TableName=access.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    assert access.package_acls(SAMPLE_PROJECTS) != expected  # grants hidden from listings

    assert access.backfill_acl_index() == len(index)
    assert access.package_acls(SAMPLE_PROJECTS) == expected
    assert {i for i in raw_items(access) if i[0] == dynamo_access.ACL_INDEX_PK} == index
    assert access.backfill_acl_index() == 0  # idempotent


def test_a_permission_revoked_during_the_backfill_leaves_no_index_copy(access, monkeypatch):
    """The backfill read a grant, then an admin revokes it before the copy is written: the
    copy's condition (the grant unchanged) fails, the plan runs again and writes nothing,
    so listings do not go on showing the project to the principal that lost it."""
    index = {item for item in raw_items(access) if item[0] == dynamo_access.ACL_INDEX_PK}
    client = boto3.client("dynamodb")
    for pk, sk in index:  # as an older Stratus left the table
        client.delete_item(TableName=access.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    user_grants = sorted(sk for pk, sk in index if "#" + dynamo_access.USER_PREFIX in sk)
    project, _, principal = user_grants[0].partition("#")
    username = principal[len(dynamo_access.USER_PREFIX) :]
    revoked = access.user_package_permissions(username)[project]
    real_get = access._get
    injected = []

    def get(model, key, **kwargs):
        if key == dynamo_access.acl_index_key(project, principal) and not injected:
            injected.append(True)  # between the backfill's read of the grant and its write
            for letter in revoked:
                access.set_permission(project, "user", username, letter, False)
        return real_get(model, key, **kwargs)

    monkeypatch.setattr(access, "_get", get)
    assert access.backfill_acl_index() == len(index) - 1
    assert injected
    assert project not in access.user_package_permissions(username)
    copies = {sk for pk, sk in raw_items(access) if pk == dynamo_access.ACL_INDEX_PK}
    assert dynamo_access.acl_index_key(project, principal)[1] not in copies
