"""The reconcile function: on a schedule (and by hand), repair drift bucket ↔ index.

A run that nears the function's timeout queues its continuation on the reconcile queue
(``StorageStack.reconcile_queue``; ``/admin/rebuild/`` starts runs there too), which
invokes the function again (one message at a time), so a bucket of any size reconciles
in a chain of bounded invocations. Failed scheduled (asynchronous) invocations go to
``reconcile_failures``; continuations that keep failing go to the same queue after three
attempts. The monitoring stack alarms on it.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from .functions import StratusFunction, dependency_layer
from .permissions import PackageFiles, allow_indexing
from .settings import DeploySettings
from .storage import StorageStack


class ReconcileStack(Stack):
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
            description="Stratus package index: scheduled bucket/index reconcile",
            **kwargs,
        )
        self.reconcile_function = StratusFunction(
            self,
            "Reconcile",
            settings=settings,
            handler="stratus.handlers.reconcile.handler",
            description="Stratus reconcile: list the bucket, diff the index, repair drift",
            memory_mb=settings.reconcile_memory_mb,
            timeout_seconds=settings.reconcile_timeout_seconds,
            environment={
                "STRATUS_TABLE_NAME": storage.table.table_name,
                "STRATUS_BUCKET_NAME": storage.bucket.bucket_name,
            },
            layers=[dependency_layer(self)],
        )
        fn = self.reconcile_function
        files = PackageFiles(storage.bucket_arn_for(self), storage.bucket.bucket_name)
        allow_indexing(fn, files, storage.table)

        self.failures = storage.reconcile_failures
        self.continuations = storage.reconcile_queue
        fn.function.add_environment("STRATUS_RECONCILE_QUEUE_URL", self.continuations.queue_url)
        fn.allow("QueueContinuation", ["sqs:SendMessage"], [self.continuations.queue_arn])
        fn.function.add_event_source(
            event_sources.SqsEventSource(self.continuations, batch_size=1, max_concurrency=2)
        )
        fn.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failures), retry_attempts=2
        )
        if settings.reconcile_schedule:
            self.schedule = events.Rule(
                self,
                "Schedule",
                description="Run the Stratus reconcile",
                schedule=events.Schedule.expression(settings.reconcile_schedule),
                targets=[events_targets.LambdaFunction(fn.function, retry_attempts=2)],
            )
        CfnOutput(
            self,
            "ReconcileFunctionName",
            value=fn.function.function_name,
            description="aws lambda invoke --function-name <this> --payload '{}' report.json",
        )
        CfnOutput(self, "ReconcileLogGroup", value=fn.log_group.log_group_name)
        CfnOutput(
            self,
            "ReconcileFailuresQueueUrl",
            value=self.failures.queue_url,
            description="failed reconcile invocations (their events); alarm ReconcileFailures",
        )
