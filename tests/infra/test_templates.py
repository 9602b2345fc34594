"""The synthesized templates: resources, their key properties, wiring, and IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from stratus.adapters import table_schema
from stratus.adapters.table_schema import create_table_kwargs

PACKAGES_EXPORT = "StratusStorage-PackagesBucketArn"
# What a Lambda SQS event source grants its function on the queue.
SQS_CONSUME_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
]


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {list(found)}"
    return next(iter(found.values()))


def objects(pattern: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::ImportValue": PACKAGES_EXPORT}, f"/packages/{pattern}"]]}


# --- storage -----------------------------------------------------------------------------


def test_package_bucket_is_private_encrypted_versioned_and_retained(assertions, templates):
    storage = assertions["Storage"]
    storage.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "LoggingConfiguration": Match.object_like(
                        {"LogFilePrefix": "packages-bucket/"}
                    ),
                    "LifecycleConfiguration": {
                        "Rules": Match.array_with(
                            [
                                Match.object_like(
                                    {
                                        "Id": "expire-noncurrent-versions",
                                        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                                        "AbortIncompleteMultipartUpload": {
                                            "DaysAfterInitiation": 7
                                        },
                                        "Status": "Enabled",
                                    }
                                )
                            ]
                        )
                    },
                }
            ),
        },
    )
    storage.resource_count_is("AWS::S3::Bucket", 2)  # packages + their access logs


def test_every_bucket_denies_plain_http(templates):
    policies = resources(templates["Storage"], "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_table_is_on_demand_recoverable_encrypted_and_retained(assertions):
    assertions["Storage"].has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BillingMode": "PAY_PER_REQUEST",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": {"SSEEnabled": True},
                    "DeletionProtectionEnabled": True,
                }
            ),
        },
    )


def test_table_keys_and_indexes_match_the_dev_table(templates):
    """The stack's table and ``stratus create-dev-resources``' table cannot drift apart."""
    table = only(templates["Storage"], "AWS::DynamoDB::Table")["Properties"]
    expected = create_table_kwargs("ignored")

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert table["KeySchema"] == expected["KeySchema"]
    assert by_name(table["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert table["BillingMode"] == expected["BillingMode"]
    rendered = {
        index["IndexName"]: {"KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in table.get("GlobalSecondaryIndexes", [])
    }
    wanted = {
        index["IndexName"]: {"KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in expected.get("GlobalSecondaryIndexes", [])
    }
    assert rendered == wanted
    assert "LocalSecondaryIndexes" not in table
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": table_schema.TTL_ATTRIBUTE,
        "Enabled": True,
    }


def test_event_queue_has_a_dead_letter_queue_and_sse(templates):
    queues = resources(templates["Storage"], "AWS::SQS::Queue")
    assert len(queues) == 4  # S3 events and their dead letters; reconcile runs and failures
    events = next(q for k, q in queues.items() if k.startswith("SyncEvents"))
    dlq_id = next(k for k in queues if k.startswith("SyncDeadLetters"))
    props = events["Properties"]
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert props["VisibilityTimeout"] == 6 * 120  # six times the sync function's timeout
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        assert queue["DeletionPolicy"] == "Retain"
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_bucket_notifies_the_event_queue_of_distributions_only(templates):
    from infra.notifications import DISTRIBUTION_SUFFIXES, EVENTS

    storage = templates["Storage"]
    notifications = only(storage, "Custom::S3BucketNotifications")["Properties"]
    bucket_id = next(k for k in resources(storage, "AWS::S3::Bucket") if k.startswith("Packages"))
    queue_id = next(k for k in resources(storage, "AWS::SQS::Queue") if k.startswith("SyncEvents"))
    assert notifications["BucketName"] == {"Ref": bucket_id}
    configs = notifications["NotificationConfiguration"]["QueueConfigurations"]
    seen = set()
    for config in configs:
        assert config["QueueArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        rules = {r["Name"]: r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
        assert rules["prefix"] == "packages/"
        seen.add((config["Events"][0], rules["suffix"]))
        assert len(config["Events"]) == 1
    assert set(EVENTS) == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    assert seen == {(event, suffix) for event in EVENTS for suffix in DISTRIBUTION_SUFFIXES}
    assert "LambdaFunctionConfigurations" not in notifications["NotificationConfiguration"]


def test_only_the_bucket_may_send_to_the_event_queue(templates):
    storage = templates["Storage"]
    bucket_id = next(k for k in resources(storage, "AWS::S3::Bucket") if k.startswith("Packages"))
    queue_id = next(k for k in resources(storage, "AWS::SQS::Queue") if k.startswith("SyncEvents"))
    policy = next(
        p
        for p in resources(storage, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue_id}]
    )
    allows = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert len(allows) == 1
    statement = allows[0]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert "sqs:SendMessage" in statement["Action"]
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::GetAtt": [bucket_id, "Arn"]}


# --- functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "handler", "memory", "timeout"),
    [
        ("Api", "stratus.handlers.api.handler", 1024, 29),
        ("Sync", "stratus.handlers.sync.handler", 1024, 120),
        ("Reconcile", "stratus.handlers.reconcile.handler", 1024, 900),
        ("Uploads", "stratus.handlers.upload_completion.handler", 1024, 900),
    ],
)
def test_functions_run_python312_on_arm64_with_the_layer(
    templates, stack, handler, memory, timeout
):
    template = templates[stack]
    fn = only(template, "AWS::Lambda::Function")["Properties"]
    assert fn["Runtime"] == "python3.12"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Handler"] == handler
    assert fn["MemorySize"] == memory
    assert fn["Timeout"] == timeout
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    layer_id = next(iter(resources(template, "AWS::Lambda::LayerVersion")))
    assert fn["Layers"] == [{"Ref": layer_id}]
    layer = resources(template, "AWS::Lambda::LayerVersion")[layer_id]["Properties"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    assert layer["CompatibleRuntimes"] == ["python3.12"]
    env = fn["Environment"]["Variables"]
    assert {"STRATUS_TABLE_NAME", "STRATUS_BUCKET_NAME"} <= env.keys()
    log_group = only(template, "AWS::Logs::LogGroup") if stack != "Api" else None
    if log_group is not None:
        assert log_group["Properties"]["RetentionInDays"] == 30


def test_api_function_gets_the_app_options_and_no_secrets(templates):
    env = only(templates["Api"], "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert env["STRATUS_FALLBACK"] == "none"
    assert env["STRATUS_ALLOW_OVERWRITE"] == "false"
    assert env["STRATUS_DEFAULT_READ"] == "authenticated"
    assert env["STRATUS_DEFAULT_WRITE"] == ""
    assert env["STRATUS_PRESIGN_EXPIRY"] == "300"
    assert "STRATUS_CONFIG" not in env  # no access_config_file by default
    assert env["STRATUS_AUTH"] == "config"
    # The one variable named like a secret holds the ARN of one (a reference), not a value.
    named_like_secrets = {
        name
        for name in env
        if any(word in name.lower() for word in ("password", "secret", "token", "key"))
    }
    assert named_like_secrets == {"STRATUS_AUTH_SIGNING_KEY_SECRET"}
    reference = env["STRATUS_AUTH_SIGNING_KEY_SECRET"]["Fn::GetStackOutput"]
    assert reference["StackName"] == "StratusStorage"
    assert reference["OutputName"].startswith("PublishOutputRefSigningKey")


def test_http_api_routes_everything_to_the_function(templates):
    api = templates["Api"]
    assert only(api, "AWS::ApiGatewayV2::Api")["Properties"]["ProtocolType"] == "HTTP"
    route = only(api, "AWS::ApiGatewayV2::Route")["Properties"]
    assert route["RouteKey"] == "$default"
    integration = only(api, "AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    alias_id = next(iter(resources(api, "AWS::Lambda::Alias")))  # test_deployment.py
    assert integration["IntegrationUri"] == {"Ref": alias_id}
    stage = only(api, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": 400,
        "ThrottlingRateLimit": 200,
    }
    access_logs_id = next(k for k in resources(api, "AWS::Logs::LogGroup") if "AccessLogs" in k)
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [access_logs_id, "Arn"]}
    assert "$context.requestId" in stage["AccessLogSettings"]["Format"]
    assert not resources(api, "AWS::ApiGatewayV2::DomainName")  # no custom domain by default


def test_sync_consumes_the_event_queue_with_partial_batch_failures(templates):
    mapping = only(templates["Sync"], "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    source = json.dumps(mapping["EventSourceArn"])
    assert "StratusStorage" in source and "SyncEvents" in source


def test_reconcile_continues_through_a_queue_and_reports_failures(templates):
    storage, reconcile = templates["Storage"], templates["Reconcile"]
    queues = resources(storage, "AWS::SQS::Queue")
    runs = next(k for k in queues if k.startswith("ReconcileRuns"))
    failures = next(k for k in queues if k.startswith("ReconcileFailures"))
    props = queues[runs]["Properties"]
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [failures, "Arn"]}
    assert props["VisibilityTimeout"] == 6 * 900
    mapping = only(reconcile, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["BatchSize"] == 1
    assert runs in json.dumps(mapping["EventSourceArn"])
    (fn,) = resources(reconcile, "AWS::Lambda::Function").values()
    assert runs in json.dumps(fn["Properties"]["Environment"]["Variables"])
    invoke = only(reconcile, "AWS::Lambda::EventInvokeConfig")["Properties"]
    assert failures in json.dumps(invoke["DestinationConfig"]["OnFailure"]["Destination"])
    alarms = resources(templates["Monitoring"], "AWS::CloudWatch::Alarm")
    assert any(k.startswith("ReconcileFailures") for k in alarms)
    # the API starts runs (/admin/rebuild/) on the same queue, and may do nothing else to it
    api = statements(templates["Api"], "ApiRole")
    assert api["StartReconcileRuns"]["actions"] == ["sqs:SendMessage"]
    assert runs in json.dumps(api["StartReconcileRuns"]["resource"])


def test_reconcile_runs_daily(templates):
    rule = only(templates["Reconcile"], "AWS::Events::Rule")["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 day)"
    assert rule["State"] == "ENABLED"
    fn_id = next(iter(resources(templates["Reconcile"], "AWS::Lambda::Function")))
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}


# --- IAM ---------------------------------------------------------------------------------


def statements(template: dict[str, Any], role_prefix: str) -> dict[str, dict[str, Any]]:
    """Sid → {actions, resource} of the one inline policy of a function role."""
    roles = {
        k: v for k, v in resources(template, "AWS::IAM::Role").items() if k.startswith(role_prefix)
    }
    assert len(roles) == 1
    role_id, role = next(iter(roles.items()))
    assert "ManagedPolicyArns" not in role["Properties"]  # no managed policies at all
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ]
    policies = [
        p
        for p in resources(template, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    assert len(policies) == 1
    out = {}
    for statement in policies[0]["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        actions = sorted(actions) if isinstance(actions, list) else [actions]
        assert not any("*" in action for action in actions)
        # CDK names none of its generated statements: an event source's, a destination's,
        # and X-Ray's (tracing=ACTIVE: tests/infra/test_observability.py checks it).
        if actions == TRACE_ACTIONS:
            unnamed = "WriteTraces"
        elif "sqs:ReceiveMessage" in actions:
            unnamed = "ConsumeEvents"
        else:
            unnamed = "SendToDestination"
        out[statement.get("Sid", unnamed)] = {
            "actions": actions,
            "resource": statement["Resource"],
        }
    return out


# What X-Ray active tracing needs; IAM has no resource types for them, only "*".
TRACE_ACTIONS = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]


def log_group_arn(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    log_id = next(k for k in resources(template, "AWS::Logs::LogGroup") if k.startswith(prefix))
    return {"Fn::GetAtt": [log_id, "Arn"]}


BUCKET = {"Fn::ImportValue": PACKAGES_EXPORT}
STAGED = {"Fn::Join": ["", [BUCKET, "/uploads/*"]]}  # upload sessions' bytes


def table_arn(statement_resource: Any) -> None:
    text = json.dumps(statement_resource)
    assert "StratusStorage" in text and "Index" in text and "Arn" in text


def test_api_role(templates):
    got = statements(templates["Api"], "ApiRole")
    assert set(got) == {
        "WriteOwnLogs",
        "WriteAuditLog",
        "StartReconcileRuns",
        "ReadWritePackageFiles",
        "ListPackageFiles",
        "ReadWriteIndex",
        "ReadSigningKey",  # tests/infra/test_access_backends.py checks it per backend
        "StageUploads",  # upload sessions: tests/infra/test_cdn_and_uploads.py
        "AbortPackageCopies",
        "TagInPlaceUploads",  # in-place sessions' pending tag
        "QueueUploadCompletions",
        "WriteTraces",
    }
    assert got["WriteTraces"] == {"actions": TRACE_ACTIONS, "resource": "*"}
    # The audit trail: its own retained log group, kept two years; the API only appends.
    audit_id, audit = next(
        (k, v)
        for k, v in resources(templates["Storage"], "AWS::Logs::LogGroup").items()
        if k.startswith("AuditLog")
    )
    assert audit["DeletionPolicy"] == "Retain"
    assert audit["Properties"]["RetentionInDays"] == 731
    assert got["WriteAuditLog"]["actions"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert audit_id in json.dumps(got["WriteAuditLog"]["resource"])
    (fn,) = resources(templates["Api"], "AWS::Lambda::Function").values()
    assert audit_id in json.dumps(fn["Properties"]["Environment"]["Variables"])
    assert got["WriteOwnLogs"] == {
        "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "resource": log_group_arn(templates["Api"], "ApiLogs"),
    }
    assert got["ReadSigningKey"]["actions"] == ["secretsmanager:GetSecretValue"]
    assert got["ReadWritePackageFiles"] == {
        "actions": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        "resource": objects("*"),
    }
    assert got["ListPackageFiles"] == {"actions": ["s3:ListBucket"], "resource": BUCKET}
    assert got["ReadWriteIndex"]["actions"] == [
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ]
    table_arn(got["ReadWriteIndex"]["resource"])


@pytest.mark.parametrize("stack", ["Sync", "Reconcile"])
def test_indexing_roles(templates, stack):
    got = statements(templates[stack], f"{stack}Role")
    expected = {
        "WriteOwnLogs",
        "ReadPackageFiles",
        "WriteCoreMetadata",
        "ListPackageFiles",
        "ReadWriteIndex",
        "WriteTraces",
    }
    expected.add("ConsumeEvents")
    if stack == "Reconcile":  # its continuation queue and failure destination
        expected |= {"QueueContinuation", "SendToDestination"}
    assert set(got) == expected
    assert got["WriteOwnLogs"]["resource"] == log_group_arn(templates[stack], f"{stack}Logs")
    assert got["WriteTraces"] == {"actions": TRACE_ACTIONS, "resource": "*"}
    # GetObjectTagging: an upload session's object still tagged pending is not indexed.
    assert got["ReadPackageFiles"] == {
        "actions": ["s3:GetObject", "s3:GetObjectTagging"],
        "resource": objects("*"),
    }
    # Only core metadata files may be written; no distribution can be changed or deleted.
    assert got["WriteCoreMetadata"] == {
        "actions": ["s3:PutObject"],
        "resource": objects("*.metadata"),
    }
    assert got["ListPackageFiles"] == {"actions": ["s3:ListBucket"], "resource": BUCKET}
    assert got["ReadWriteIndex"]["actions"] == [
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    ]
    table_arn(got["ReadWriteIndex"]["resource"])
    assert got["ConsumeEvents"]["actions"] == SQS_CONSUME_ACTIONS
    queue = "SyncEvents" if stack == "Sync" else "ReconcileRuns"
    assert queue in json.dumps(got["ConsumeEvents"]["resource"])
    if stack == "Reconcile":
        assert got["QueueContinuation"]["actions"] == ["sqs:SendMessage"]
        assert "ReconcileRuns" in json.dumps(got["QueueContinuation"]["resource"])
        assert got["SendToDestination"]["actions"] == [
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:SendMessage",
        ]
        assert "ReconcileFailures" in json.dumps(got["SendToDestination"]["resource"])


def test_no_wildcard_resource_outside_the_package_prefix(templates):
    for name, template in templates.items():
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if sorted(statement["Action"]) == TRACE_ACTIONS:  # X-Ray takes only "*"
                    assert statement["Resource"] == "*"
                    continue
                for resource in (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                ):
                    if "*" in json.dumps(resource):
                        assert resource in (objects("*"), objects("*.metadata"), STAGED), (
                            name,
                            resource,
                        )


# --- monitoring --------------------------------------------------------------------------


def test_alarms(templates):
    alarms = resources(templates["Monitoring"], "AWS::CloudWatch::Alarm")
    metrics = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName"))
        for a in alarms.values()
    }
    assert metrics == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),  # dead letters, reconcile failures
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),  # sync backlog, dead letters' age
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "Latency"),  # p99
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "ConcurrentExecutions"),  # the sync's, against its reserved concurrency
        ("AWS/Lambda", "ClaimedAccountConcurrency"),  # the account's regional quota
        ("Stratus", "ReconcileRepairs"),  # drift found
        (None, None),  # index table throttles: a sum over its operations (metric math)
    }
    # sync dead letters (count, age) and backlog; reconcile failures and drift; failed
    # upload completions; API 5xx and p99 latency; table throttles; account concurrency;
    # every function (API, sync, reconcile, upload completion) has errors and throttles
    # alarms; the sync (reserved concurrency) a concurrency alarm
    assert len(alarms) == 3 + 2 + 1 + 2 + 1 + 1 + 4 * 2 + 1
    topic_id = next(iter(resources(templates["Monitoring"], "AWS::SNS::Topic")))
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"
    dlq = next(a for k, a in alarms.items() if k.startswith("SyncDeadLetters"))["Properties"]
    assert dlq["Threshold"] == 1
    assert "SyncDeadLetters" in json.dumps(dlq["Dimensions"])


# --- settings ----------------------------------------------------------------------------


def test_context_settings_change_behaviour(synth):
    out = synth(
        allow_overwrite="true",
        default_write="admins",
        presign_expiry="60",
        api_memory_mb="2048",
        noncurrent_version_retention_days="7",
        reconcile_schedule="",
        options={"realm": "corp", "auth_token_expire": "3600"},
    )
    api = out["stacks"]["StratusApi"].template
    fn = only(api, "AWS::Lambda::Function")["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["STRATUS_ALLOW_OVERWRITE"] == "true"
    assert env["STRATUS_DEFAULT_WRITE"] == "admins"
    assert env["STRATUS_PRESIGN_EXPIRY"] == "60"
    assert env["STRATUS_REALM"] == "corp"
    assert env["STRATUS_AUTH_TOKEN_EXPIRE"] == "3600"  # named like a secret, but is none
    assert fn["MemorySize"] == 2048
    storage = out["stacks"]["StratusStorage"].template
    assert 'NoncurrentDays": 7' in json.dumps(storage)
    assert not resources(out["stacks"]["StratusReconcile"].template, "AWS::Events::Rule")


def test_custom_domain_and_access_config(synth, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "stratus.ini"
    config.write_text("[stratus]\nuser.alice = $argon2id$v=19$m=65536,t=3,p=4$...\n")
    out = synth(
        custom_domain="pypi.example.com",
        certificate_arn="arn:aws:acm:us-east-1:111111111111:certificate/abc",
        hosted_zone_id="Z123456ABCDEFG",
        hosted_zone_name="example.com",
        access_config_file=str(config),
    )
    api = out["stacks"]["StratusApi"].template
    domain = only(api, "AWS::ApiGatewayV2::DomainName")["Properties"]
    assert domain["DomainName"] == "pypi.example.com"
    assert domain["DomainNameConfigurations"][0]["CertificateArn"].endswith(":certificate/abc")
    assert only(api, "AWS::ApiGatewayV2::ApiMapping")
    records = resources(api, "AWS::Route53::RecordSet")
    assert sorted(r["Properties"]["Type"] for r in records.values()) == ["A", "AAAA"]
    fn = only(api, "AWS::Lambda::Function")["Properties"]
    assert fn["Environment"]["Variables"]["STRATUS_CONFIG"] == "/opt/stratus-config/stratus.ini"
    assert len(fn["Layers"]) == 2  # dependencies + access config


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("fallback", "mirror", "fallback must be one of"),
        ("log_retention_days", "31", "log_retention_days"),
        ("custom_domain", "pypi.example.com", "certificate_arn"),
        ("options", {"admin_password": "x"}, "looks like a secret"),
        ("api_timeout_seconds", "60", "30 s"),
        ("access_backend", "ldap", "needs access_config_file"),
        ("access_backend", "sqlite", "access_backend must be one of"),
        ("access_secret_kms_key_arn", "alias/stratus", "must be a KMS key ARN"),
        (
            "access_secret_kms_key_arn",
            "arn:aws:kms:eu-west-1:111111111111:alias/stratus",
            "must be a KMS key ARN",
        ),
        ("options", {"auth_signing_key": "x"}, "looks like a secret"),
        ("options", {"auth_secret_id": "arn:..."}, "set by the stacks"),
        ("options", {"auth": "dynamo"}, "set by the stacks"),
        ("options", {"table_name": "other"}, "set by the stacks"),
    ],
)
def test_invalid_settings_are_refused(name, value, message):
    import aws_cdk as cdk

    from infra.settings import DeploySettings

    app = cdk.App(context={name: value})
    with pytest.raises(ValueError, match=message):
        DeploySettings.from_node(app.node)


def test_cdk_json_context_names_only_known_settings():
    from dataclasses import fields

    from infra.settings import DeploySettings

    from .conftest import cdk_json_context

    known = {f.name for f in fields(DeploySettings)}
    settings = {k for k in cdk_json_context() if not k.startswith("@aws-cdk")}
    assert settings == known  # every setting is listed, with its default, in cdk.json
    defaults = DeploySettings()
    for name in settings:
        assert cdk_json_context()[name] == getattr(defaults, name), name
