"""The S3 event sync: SQS queue (in the storage stack) → sync function → catalog.

The event source reports partial batch failures, so only failed messages are retried;
after ``sync_max_receive_count`` attempts SQS moves a message to the dead-letter queue.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from .functions import StratusFunction, dependency_layer
from .permissions import PackageFiles, allow_indexing
from .settings import DeploySettings
from .storage import StorageStack


class SyncStack(Stack):
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
            description="Stratus package index: S3 event sync into the index table",
            **kwargs,
        )
        self.sync_function = StratusFunction(
            self,
            "Sync",
            settings=settings,
            handler="stratus.handlers.sync.handler",
            description="Stratus S3 event sync (files written to the bucket directly)",
            memory_mb=settings.sync_memory_mb,
            timeout_seconds=settings.sync_timeout_seconds,
            environment={
                "STRATUS_TABLE_NAME": storage.table.table_name,
                "STRATUS_BUCKET_NAME": storage.bucket.bucket_name,
            },
            layers=[dependency_layer(self)],
            reserved_concurrency=settings.sync_reserved_concurrency,
        )
        fn = self.sync_function
        files = PackageFiles(storage.bucket_arn_for(self), storage.bucket.bucket_name)
        allow_indexing(fn, files, storage.table)
        fn.function.add_event_source(
            event_sources.SqsEventSource(
                storage.events,
                batch_size=settings.sync_batch_size,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                max_concurrency=settings.sync_max_concurrency,
            )
        )
        CfnOutput(
            self,
            "SyncLogGroup",
            value=fn.log_group.log_group_name,
            description="aws logs tail <this> --follow: what the sync indexed or skipped",
        )
