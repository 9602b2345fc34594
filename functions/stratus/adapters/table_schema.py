"""The DynamoDB single-table schema, as plain data.

One source for the pynamodb models (``dynamo_catalog``), ``stratus create-dev-resources``
and the CDK stack. No boto3, pynamodb or CDK imports here: the CDK app and the Lambda
code both read these constants and build their own objects from them.

Item layout (catalog items owned by ``stratus.adapters.dynamo_catalog``, access items by
``stratus.adapters.dynamo_access``; listed here for reference). ``<index>`` names the index
a project is stored in (``default`` today; ``stratus.domain.indexes``):

========================  ====================  ===================  =======================
item                      pk                    sk                   attributes
========================  ====================  ===================  =======================
file                      ``P#<index>#<proj>``  ``F#<filename>``     the FileRecord fields
tombstone                 ``P#<index>#<proj>``  ``T#<filename>``     seq, seq_key, deleted_at,
                                                                     sha256
project entry             ``PROJECTS#<index>``  ``P#<project>``      display_name, file_count,
                                                                     last_modified, summary,
                                                                     rev
user (or pending user)    ``USERS``             ``U#<user>``         password_hash, admin,
                                                                     pending, rev
group                     ``GROUPS``            ``G#<group>``        rev
membership (user side)    ``U#<user>``          ``G#<group>``
membership (group side)   ``G#<group>``         ``M#<user>``
package permission        ``PKGACL#<project>``  ``U#<user>`` /       perms ("r", "w", "rw")
                                                ``G#<group>``
permission mirror         ``U#<user>`` /        ``P#<project>``      perms
                          ``G#<group>``
API token                 ``TOKEN#<token_id>``  ``TOKEN``            the TokenRecord fields
API token (user's list)   ``U#<user>``          ``T#<token_id>``     the TokenRecord fields
registration switch       ``ACCESS``            ``ALLOW_REGISTER``   value
reconcile run status      ``RUN#<run_id>``      ``RUN``              doc (JSON), expires_at
trusted publisher         ``PUB#<project>``     ``PUB#<id>``         project, publisher_id,
                                                                     issuer, claims (JSON),
                                                                     lookup, pending, created,
                                                                     created_by
publisher (lookup copy)   ``PUBLOOKUP#<issuer>  ``PUB#<project>#     the same attributes
                          #<lookup>``           <id>``
OIDC jti (replay guard)   ``JTI#<sha256(iss,    ``JTI``              expires_at (TTL)
                          jti)>``
minted upload token       ``MINTED#<token_id>`` ``TOKEN``            the TokenRecord fields,
                                                                     claims (JSON),
                                                                     expires_at (TTL)
storage key lease         ``LEASE#<name>``      ``LEASE``            owner, expires_at (TTL)
upload session            ``UPLOAD#<id>``       ``SESSION``          the UploadSession fields,
                                                                     expires_at (TTL)
upstream page head        ``UPSTREAM#<mirror>#  ``PAGE``             gen, chunks, checked_at
                          <project>``
upstream page chunk       (the same)            ``C#<gen>#<nnnn>``   data (compressed page)
origin controls           ``ORIGIN#<index>#     ``ORIGIN``           upstream, publish, set_by
                          <project>``
cache fill lock           ``FILLLOCK#<key>``    ``LOCK``             expires_at (TTL)
========================  ====================  ===================  =======================

Access patterns: project page = Query ``pk = P#<index>#<project> AND begins_with(sk,
"F#")``; root page = Query ``pk = PROJECTS#<index>``; file lookup = GetItem. Access
control: user lookup (login, admin flag) = GetItem; a user's groups = Query ``U#<user>`` (``G#``); a
package's permissions = Query ``PKGACL#<project>``; users, pending users = Query
``USERS``; groups = Query ``GROUPS``; members = Query ``G#<group>`` (``M#``); token =
GetItem ``TOKEN#<id>``; a user's tokens = Query ``U#<user>`` (``T#``). Trusted publishing
(items owned by ``stratus.adapters.dynamo_publishers``): a project's publishers = Query
``PUB#<project>``; publishers a token may match = Query ``PUBLOOKUP#<issuer>#<lookup>``
(both copies written and deleted in one transaction); a jti's first use = conditional
PutItem; a minted token = GetItem; an upload session = GetItem ``UPLOAD#<id>``. No Scan, no GSI.

Short-lived items carry ``TTL_ATTRIBUTE`` (epoch seconds), the table's TimeToLive
attribute: DynamoDB deletes them some time after expiry, so readers still check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

AttributeType = Literal["S", "N", "B"]


@dataclass(frozen=True, slots=True)
class KeyAttribute:
    name: str
    type: AttributeType = "S"


@dataclass(frozen=True, slots=True)
class GlobalSecondaryIndex:
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


PARTITION_KEY = KeyAttribute("pk", "S")
SORT_KEY = KeyAttribute("sk", "S")
GLOBAL_SECONDARY_INDEXES: tuple[GlobalSecondaryIndex, ...] = ()

# The table's TimeToLive attribute (Number, epoch seconds): DynamoDB deletes short-lived
# state (run statuses, upload sessions, OIDC jtis, locks) after it, so nothing is swept.
TTL_ATTRIBUTE = "expires_at"

BILLING_MODE = "PAY_PER_REQUEST"  # on-demand
POINT_IN_TIME_RECOVERY = True  # DESIGN.md; encryption and retention are the stack's


def _key_schema(partition: KeyAttribute, sort: KeyAttribute | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort is not None:
        schema.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return schema


def key_attributes() -> list[KeyAttribute]:
    """Every attribute that is a key of the table or of an index, each once."""
    seen: dict[str, KeyAttribute] = {}
    candidates = [PARTITION_KEY, SORT_KEY]
    for index in GLOBAL_SECONDARY_INDEXES:
        candidates.append(index.partition_key)
        if index.sort_key is not None:
            candidates.append(index.sort_key)
    for attribute in candidates:
        previous = seen.setdefault(attribute.name, attribute)
        if previous.type != attribute.type:
            raise ValueError(f"key attribute {attribute.name!r} declared with two types")
    return list(seen.values())


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """Arguments for boto3 ``client("dynamodb").create_table(**kwargs)``."""
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": [
            {"AttributeName": a.name, "AttributeType": a.type} for a in key_attributes()
        ],
        "KeySchema": _key_schema(PARTITION_KEY, SORT_KEY),
        "BillingMode": BILLING_MODE,
    }
    if GLOBAL_SECONDARY_INDEXES:
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in GLOBAL_SECONDARY_INDEXES
        ]
    return kwargs
