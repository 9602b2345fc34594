"""The cache fill (``fallback = cache``): fill queue (+ dead letters) → fill function → S3.

The API function queues a job when a client asks for an upstream file that is not stored
yet (one job per file: a lock item with a TTL in the table) and redirects that client to
the upstream file. The fill function streams the file to /tmp (``fill_ephemeral_storage_mb``
bounds the size it can cache), checks the upstream's sha256, and stores it like an upload:
S3 multipart under packages/, core metadata, catalog. One job per invocation (a fill may
take minutes); after ``fill_max_receive_count`` failed attempts a job goes to the dead
letters (alarmed in the monitoring stack).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from .functions import StratusFunction, dependency_layer
from .permissions import PackageFiles, allow_index
from .queues import allow_queueing_to, job_queues, work_off
from .settings import DeploySettings
from .storage import StorageStack


class FillStack(Stack):
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
            description="Stratus package index: cache fills from the upstream index",
            **kwargs,
        )
        self.queue, self.dead_letters = job_queues(
            self,
            jobs_id="FillJobs",
            dead_letters_id="FillDeadLetters",
            timeout_seconds=settings.fill_timeout_seconds,
            max_receive_count=settings.fill_max_receive_count,
            reason="This is the fill queue's dead-letter queue",
        )
        self.fill_function = StratusFunction(
            self,
            "Fill",
            settings=settings,
            handler="stratus.handlers.fill.handler",
            description="Stratus cache fill (upstream file to S3, sha256 checked)",
            memory_mb=settings.fill_memory_mb,
            timeout_seconds=settings.fill_timeout_seconds,
            environment={
                "STRATUS_TABLE_NAME": storage.table.table_name,
                "STRATUS_BUCKET_NAME": storage.bucket.bucket_name,
                "STRATUS_FALLBACK": settings.fallback,
                **settings.fallback_environment(),
            },
            layers=[dependency_layer(self)],
            ephemeral_storage_mb=settings.fill_ephemeral_storage_mb,
        )
        fn = self.fill_function
        files = PackageFiles(storage.bucket_arn_for(self), storage.bucket.bucket_name)
        files.allow_objects(
            fn,
            "StoreFilledFiles",
            # PutObject covers the multipart calls; GetObject: HEAD of an existing key
            # (a concurrent fill); abort: no parts left behind after a failure.
            ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "*",
            "Stores filled distributions and their core metadata under packages/ only",
        )
        allow_index(fn, storage.table)  # catalog entry, origin claim, fill lock
        work_off(fn, self.queue, max_concurrency=settings.fill_max_concurrency)
        CfnOutput(self, "FillQueueUrl", value=self.queue.queue_url)
        CfnOutput(self, "FillDeadLetterQueueUrl", value=self.dead_letters.queue_url)
        CfnOutput(
            self,
            "FillLogGroup",
            value=fn.log_group.log_group_name,
            description="aws logs tail <this> --follow: what the fill stored or dropped",
        )

    def allow_queueing(self, fn: StratusFunction) -> None:
        """Let ``fn`` (the API) queue fills: send to the queue, and know its URL."""
        allow_queueing_to(fn, "QueueCacheFills", self.queue, "STRATUS_FILL_QUEUE_URL")
