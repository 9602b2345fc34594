"""What upload sessions (``stratus upload``) need from the stacks.

The API function presigns uploads into ``uploads/`` (so its role must be allowed to
write there: a presigned URL carries the signer's permissions), reads and removes what
lands there, completes multipart uploads, and copies checked files into ``packages/``
(a multipart copy: UploadPartCopy reads ``uploads/``, writes ``packages/``).

Abandoned uploads are cleaned up by the bucket: staged objects expire, incomplete
multipart uploads are aborted, and the noncurrent versions that deleting staged objects
leaves in the versioned bucket go after a day (not after the retention of package files).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3

from stratus.domain.keys import UPLOAD_PREFIX

from .functions import StratusFunction, ack
from .permissions import PackageFiles, nag_resource_text

# Sessions live a day by default (upload_session_ttl); their bytes may stay a day longer.
STAGING_EXPIRATION_DAYS = 2
STAGING_ACTIONS = [
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
]


def staging_lifecycle_rule() -> s3.LifecycleRule:
    return s3.LifecycleRule(
        id="expire-upload-sessions",
        prefix=UPLOAD_PREFIX,
        expiration=Duration.days(STAGING_EXPIRATION_DAYS),
        abort_incomplete_multipart_upload_after=Duration.days(1),
        noncurrent_version_expiration=Duration.days(1),
    )


def allow_upload_sessions(fn: StratusFunction, files: PackageFiles) -> None:
    staged = f"{files.bucket_arn}/{UPLOAD_PREFIX}*"
    fn.allow("StageUploads", STAGING_ACTIONS, [staged])
    # A failed copy into packages/ aborts its multipart upload (PutObject covers the rest).
    fn.allow("AbortPackageCopies", ["s3:AbortMultipartUpload"], [files.objects("*")])
    policy = fn.role.node.find_child("DefaultPolicy")
    ack(
        policy,
        f"AwsSolutions-IAM5[Resource::{nag_resource_text(fn, staged)}]",
        "Upload sessions stage files under uploads/<session>/; the prefix is the scope",
    )
