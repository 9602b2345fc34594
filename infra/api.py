"""The HTTP API: API Gateway (HTTP API, payload v2) → the API function (Starlette + Mangum).

Optional custom domain: ``custom_domain`` + ``certificate_arn`` (ACM, same region), and
with ``hosted_zone_id`` + ``hosted_zone_name`` the A/AAAA alias records in Route 53.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
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
)
from .permissions import PackageFiles, allow_access_secrets, allow_index
from .settings import DeploySettings
from .storage import StorageStack


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
        )
        fn = self.api_function
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
            fn.function,
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
