"""Alarms and the operations dashboard.

Alarms: sync dead letters (count and age) and backlog, reconcile failures and drift found,
cache fill dead letters (with the fill function), failed background upload completions,
API 5xx and p99 latency, Lambda errors,
throttles and concurrency near its limit (a function's reserved concurrency, the account's
regional quota), index table throttles.
Every alarm notifies one SNS topic; ``alarm_email`` subscribes an address to it. The
thresholds are settings (``*_alarm_*`` in infra/settings.py, defaults in cdk.json).

The dashboard shows the API, each function, the sync queues, the index table and the
business metrics the functions emit (Powertools EMF in ``metrics_namespace``, with the
function's ``service`` dimension), with the state of every alarm on top.
"""

from __future__ import annotations

import math

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .functions import StratusFunction, ack
from .settings import DeploySettings

FIVE_MINUTES = Duration.minutes(5)
ONE_HOUR = Duration.hours(1)
# What the index adapters call (pynamodb): the operations whose throttling is alarmed.
TABLE_OPERATIONS = (
    dynamodb.Operation.GET_ITEM,
    dynamodb.Operation.QUERY,
    dynamodb.Operation.PUT_ITEM,
    dynamodb.Operation.UPDATE_ITEM,
    dynamodb.Operation.DELETE_ITEM,
    dynamodb.Operation.TRANSACT_WRITE_ITEMS,
)
# The business metrics each function emits (title → metric names), by function: the
# names web/observe.py (audited actions by result, downloads), handlers/sync.py (one per
# event outcome of app/sync.py) and handlers/reconcile.py count.
BUSINESS_METRICS: dict[str, dict[str, tuple[str, ...]]] = {
    "Api": {
        "Uploads and downloads": ("Upload", "Downloads", "Delete", "Yank"),
        "Refused and failed": (
            "AuthFailures",
            "ThrottledLogins",
            "UploadDenied",
            "UploadFailed",
            "DeleteDenied",
            "ServerErrors",
        ),
    },
    "Sync": {
        "S3 events synced": (
            "SyncEventsUpserted",
            "SyncEventsDeleted",
            "SyncEventsUnchanged",
            "SyncEventsSkipped",
            "SyncEventsFailed",
        ),
    },
    "Reconcile": {"Reconcile repairs (drift found)": ("ReconcileRepairs",)},
    # With fallback = cache: what app/fill.py counts in the fill function.
    "Fill": {"Cache fills": ("CacheFills", "UpstreamErrors")},
    # handlers/upload_completion.py: one per background completion, by the session's end.
    "UploadCompletion": {
        "Background upload completions": (
            "UploadCompletionsPublished",
            "UploadCompletionsError",
            "UploadCompletionsPending",
            "UploadCompletionsTaken",
        ),
    },
}
# With an upstream fallback (redirect or cache) the API counts a failed upstream page fetch
# too (app/upstream.py); its cache fills run in the fill function (queued), not here.
API_FALLBACK_METRICS: dict[str, tuple[str, ...]] = {
    "Upstream fallback (API)": ("UpstreamErrors",),
}
REPAIRS_METRIC = "ReconcileRepairs"  # handlers/reconcile.py: repairs of one reconcile page


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        dead_letters: sqs.IQueue,
        events_queue: sqs.IQueue,
        reconcile_failures: sqs.IQueue,
        http_api: apigwv2.IHttpApi,
        table: dynamodb.ITable,
        functions: dict[str, StratusFunction],
        fill_dead_letters: sqs.IQueue | None = None,
        completion_failures: sqs.IQueue | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Stratus package index: alarms and dashboard",
            **kwargs,
        )
        self.settings = settings
        self.functions = functions
        self.topic = sns.Topic(self, "Alarms", display_name="Stratus alarms", enforce_ssl=True)
        ack(
            self.topic,
            "AwsSolutions-SNS2",
            "CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key; "
            "alarm messages carry no package data",
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def api_metric(
            name: str, statistic: str = "Sum", label: str | None = None
        ) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map={"ApiId": http_api.api_id, "Stage": "$default"},
                period=FIVE_MINUTES,
                statistic=statistic,
                label=label,
            )

        self.queue_alarm(
            "SyncDeadLetters",
            dead_letters,
            "S3 events the sync could not apply are in the dead-letter queue; "
            "fix the cause, then run the reconcile (README: Deploy to AWS)",
        )
        if fill_dead_letters is not None:
            self.queue_alarm(
                "FillDeadLetters",
                fill_dead_letters,
                "Cache fills failed repeatedly (upstream down, sha256 mismatch): see the fill "
                "function's log; clients are still sent to the upstream for those files",
            )
        self.alarm(
            "SyncDeadLetterAge",
            dead_letters.metric_approximate_age_of_oldest_message(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            settings.sync_dead_letter_age_alarm_seconds,
            f"A dead letter of the sync waits {settings.sync_dead_letter_age_alarm_seconds}+ s "
            "unhandled (they expire after 14 days): fix the cause, run the reconcile, purge",
        )
        self.alarm(
            "SyncBacklog",
            events_queue.metric_approximate_age_of_oldest_message(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            settings.sync_backlog_alarm_seconds,
            f"S3 events wait {settings.sync_backlog_alarm_seconds}+ s: the sync function is "
            "failing or throttled",
        )
        self.queue_alarm(
            "ReconcileFailures",
            reconcile_failures,
            "A reconcile run failed (its event is in the reconcile failure queue); read the "
            "reconcile log, fix the cause, invoke the reconcile again",
        )
        if completion_failures is not None:
            self.queue_alarm(
                "UploadCompletionFailures",
                completion_failures,
                "Background completions of large uploads failed repeatedly (in the completion "
                "dead-letter queue); read the completion log; the uploader completes again",
            )
        self.alarm(
            "ReconcileDrift",
            self.business_metric("Reconcile", REPAIRS_METRIC, period=ONE_HOUR),
            settings.reconcile_drift_alarm_threshold,
            f"The reconcile found {settings.reconcile_drift_alarm_threshold}+ differences "
            "between bucket and index in an hour: look for writes that bypass the API or sync",
        )
        self.alarm(
            "Api5xx",
            api_metric("5xx"),
            settings.api_5xx_alarm_threshold,
            f"{settings.api_5xx_alarm_threshold}+ server errors in 5 minutes from the HTTP API",
        )
        self.alarm(
            "ApiLatencyP99",
            api_metric("Latency", "p99"),
            settings.api_p99_latency_alarm_ms,
            f"The API's p99 latency stayed at {settings.api_p99_latency_alarm_ms}+ ms for "
            "15 minutes",
            evaluation_periods=3,
        )
        self.alarm(
            "IndexTableThrottles",
            table.metric_throttled_requests_for_operations(
                operations=list(TABLE_OPERATIONS), period=FIVE_MINUTES
            ),
            settings.table_throttle_alarm_threshold,
            f"{settings.table_throttle_alarm_threshold}+ index table requests throttled in "
            "5 minutes",
        )
        percent = settings.concurrency_alarm_percent
        for name, fn in functions.items():
            self.alarm(
                f"{name}Errors",
                fn.function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function raised errors",
            )
            self.alarm(
                f"{name}Throttles",
                fn.function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function was throttled (account or reserved concurrency)",
            )
            if fn.reserved_concurrency:
                self.alarm(
                    f"{name}Concurrency",
                    fn.function.metric(
                        "ConcurrentExecutions", period=FIVE_MINUTES, statistic="Maximum"
                    ),
                    concurrency_threshold(fn.reserved_concurrency, percent),
                    f"The {name} function ran at {percent}%+ of its reserved concurrency "
                    f"({fn.reserved_concurrency}) for 15 minutes",
                    evaluation_periods=3,
                )
        self.alarm(
            "AccountConcurrency",
            cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="ClaimedAccountConcurrency",
                period=FIVE_MINUTES,
                statistic="Maximum",
            ),
            concurrency_threshold(settings.lambda_account_concurrency_limit, percent),
            f"Lambda concurrency claimed in this region (reserved + unreserved in use) stayed "
            f"at {percent}%+ of lambda_account_concurrency_limit for 15 minutes",
            evaluation_periods=3,
        )
        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn)

        self.dashboard = self._dashboard(api_metric, dead_letters, events_queue, table)
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)
        CfnOutput(
            self,
            "DashboardUrl",
            value=(
                f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region="
                f"{Aws.REGION}#dashboards/dashboard/{self.dashboard.dashboard_name}"
            ),
            description="the operations dashboard in the CloudWatch console",
        )

    def alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> None:
        created = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        created.add_alarm_action(self._action)
        created.add_ok_action(self._action)
        self.alarms.append(created)

    def queue_alarm(self, construct_id: str, queue: sqs.IQueue, description: str) -> None:
        """Alarm as soon as ``queue`` (a dead-letter or failure queue) holds any message."""
        self.alarm(
            construct_id,
            queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            1,
            description,
        )

    def business_metric(
        self, function: str, name: str, period: Duration = FIVE_MINUTES
    ) -> cloudwatch.Metric:
        """A count one function emits: Powertools adds its ``service`` as a dimension."""
        return cloudwatch.Metric(
            namespace=self.settings.metrics_namespace,
            metric_name=name,
            dimensions_map={"service": self.functions[function].service},
            period=period,
            statistic="Sum",
        )

    def _dashboard(
        self,
        api_metric,
        dead_letters: sqs.IQueue,
        events_queue: sqs.IQueue,
        table: dynamodb.ITable,
    ) -> cloudwatch.Dashboard:
        def graph(title: str, metrics: list[cloudwatch.IMetric], width: int = 8, **kwargs):
            return cloudwatch.GraphWidget(
                title=title, left=metrics, width=width, height=6, **kwargs
            )

        def per_function(title: str, metric: str, statistic: str) -> cloudwatch.GraphWidget:
            return graph(
                title,
                [
                    fn.function.metric(metric, period=FIVE_MINUTES, statistic=statistic, label=name)
                    for name, fn in self.functions.items()
                ],
            )

        def queue_metrics(stat: str) -> list[cloudwatch.IMetric]:
            label = "visible" if stat == "visible" else "age of oldest (s)"
            return [
                (
                    queue.metric_approximate_number_of_messages_visible
                    if stat == "visible"
                    else queue.metric_approximate_age_of_oldest_message
                )(period=FIVE_MINUTES, statistic="Maximum", label=f"{queue_name} {label}")
                for queue_name, queue in (("events", events_queue), ("dead letters", dead_letters))
            ]

        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            # Dashboard names are global to the account: one per prefix (stage) and region.
            dashboard_name=f"{self.settings.stack_names_prefix}-{Aws.REGION}",
            default_interval=Duration.hours(12),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4)
        )
        dashboard.add_widgets(
            graph(
                "API requests",
                [api_metric("Count"), api_metric("4xx"), api_metric("5xx")],
                width=12,
            ),
            graph(
                "API latency (ms)",
                [
                    api_metric("Latency", "p50", "latency p50"),
                    api_metric("Latency", "p99", "latency p99"),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            per_function("Invocations", "Invocations", "Sum"),
            per_function("Errors", "Errors", "Sum"),
            per_function("Throttles", "Throttles", "Sum"),
        )
        reserved = [
            cloudwatch.HorizontalAnnotation(value=fn.reserved_concurrency, label=f"{name} reserved")
            for name, fn in self.functions.items()
            if fn.reserved_concurrency
        ]
        dashboard.add_widgets(
            per_function("Duration p50 (ms)", "Duration", "p50"),
            per_function("Duration p99 (ms)", "Duration", "p99"),
            graph(
                "Concurrent executions (max)",
                [
                    fn.function.metric(
                        "ConcurrentExecutions", period=FIVE_MINUTES, statistic="Maximum", label=name
                    )
                    for name, fn in self.functions.items()
                ],
                left_annotations=reserved,
            ),
        )
        dashboard.add_widgets(
            graph("Sync queue: messages", queue_metrics("visible")),
            graph("Sync queue: age of oldest message (s)", queue_metrics("age")),
            graph(
                "Index table",
                [
                    table.metric_consumed_read_capacity_units(
                        period=FIVE_MINUTES, label="consumed read units"
                    ),
                    table.metric_consumed_write_capacity_units(
                        period=FIVE_MINUTES, label="consumed write units"
                    ),
                ],
                right=[
                    table.metric_throttled_requests_for_operations(
                        operations=list(TABLE_OPERATIONS),
                        period=FIVE_MINUTES,
                        label="throttled requests",
                    )
                ],
            ),
        )
        business = [
            graph(title, [self.business_metric(function, name) for name in names], width=6)
            for function, panels in BUSINESS_METRICS.items()
            if function in self.functions
            for title, names in panels.items()
        ]
        if self.settings.fallback != "none":
            business += [
                graph(title, [self.business_metric("Api", name) for name in names], width=6)
                for title, names in API_FALLBACK_METRICS.items()
            ]
        dashboard.add_widgets(*business)
        return dashboard


def concurrency_threshold(limit: int, percent: int) -> int:
    """``percent`` of ``limit`` concurrent executions, rounded up, at least one."""
    return max(1, math.ceil(limit * percent / 100))
