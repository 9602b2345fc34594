"""Alarms: sync dead letters and backlog, API 5xx, Lambda errors and throttles.

Every alarm notifies one SNS topic; ``alarm_email`` subscribes an address to it.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .functions import ack
from .settings import DeploySettings

FIVE_MINUTES = Duration.minutes(5)
SYNC_BACKLOG_SECONDS = 15 * 60  # oldest S3 event waiting longer than this: sync is stuck


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
        completion_failures: sqs.IQueue,
        http_api: apigwv2.IHttpApi,
        functions: dict[str, lambda_.IFunction],
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, description="Stratus package index: alarms", **kwargs)
        self.topic = sns.Topic(self, "Alarms", display_name="Stratus alarms", enforce_ssl=True)
        ack(
            self.topic,
            "AwsSolutions-SNS2",
            "CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key; "
            "alarm messages carry no package data",
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(
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
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms.append(created)

        alarm(
            "SyncDeadLetters",
            dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            1,
            "S3 events the sync could not apply are in the dead-letter queue; "
            "fix the cause, then run the reconcile (README: Deploy to AWS)",
        )
        alarm(
            "SyncBacklog",
            events_queue.metric_approximate_age_of_oldest_message(
                period=FIVE_MINUTES, statistic="Maximum"
            ),
            SYNC_BACKLOG_SECONDS,
            "S3 events wait more than 15 minutes: the sync function is failing or throttled",
        )
        alarm(
            "ReconcileFailures",
            reconcile_failures.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            1,
            "A reconcile run failed (its event is in the reconcile failure queue); read the "
            "reconcile log, fix the cause, invoke the reconcile again",
        )
        alarm(
            "UploadCompletionFailures",
            completion_failures.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            1,
            "Background completions of large uploads failed repeatedly (in the completion "
            "dead-letter queue); read the completion log; the uploader completes again",
        )
        alarm(
            "Api5xx",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5xx",
                dimensions_map={"ApiId": http_api.api_id, "Stage": "$default"},
                period=FIVE_MINUTES,
                statistic="Sum",
            ),
            settings.api_5xx_alarm_threshold,
            f"{settings.api_5xx_alarm_threshold}+ server errors in 5 minutes from the HTTP API",
        )
        for name, fn in functions.items():
            alarm(
                f"{name}Errors",
                fn.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function raised errors",
            )
            alarm(
                f"{name}Throttles",
                fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function was throttled (account or reserved concurrency)",
            )
        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn)
