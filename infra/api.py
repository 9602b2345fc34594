"""The HTTP API: API Gateway (HTTP API, payload v2) → the API function's alias ``live``.

The function (the web app through Mangum) is published as a version on every change and
served through the alias ``live``. With ``api_snapstart`` (default) each published version
is snapshotted after its init, so cold starts resume from the snapshot. CodeDeploy moves
the alias to a new version as ``api_deployment`` says (default: 10% of requests for five
minutes, then all) and moves it back by itself if the new version's errors or the API's
5xx alarm fire meanwhile. ``api_reserved_concurrency`` reserves (and caps) concurrency.

Optional custom domain: ``custom_domain`` + ``certificate_arn`` (ACM, same region), and
with ``hosted_zone_id`` + ``hosted_zone_name`` the A/AAAA alias records in Route 53.
"""

from __future__ import annotations

import jsii
from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from .fill import FillStack
from .functions import (
    StratusFunction,
    ack,
    check_config_backend,
    config_layer,
    dependency_layer,
    ldap_layer,
)
from .permissions import PackageFiles, allow_access_secrets, allow_index
from .settings import DeploySettings
from .storage import StorageStack
from .uploads import UploadsStack, allow_upload_sessions

LIVE_ALIAS = "live"
ONE_MINUTE = Duration.minutes(1)


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        )


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        storage: StorageStack,
        fill: FillStack | None = None,
        uploads: UploadsStack | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Stratus package index: HTTP API", **kwargs
        )
        files = PackageFiles(storage.bucket_arn_for(self), storage.bucket.bucket_name)
        layers = [dependency_layer(self)]
        environment = {
            "STRATUS_TABLE_NAME": storage.table.table_name,
            "STRATUS_BUCKET_NAME": files.bucket_name,
            **settings.app_environment(),
            # ARNs only; the app fetches the value on first use.
            "STRATUS_AUTH_SIGNING_KEY_SECRET": storage.signing_key.secret_arn,
            "STRATUS_AUDIT_LOG_GROUP": storage.audit_log.log_group_name,
            # /admin/rebuild/ starts reconcile runs on the reconcile function's queue.
            "STRATUS_RECONCILE_QUEUE_URL": storage.reconcile_queue.queue_url,
        }
        if storage.cdn is not None:
            environment.update(storage.cdn.api_environment())
        user_database = storage.user_database
        if user_database is not None:
            environment["STRATUS_AUTH_SECRET_ID"] = user_database.secret_arn
            if settings.access_secret_kms_key_arn:
                environment["STRATUS_AUTH_KMS_KEY_ID"] = settings.access_secret_kms_key_arn
        if settings.access_config_file:
            check_config_backend(settings.access_config_file, settings.access_backend)
            layer, path = config_layer(self, settings.access_config_file)
            layers.append(layer)
            environment["STRATUS_CONFIG"] = path
        if settings.access_backend == "ldap":
            layers.append(ldap_layer(self))

        self.api_function = StratusFunction(
            self,
            "Api",
            settings=settings,
            handler="stratus.handlers.api.handler",
            description="Stratus HTTP API (simple index, files, uploads, admin)",
            memory_mb=settings.api_memory_mb,
            timeout_seconds=settings.api_timeout_seconds,
            environment=environment,
            layers=layers,
            reserved_concurrency=settings.api_reserved_concurrency,
            snap_start=settings.api_snapstart,
        )
        fn = self.api_function
        if settings.api_snapstart:
            Annotations.of(fn.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "A version is published on every change (current_version) and served by alias",
            )
        self.version = fn.function.current_version
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=LIVE_ALIAS,
            version=self.version,
            description="The version API Gateway serves; CodeDeploy shifts it",
        )
        files.allow_objects(
            fn,
            "ReadWritePackageFiles",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "*",
            "Uploads, downloads and deletes files under packages/; the prefix is the scope",
        )
        files.allow_listing(fn)
        fn.allow("StartReconcileRuns", ["sqs:SendMessage"], [storage.reconcile_queue.queue_arn])
        fn.allow(
            "WriteAuditLog",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [storage.audit_log.log_group_arn],
        )
        allow_upload_sessions(fn, files)
        if uploads is not None:  # large sessions complete in the uploads stack's function
            uploads.allow_queueing(fn)
        if storage.cdn is not None:
            storage.cdn.allow_signing(fn)
        # The catalog, and the access data in the same table (users, groups, permissions
        # with access_backend=dynamo; API tokens always).
        allow_index(fn, storage.table, yank=True)
        allow_access_secrets(
            fn,
            signing_key_arn=storage.signing_key.secret_arn,
            user_database_arn=user_database.secret_arn if user_database else None,
            kms_key_arn=settings.access_secret_kms_key_arn or None,
        )
        if fill is not None:  # fallback = cache: large fills go to the fill function
            fill.allow_queueing(fn)

        integration = integrations.HttpLambdaIntegration(
            "Lambda",
            self.alias,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
        )
        domain = None
        if settings.custom_domain:
            domain = apigwv2.DomainName(
                self,
                "Domain",
                domain_name=settings.custom_domain,
                certificate=acm.Certificate.from_certificate_arn(
                    self, "Certificate", settings.certificate_arn
                ),
            )
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="Stratus: pip/uv/twine talk to this API",
            default_integration=integration,
            create_default_stage=False,
        )
        self.access_logs = logs.LogGroup(self, "AccessLogs", removal_policy=RemovalPolicy.DESTROY)
        cfn_access_logs = self.access_logs.node.default_child
        assert isinstance(cfn_access_logs, logs.CfnLogGroup)
        cfn_access_logs.retention_in_days = settings.log_retention_days or None
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=settings.api_throttle_rate, burst_limit=settings.api_throttle_burst
            ),
            access_log_settings=_AccessLogSettings(self.access_logs),
            domain_mapping=apigwv2.DomainMappingOptions(domain_name=domain) if domain else None,
        )
        for route in self.http_api.node.children:
            if isinstance(route, apigwv2.HttpRoute):
                ack(
                    route,
                    "AwsSolutions-APIG4",
                    "The app authenticates each request itself (HTTP Basic, as pip/twine send)",
                )
        if domain and settings.hosted_zone_id:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self,
                "Zone",
                hosted_zone_id=settings.hosted_zone_id,
                zone_name=settings.hosted_zone_name,
            )
            alias = route53.RecordTarget.from_alias(
                targets.ApiGatewayv2DomainProperties(
                    domain.regional_domain_name, domain.regional_hosted_zone_id
                )
            )
            route53.ARecord(
                self, "AliasA", zone=zone, record_name=settings.custom_domain, target=alias
            )
            route53.AaaaRecord(
                self, "AliasAAAA", zone=zone, record_name=settings.custom_domain, target=alias
            )

        self.deployment = self._deployment(settings)
        CfnOutput(
            self,
            "DeploymentApplicationName",
            value=self.deployment.application.application_name,
            description="CodeDeploy application releasing the API (aws deploy list-deployments)",
        )
        CfnOutput(
            self,
            "DeploymentGroupName",
            value=self.deployment.deployment_group_name,
            description="CodeDeploy deployment group of the alias live",
        )

        self.url = self.stage.url
        CfnOutput(self, "IndexUrl", value=f"{self.stage.url}simple/", description="pip index")
        CfnOutput(self, "UploadUrl", value=self.stage.url, description="twine repository")
        if settings.custom_domain:
            CfnOutput(
                self,
                "CustomDomainIndexUrl",
                value=f"https://{settings.custom_domain}/simple/",
                description="pip index on the custom domain",
            )

    def _deployment(self, settings: DeploySettings) -> codedeploy.LambdaDeploymentGroup:
        """CodeDeploy traffic shifting of the alias, rolled back on these two alarms.

        They watch one-minute periods so a canary's few minutes see them fire; they
        notify nobody (the monitoring stack's alarms do): they exist for the rollback.
        """
        function_name = self.api_function.function.function_name

        def rollback_alarm(
            construct_id: str,
            namespace: str,
            metric_name: str,
            dimensions: dict[str, str],
            threshold: int,
            description: str,
        ) -> cloudwatch.Alarm:
            return cloudwatch.Alarm(
                self,
                construct_id,
                metric=cloudwatch.Metric(
                    namespace=namespace,
                    metric_name=metric_name,
                    dimensions_map=dimensions,
                    period=ONE_MINUTE,
                    statistic="Sum",
                ),
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )

        alarms = [
            rollback_alarm(
                "NewVersionErrors",
                "AWS/Lambda",
                "Errors",
                {
                    "FunctionName": function_name,
                    "Resource": f"{function_name}:{LIVE_ALIAS}",
                    "ExecutedVersion": self.version.version,
                },
                1,
                "The API version being deployed raised errors: roll back",
            ),
            rollback_alarm(
                "Deployment5xx",
                "AWS/ApiGateway",
                "5xx",
                {"ApiId": self.http_api.api_id, "Stage": "$default"},
                settings.api_5xx_alarm_threshold,
                f"{settings.api_5xx_alarm_threshold}+ server errors in a minute while a new "
                "API version is deployed: roll back",
            ),
        ]
        # CodeDeploy's own managed policy may update every alias and read every alarm in
        # the account; this role may touch only this alias and read only these alarms.
        role = iam.Role(
            self,
            "DeploymentRole",
            assumed_by=iam.ServicePrincipal("codedeploy.amazonaws.com"),
            description="CodeDeploy shifts the API alias (least privilege; no managed policy)",
        )
        function = self.api_function.function
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ShiftTheLiveAlias",
                actions=[
                    "lambda:GetAlias",
                    "lambda:UpdateAlias",
                    "lambda:GetProvisionedConcurrencyConfig",
                ],
                resources=[function.function_arn, self.alias.function_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRollbackAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                resources=[alarm.alarm_arn for alarm in alarms],
            )
        )
        return codedeploy.LambdaDeploymentGroup(
            self,
            "Deployment",
            alias=self.alias,
            # Immutable: the deployment group would attach AWSCodeDeployRoleForLambdaLimited.
            role=role.without_policy_updates(),
            deployment_config=getattr(
                codedeploy.LambdaDeploymentConfig, settings.api_deployment.upper()
            ),
            alarms=alarms,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
