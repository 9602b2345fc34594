"""IAM statements shared by the function stacks, each acknowledged where nag must know.

Actions are listed one by one (no ``s3:*``-style wildcards). The only wildcard resources
are object ARNs under the package prefix, which S3 cannot express otherwise; each is
acknowledged for cdk-nag under the exact text cdk-nag reports, computed here the way
cdk-nag flattens CloudFormation references.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from stratus.domain.keys import PACKAGE_PREFIX

from .functions import StratusFunction, ack

# The table actions DynamoCatalog and DynamoAccess use: GetItem and Query to read;
# writes are PutItem and TransactWriteItems, which IAM authorizes per part as
# Put/Delete/ConditionCheck (there is no TransactWriteItems action); UpdateItem for
# yanking (API only). Neither uses Scan or the batch calls.
TABLE_READ_ACTIONS = ["dynamodb:GetItem", "dynamodb:Query"]
TABLE_WRITE_ACTIONS = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"]
TABLE_YANK_ACTIONS = ["dynamodb:UpdateItem"]
# What SecretsManagerAccess calls on the user database (aws_secrets_manager): read it
# (also a given version, to check its labels) and write a new version. No CreateSecret:
# the storage stack creates the secret; no DescribeSecret: the adapter never calls it.
USER_DATABASE_ACTIONS = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]


def nag_resource_text(scope: IConstruct, value: Any) -> str:
    """``value`` as cdk-nag's ``flattenCfnReference`` prints it in a finding id."""

    def visit(node: Any) -> str:
        if node is None:
            return ""
        if isinstance(node, str):
            return node.replace("${", "<").replace("}", ">")
        if isinstance(node, dict):
            if "Fn::Join" in node:
                delimiter, items = node["Fn::Join"]
                return delimiter.join(visit(item) for item in items)
            if "Fn::Sub" in node:
                return visit(node["Fn::Sub"])
            if "Fn::GetAtt" in node:
                resource, attribute = node["Fn::GetAtt"]
                return f"<{visit(resource)}.{visit(attribute)}>"
            if "Fn::ImportValue" in node:
                return visit(node["Fn::ImportValue"])
            if "Ref" in node:
                return f"<{visit(node['Ref'])}>"
        return json.dumps(node, separators=(",", ":"))

    return visit(Stack.of(scope).resolve(value))


class PackageFiles:
    """The package bucket as one function stack sees it."""

    def __init__(self, bucket_arn: str, bucket_name: str) -> None:
        self.bucket_arn = bucket_arn
        self.bucket_name = bucket_name

    def objects(self, pattern: str = "*") -> str:
        return f"{self.bucket_arn}/{PACKAGE_PREFIX}{pattern}"

    def allow_objects(
        self, fn: StratusFunction, sid: str, actions: list[str], pattern: str, reason: str
    ) -> None:
        resource = self.objects(pattern)
        fn.allow(sid, actions, [resource])
        policy = fn.role.node.find_child("DefaultPolicy")
        ack(policy, f"AwsSolutions-IAM5[Resource::{nag_resource_text(fn, resource)}]", reason)

    def allow_listing(self, fn: StratusFunction) -> None:
        # ListBucket: reconcile and admin listings; also, HEAD of a missing key answers
        # 404 (not 403) only with it, which the sync relies on for deletions.
        fn.allow("ListPackageFiles", ["s3:ListBucket"], [self.bucket_arn])


def allow_index(fn: StratusFunction, table: dynamodb.ITable, *, yank: bool = False) -> None:
    actions = [*TABLE_READ_ACTIONS, *TABLE_WRITE_ACTIONS, *(TABLE_YANK_ACTIONS if yank else [])]
    fn.allow("ReadWriteIndex", actions, [table.table_arn])


def allow_indexing(fn: StratusFunction, files: PackageFiles, table: dynamodb.ITable) -> None:
    """What indexing from the bucket needs (sync and reconcile alike)."""
    files.allow_objects(
        fn,
        "ReadPackageFiles",
        # GetObjectTagging: an upload session's object still pending is not indexed.
        ["s3:GetObject", "s3:GetObjectTagging"],
        "*",
        "Reads distributions under packages/ (one object per file); the prefix is the scope",
    )
    files.allow_objects(
        fn,
        "WriteCoreMetadata",
        ["s3:PutObject"],
        "*.metadata",
        "May write only PEP 658 core metadata files (packages/**.metadata), no distribution",
    )
    files.allow_listing(fn)
    allow_index(fn, table)


def allow_access_secrets(
    fn: StratusFunction,
    *,
    signing_key_arn: str,
    user_database_arn: str | None,
    kms_key_arn: str | None,
) -> None:
    """The API function's use of the access secrets (see storage.StorageStack).

    The signing key is only read. With a customer managed key, Secrets Manager decrypts
    (GetSecretValue) and generates data keys (PutSecretValue) on the caller's behalf; it
    never calls kms:Encrypt for a secret value. The encryption context Secrets Manager
    passes names the secret (``SecretARN``), so each grant holds for these secrets only.
    """
    fn.allow("ReadSigningKey", ["secretsmanager:GetSecretValue"], [signing_key_arn])
    if user_database_arn is not None:
        fn.allow("ReadWriteUserDatabase", USER_DATABASE_ACTIONS, [user_database_arn])
    if kms_key_arn:
        readable = [signing_key_arn, *([user_database_arn] if user_database_arn else [])]
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="DecryptAccessSecrets",
                actions=["kms:Decrypt"],
                resources=[kms_key_arn],
                conditions={
                    "StringEquals": {
                        "kms:EncryptionContext:SecretARN": (
                            readable if len(readable) > 1 else readable[0]
                        )
                    }
                },
            )
        )
        if user_database_arn is not None:
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="EncryptUserDatabase",
                    actions=["kms:GenerateDataKey"],
                    resources=[kms_key_arn],
                    conditions={
                        "StringEquals": {"kms:EncryptionContext:SecretARN": user_database_arn}
                    },
                )
            )
