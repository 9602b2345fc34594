"""What upload sessions (``stratus upload``) need from the stacks.

The API function presigns uploads into ``uploads/`` (so its role must be allowed to
write there: a presigned URL carries the signer's permissions), reads and removes what
lands there, completes multipart uploads, and copies checked files into ``packages/``
(a multipart copy: UploadPartCopy reads ``uploads/``, writes ``packages/``). One-PUT
sessions go straight to ``packages/<project>/<file>`` tagged ``stratus-upload=pending``
(presigning that PUT needs ``s3:PutObjectTagging``); completion removes the tag
(``s3:DeleteObjectTagging``); sync and reconcile read it (``s3:GetObjectTagging``) and
skip pending objects, and a lifecycle rule expires the ones never completed.

Abandoned uploads are cleaned up by the bucket: staged objects expire, incomplete
multipart uploads are aborted, and the noncurrent versions that deleting staged objects
leaves in the versioned bucket go after a day (not after the retention of package files).

Sessions above ``upload_async_complete_bytes`` complete in the background: the API
function queues them (``UploadsStack.queue``) for the completion function, which reads
the staged object and publishes it (``UploadsStack``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stratus.domain.keys import PACKAGE_PREFIX, PENDING_UPLOAD_TAG, UPLOAD_PREFIX
from stratus.settings import Settings

from .functions import StratusFunction, ack, dependency_layer
from .permissions import PackageFiles, allow_index, nag_resource_text
from .queues import allow_queueing_to, job_queues, work_off
from .settings import DeploySettings

if TYPE_CHECKING:
    from .storage import StorageStack  # which imports this module (the lifecycle rule)

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


def pending_upload_days(options: Mapping[str, str]) -> int:
    """Days an in-place session's pending object may stay: its session's life
    (``upload_session_ttl``, an ``options`` value or its default), then a day more."""
    ttl = Settings.from_mapping(
        {k: v for k, v in options.items() if k == "upload_session_ttl"}
    ).upload_session_ttl
    return math.ceil(ttl / (24 * 3600)) + 1


def pending_upload_lifecycle_rule(days: int) -> s3.LifecycleRule:
    """Objects under ``packages/`` still tagged pending (an in-place session's bytes that no
    completion published) expire; so do their noncurrent versions (a pending object deleted
    or replaced), a day later."""
    tag, value = PENDING_UPLOAD_TAG
    return s3.LifecycleRule(
        id="expire-pending-uploads",
        prefix=PACKAGE_PREFIX,
        tag_filters={tag: value},
        expiration=Duration.days(days),
        noncurrent_version_expiration=Duration.days(1),
    )


def allow_staging(fn: StratusFunction, files: PackageFiles) -> None:
    staged = f"{files.bucket_arn}/{UPLOAD_PREFIX}*"
    fn.allow("StageUploads", STAGING_ACTIONS, [staged])
    policy = fn.role.node.find_child("DefaultPolicy")
    ack(
        policy,
        f"AwsSolutions-IAM5[Resource::{nag_resource_text(fn, staged)}]",
        "Upload sessions stage files under uploads/<session>/; the prefix is the scope",
    )


# In-place sessions (one PUT straight to packages/<project>/<file>): presigning a PUT
# with x-amz-tagging needs PutObjectTagging; the check of the pending tag GetObjectTagging;
# the completion removes it (DeleteObjectTagging).
IN_PLACE_ACTIONS = ["s3:DeleteObjectTagging", "s3:GetObjectTagging", "s3:PutObjectTagging"]
COMPLETION_IN_PLACE_ACTIONS = ["s3:DeleteObjectTagging", "s3:GetObjectTagging"]


def allow_upload_sessions(fn: StratusFunction, files: PackageFiles) -> None:
    allow_staging(fn, files)
    # A failed copy into packages/ aborts its multipart upload (PutObject covers the rest).
    fn.allow("AbortPackageCopies", ["s3:AbortMultipartUpload"], [files.objects("*")])
    fn.allow("TagInPlaceUploads", IN_PLACE_ACTIONS, [files.objects("*")])


# --- completing large uploads in the background ----------------------------------------------

# Checking a file of many GB (its SHA-256 streamed through ranged reads past S3's 5 GiB copy
# limit, or computed in an in-place copy below it) takes minutes: a function of its own,
# with Lambda's longest timeout, fed by a queue (not an asynchronous invoke): a worker that
# dies leaves its message to be redelivered (its lease has run out by then), the queue's
# visibility timeout and dead-letter queue bound the retries, concurrency is capped, and
# the reconcile function already works this way.
COMPLETION_TIMEOUT_SECONDS = 900
COMPLETION_MEMORY_MB = 1024  # four 16 MiB ranges hashed at once, and network throughput
# A queued completion belongs to its worker this long (the function's timeout and a margin),
# so a redelivery (after the visibility timeout, longer still) finds a dead worker's lease out.
COMPLETION_LEASE_SECONDS = COMPLETION_TIMEOUT_SECONDS + 60
COMPLETION_MAX_RECEIVES = 3
COMPLETION_CONCURRENCY = 5  # completions at once (each reads a large object)
# What the worker needs from the API's settings: none of its credentials or secrets.
NOT_FOR_THE_WORKER = ("STRATUS_AUTH", "STRATUS_OIDC_", "STRATUS_STORAGE_")


def completion_environment(app_environment: dict[str, str]) -> dict[str, str]:
    """The API's ``STRATUS_*`` settings the worker shares (the same publishing rules)."""
    env = {k: v for k, v in app_environment.items() if not k.startswith(NOT_FOR_THE_WORKER)}
    env["STRATUS_UPLOAD_ASYNC_COMPLETION_LEASE"] = str(COMPLETION_LEASE_SECONDS)
    return env


class UploadsStack(Stack):
    """The completion function of large upload sessions, its queue and dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        storage: StorageStack,
        **kwargs,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Stratus package index: background completion of large uploads",
            **kwargs,
        )
        self.queue, self.failures = job_queues(
            self,
            jobs_id="Completions",
            dead_letters_id="CompletionFailures",
            timeout_seconds=COMPLETION_TIMEOUT_SECONDS,
            max_receive_count=COMPLETION_MAX_RECEIVES,
            reason="The completion queue's dead-letter queue",
        )
        files = PackageFiles(storage.bucket_arn_for(self), storage.bucket.bucket_name)
        self.completion_function = StratusFunction(
            self,
            "Completion",
            settings=settings,
            handler="stratus.handlers.upload_completion.handler",
            service="stratus-upload-completion",  # as the handler's Logger names it
            description="Stratus upload completion: check a large staged file, publish it",
            memory_mb=COMPLETION_MEMORY_MB,
            timeout_seconds=COMPLETION_TIMEOUT_SECONDS,
            environment={
                "STRATUS_TABLE_NAME": storage.table.table_name,
                "STRATUS_BUCKET_NAME": files.bucket_name,
                **completion_environment(settings.app_environment()),
            },
            layers=[dependency_layer(self)],
        )
        fn = self.completion_function
        work_off(fn, self.queue, max_concurrency=COMPLETION_CONCURRENCY)
        # Staged bytes: read (ranges), join the parts, checksum in place, remove.
        allow_staging(fn, files)
        # Publishing: the distribution (a copy, or the in-place session's own object:
        # read in ranges to check it, then untagged), its core metadata and description
        # files; a failed publish removes them again; a failed multipart copy is aborted.
        files.allow_objects(
            fn,
            "PublishPackageFiles",
            [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetObject",
                "s3:PutObject",
                *COMPLETION_IN_PLACE_ACTIONS,
            ],
            "*",
            "Checks and publishes uploads under packages/; the prefix is the scope",
        )
        files.allow_listing(fn)  # HEAD of a missing staged object: 404, not 403
        allow_index(fn, storage.table)  # catalog entries, key leases, the session records
        CfnOutput(self, "CompletionFailuresQueueUrl", value=self.failures.queue_url)

    def allow_queueing(self, fn: StratusFunction) -> None:
        """The API function queues completions (and must agree on their lease)."""
        allow_queueing_to(
            fn, "QueueUploadCompletions", self.queue, "STRATUS_UPLOAD_COMPLETION_QUEUE_URL"
        )
        fn.function.add_environment(
            "STRATUS_UPLOAD_ASYNC_COMPLETION_LEASE", str(COMPLETION_LEASE_SECONDS)
        )
