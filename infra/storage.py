"""Stateful resources: the package bucket, the index table, the S3 event queue, secrets.

Everything here is retained when the stack is deleted. The event queue and its
dead-letter queue live here (not in the sync stack) because the bucket's notification
configuration and the queue's policy refer to each other; keeping them in one stack
avoids a dependency cycle between stacks, and the sync stack only consumes the queue.

The secrets: the key that signs registration tokens (generated at the first deploy),
and with ``access_backend = aws_secrets_manager`` the user database. Only the API
function reads them (see permissions.allow_access_secrets).
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stratus.adapters import table_schema

from .cdn import PackageCdn
from .functions import ack
from .notifications import notification_filters
from .settings import DeploySettings
from .uploads import (
    pending_upload_days,
    pending_upload_lifecycle_rule,
    staging_lifecycle_rule,
)

# Must match infra.notifications.EVENTS (tests/infra checks the template against it).
NOTIFIED_EVENTS = (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED)
BUCKET_ARN_OUTPUT = "PackagesBucketArn"
# The user database a new aws_secrets_manager deployment starts with (pypicloud's JSON
# format, §1.6.5): nobody yet; the first registration becomes the admin. Never change
# it: CloudFormation writes a changed SecretString over the live user database.
EMPTY_USER_DATABASE = json.dumps({"users": {}, "groups": {}, "admins": [], "packages": {}})


def _attribute_type(kind: str) -> dynamodb.AttributeType:
    return {
        "S": dynamodb.AttributeType.STRING,
        "N": dynamodb.AttributeType.NUMBER,
        "B": dynamodb.AttributeType.BINARY,
    }[kind]


def _attribute(key: table_schema.KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_attribute_type(key.type))


class StorageStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploySettings, **kwargs
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Stratus package index: bucket, index table, S3 event queue",
            termination_protection=settings.storage_termination_protection,
            **kwargs,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery requires SSE-S3
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(settings.access_log_retention_days),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        ack(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the server access log bucket; logging it into itself would loop",
        )

        self.bucket = s3.Bucket(
            self,
            "Packages",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="packages-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(
                        settings.noncurrent_version_retention_days
                    ),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="remove-expired-delete-markers", expired_object_delete_marker=True
                ),
                staging_lifecycle_rule(),
                pending_upload_lifecycle_rule(pending_upload_days(settings.options)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.cdn = (
            PackageCdn(
                self, "Cdn", settings=settings, bucket=self.bucket, access_logs=self.access_logs
            )
            if settings.cloudfront
            else None
        )

        self.table = dynamodb.Table(
            self,
            "Index",
            partition_key=_attribute(table_schema.PARTITION_KEY),
            sort_key=_attribute(table_schema.SORT_KEY) if table_schema.SORT_KEY else None,
            billing_mode=(
                dynamodb.BillingMode.PAY_PER_REQUEST
                if table_schema.BILLING_MODE == "PAY_PER_REQUEST"
                else dynamodb.BillingMode.PROVISIONED
            ),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=table_schema.POINT_IN_TIME_RECOVERY
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=table_schema.TTL_ATTRIBUTE,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in table_schema.GLOBAL_SECONDARY_INDEXES:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key else None,
                projection_type=(
                    dynamodb.ProjectionType.ALL
                    if index.projection == "ALL"
                    else dynamodb.ProjectionType.KEYS_ONLY
                ),
            )

        self._access_secrets(settings)

        self.dead_letters = sqs.Queue(
            self,
            "SyncDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.RETAIN,
        )
        ack(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the S3 event queue",
        )
        self.events = sqs.Queue(
            self,
            "SyncEvents",
            encryption=sqs.QueueEncryption.SQS_MANAGED,  # S3 can send to SSE-SQS queues
            enforce_ssl=True,
            # AWS's advice for Lambda event sources: six times the function timeout.
            visibility_timeout=Duration.seconds(6 * settings.sync_timeout_seconds),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=settings.sync_max_receive_count
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The reconcile function's queue (continuations of long runs, and runs the admin
        # API starts) and the queue its failures land in (alarmed by the monitoring stack).
        self.reconcile_failures = sqs.Queue(
            self,
            "ReconcileFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.RETAIN,
        )
        ack(self.reconcile_failures, "AwsSolutions-SQS3", "The reconcile's failure destination")
        self.reconcile_queue = sqs.Queue(
            self,
            "ReconcileRuns",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # AWS's advice for Lambda event sources: six times the function timeout.
            visibility_timeout=Duration.seconds(6 * settings.reconcile_timeout_seconds),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.reconcile_failures, max_receive_count=3
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        destination = s3n.SqsDestination(self.events)
        for event in NOTIFIED_EVENTS:
            for prefix, suffix in notification_filters():
                self.bucket.add_event_notification(
                    event, destination, s3.NotificationKeyFilter(prefix=prefix, suffix=suffix)
                )
        self._acknowledge_notification_handler()
        # The audit trail (uploads, deletes, permission changes, failed logins...): its own
        # group, kept longer than the function logs and kept when the stack goes.
        self.audit_log = logs.LogGroup(self, "AuditLog", removal_policy=RemovalPolicy.RETAIN)
        audit_cfn = self.audit_log.node.default_child
        assert isinstance(audit_cfn, logs.CfnLogGroup)
        audit_cfn.retention_in_days = settings.audit_log_retention_days or None
        # Exported under a fixed name and imported by name (``bucket_arn_for``): the IAM
        # statements built on it then read "<export>/packages/*" in every synth, which is
        # how cdk-nag's acknowledgments of those wildcards name them.
        CfnOutput(
            self,
            BUCKET_ARN_OUTPUT,
            value=self.bucket.bucket_arn,
            export_name=self.bucket_arn_export,
        )
        CfnOutput(self, "PackagesBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "IndexTableName", value=self.table.table_name)
        CfnOutput(self, "SyncDeadLetterQueueUrl", value=self.dead_letters.queue_url)
        CfnOutput(self, "SigningKeySecretArn", value=self.signing_key.secret_arn)
        CfnOutput(
            self,
            "AuditLogGroup",
            value=self.audit_log.log_group_name,
            description="STRATUS_AUDIT_LOG_GROUP for `stratus audit --aws`",
        )
        if self.user_database is not None:
            CfnOutput(
                self,
                "UserDatabaseSecretArn",
                value=self.user_database.secret_arn,
                description="the user database of access_backend=aws_secrets_manager",
            )

    def _access_secrets(self, settings: DeploySettings) -> None:
        key = (
            kms.Key.from_key_arn(self, "AccessSecretsKey", settings.access_secret_kms_key_arn)
            if settings.access_secret_kms_key_arn
            else None  # the AWS managed key aws/secretsmanager
        )
        # A changed GenerateSecretString block makes CloudFormation generate a new key,
        # which invalidates outstanding registration tokens: leave it as it is.
        self.signing_key = secretsmanager.Secret(
            self,
            "SigningKey",
            description="Stratus: signs registration tokens (auth.signing_key)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True, include_space=False
            ),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        ack(
            self.signing_key,
            "AwsSolutions-SMG4",
            "Rotating the signing key invalidates outstanding signup tokens, by design; "
            "replace it by hand if it leaks",
        )
        self.user_database: secretsmanager.Secret | None = None
        if settings.access_backend == "aws_secrets_manager":
            self.user_database = secretsmanager.Secret(
                self,
                "UserDatabase",
                description="Stratus: users, groups and package permissions (JSON)",
                secret_string_value=SecretValue.unsafe_plain_text(EMPTY_USER_DATABASE),
                encryption_key=key,
                removal_policy=RemovalPolicy.RETAIN,
            )
            ack(
                self.user_database,
                "AwsSolutions-SMG4",
                "The user database (password hashes, groups, permissions) is data the admin "
                "API edits, not a credential that rotation applies to",
            )

    @property
    def bucket_arn_export(self) -> str:
        return f"{self.stack_name}-{BUCKET_ARN_OUTPUT}"

    def bucket_arn_for(self, consumer: Stack) -> str:
        """The bucket's ARN as another stack reads it (Fn::ImportValue of a fixed name)."""
        consumer.add_stack_dependency(self)
        return Fn.import_value(self.bucket_arn_export)

    def _acknowledge_notification_handler(self) -> None:
        """CDK's own custom resource that writes the bucket's notification configuration."""
        handler = next(
            child
            for child in self.node.children
            if child.node.id.startswith("BucketNotificationsHandler")
        )
        ack(
            handler,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "CDK's bucket-notification custom resource (deploy time only) logs with the basic "
            "execution role",
        )
