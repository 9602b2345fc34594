"""Observability in the templates: tracing and Powertools settings on every function, the
alarms (thresholds from the settings) and the operations dashboard."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from .conftest import STACKS
from .test_templates import only, resources

SERVICES = {
    "Api": "stratus-api",
    "Sync": "stratus-sync",
    "Reconcile": "stratus-reconcile",
    "Uploads": "stratus-upload-completion",
}
# The monitoring stack's name of a function, where it is not its stack's name.
FUNCTION_STACKS = {"UploadCompletion": "Uploads"}
# CDK's deploy-time custom resource that writes the bucket's notification configuration:
# CDK's own inline code (no stratus package, no Powertools), run by CloudFormation only.
CDK_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler"


def stratus_functions(stacks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stack name → properties of its Stratus function; nothing else is a function."""
    found: dict[str, dict[str, Any]] = {}
    for name, template in stacks.items():
        for logical_id, fn in resources(template, "AWS::Lambda::Function").items():
            if logical_id.startswith(CDK_NOTIFICATIONS_HANDLER):
                assert name == "Storage"
                continue
            assert name not in found, f"{name} has several functions: extend this test"
            found[name] = fn["Properties"]
    return found


def templates_of(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: out["stacks"][f"Stratus{name}"].template for name in STACKS}


def alarms_by_name(monitoring: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Construct id (the logical id without CDK's hash) → alarm properties."""
    return {
        logical_id[:-8]: alarm["Properties"]
        for logical_id, alarm in resources(monitoring, "AWS::CloudWatch::Alarm").items()
    }


def dashboard_body(monitoring: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The dashboard's JSON body (each reference to a resource as "TOKEN"), and those refs."""
    body = only(monitoring, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "TOKEN" for part in parts)
    return json.loads(text), [part for part in parts if not isinstance(part, str)]


def dashboard_metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, statistic) of every metric the dashboard graphs."""
    found = []
    for widget in body["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if isinstance(metric[0], dict):  # a math expression; its inputs follow
                continue
            options = metric[-1] if isinstance(metric[-1], dict) else {}
            names = metric[:-1] if options else metric
            dims = dict(zip(names[2::2], names[3::2], strict=True))
            found.append((names[0], names[1], dims, options.get("stat", "Average")))
    return found


# --- tracing and Powertools settings --------------------------------------------------------


def test_every_function_is_traced_and_named_for_powertools(templates):
    functions = stratus_functions(templates)
    assert set(functions) == set(SERVICES)
    for name, fn in functions.items():
        assert fn["TracingConfig"] == {"Mode": "Active"}, name
        env = fn["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == SERVICES[name]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Stratus"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert not any("TRACE_DISABLED" in key for key in env), name
        assert fn["LoggingConfig"]["ApplicationLogLevel"] == "INFO"
        # the service is the one the handler's Logger writes in its lines
        handler = importlib.import_module(fn["Handler"].rsplit(".", 1)[0])
        assert handler.logger.service == SERVICES[name]


def test_tracer_and_metrics_are_on_with_the_functions_environment(templates):
    """Powertools in a Lambda environment with exactly the function's variables."""
    for name, fn in stratus_functions(templates).items():
        literal = {k: v for k, v in fn["Environment"]["Variables"].items() if isinstance(v, str)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
        env.update(literal)
        env.update(LAMBDA_TASK_ROOT="/var/task", AWS_LAMBDA_FUNCTION_NAME=f"stratus-{name}")
        code = (
            "import json\n"
            "from stratus.handlers.telemetry import metrics, tracer\n"
            "metrics.add_metric(name='Probe', unit='Count', value=1)\n"
            "emf = metrics.serialize_metric_set()['_aws']['CloudWatchMetrics'][0]\n"
            "print(json.dumps({'tracing': not tracer.disabled, 'emf': emf}))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        got = json.loads(result.stdout.strip().splitlines()[-1])
        assert got["tracing"] is True, name
        # The alarms and the dashboard look the business metrics up by these.
        assert got["emf"]["Namespace"] == "Stratus"
        assert got["emf"]["Dimensions"] == [["service"]]


def test_log_level_maps_onto_lambdas_levels():
    from aws_cdk import aws_lambda as lambda_

    from infra.functions import LAMBDA_LOG_LEVELS
    from infra.settings import LOG_LEVELS

    assert set(LAMBDA_LOG_LEVELS) == set(LOG_LEVELS)
    for level in LAMBDA_LOG_LEVELS.values():
        assert getattr(lambda_.ApplicationLogLevel, level)


# --- alarms --------------------------------------------------------------------------------


def test_alarms_and_their_default_thresholds(templates):
    from infra.settings import DeploySettings

    defaults = DeploySettings()
    alarms = alarms_by_name(templates["Monitoring"])
    topic = {"Ref": next(iter(resources(templates["Monitoring"], "AWS::SNS::Topic")))}
    for alarm in alarms.values():  # every alarm tells the topic, and when it clears
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    latency = alarms["ApiLatencyP99"]
    assert (latency["Namespace"], latency["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == defaults.api_p99_latency_alarm_ms == 3000
    assert latency["EvaluationPeriods"] == 3
    assert {d["Name"] for d in latency["Dimensions"]} == {"ApiId", "Stage"}

    age = alarms["SyncDeadLetterAge"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert "SyncDeadLetters" in json.dumps(age["Dimensions"])
    assert age["Threshold"] == defaults.sync_dead_letter_age_alarm_seconds == 86400
    backlog = alarms["SyncBacklog"]
    assert "SyncEvents" in json.dumps(backlog["Dimensions"])
    assert backlog["Threshold"] == defaults.sync_backlog_alarm_seconds == 900

    drift = alarms["ReconcileDrift"]
    assert (drift["Namespace"], drift["MetricName"]) == ("Stratus", "ReconcileRepairs")
    assert drift["Dimensions"] == [{"Name": "service", "Value": "stratus-reconcile"}]
    assert (drift["Statistic"], drift["Period"]) == ("Sum", 3600)
    assert drift["Threshold"] == defaults.reconcile_drift_alarm_threshold == 1

    throttles = alarms["IndexTableThrottles"]
    assert throttles["Threshold"] == defaults.table_throttle_alarm_threshold == 1
    (expression,) = [m for m in throttles["Metrics"] if "Expression" in m]
    inputs = [m for m in throttles["Metrics"] if "MetricStat" in m]
    operations = set()
    for metric in inputs:
        stat = metric["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/DynamoDB"
        assert stat["Metric"]["MetricName"] == "ThrottledRequests"
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
        dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        assert "Index" in json.dumps(dims["TableName"])  # the index table's name
        operations.add(dims["Operation"])
        assert metric["Id"] in expression["Expression"]
    assert operations == {
        "GetItem",
        "Query",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactWriteItems",
    }

    # Near the limit: 80% of the sync's reserved 5 (rounded up), 80% of the account's 1000.
    sync = alarms["SyncConcurrency"]
    assert (sync["MetricName"], sync["Statistic"]) == ("ConcurrentExecutions", "Maximum")
    assert "SyncFunction" in json.dumps(sync["Dimensions"])
    assert sync["Threshold"] == 4
    assert "ApiConcurrency" not in alarms  # no reserved concurrency: the account alarm covers it
    account = alarms["AccountConcurrency"]
    assert (account["Namespace"], account["MetricName"]) == (
        "AWS/Lambda",
        "ClaimedAccountConcurrency",
    )
    assert "Dimensions" not in account
    assert account["Threshold"] == 800


def test_alarm_thresholds_and_telemetry_follow_the_settings(synth):
    templates = templates_of(
        synth(
            api_5xx_alarm_threshold="9",
            api_p99_latency_alarm_ms="1500",
            concurrency_alarm_percent="50",
            lambda_account_concurrency_limit="3000",
            api_reserved_concurrency="30",
            sync_reserved_concurrency="9",
            sync_backlog_alarm_seconds="600",
            sync_dead_letter_age_alarm_seconds="7200",
            table_throttle_alarm_threshold="10",
            reconcile_drift_alarm_threshold="25",
            log_level="WARNING",
            metrics_namespace="Acme/Packages",
        )
    )
    alarms = alarms_by_name(templates["Monitoring"])
    thresholds = {name: alarm["Threshold"] for name, alarm in alarms.items()}
    assert thresholds["Api5xx"] == 9
    assert thresholds["ApiLatencyP99"] == 1500
    assert thresholds["ApiConcurrency"] == 15  # 50% of 30
    assert thresholds["SyncConcurrency"] == 5  # 50% of 9, rounded up
    assert thresholds["AccountConcurrency"] == 1500
    assert thresholds["SyncBacklog"] == 600
    assert thresholds["SyncDeadLetterAge"] == 7200
    assert thresholds["IndexTableThrottles"] == 10
    assert thresholds["ReconcileDrift"] == 25
    assert alarms["ReconcileDrift"]["Namespace"] == "Acme/Packages"
    for name, fn in stratus_functions(templates).items():
        env = fn["Environment"]["Variables"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Acme/Packages", name
        assert env["POWERTOOLS_LOG_LEVEL"] == "WARNING", name
        assert fn["LoggingConfig"]["ApplicationLogLevel"] == "WARN", name
    body, _ = dashboard_body(templates["Monitoring"])
    business = {m[1] for m in dashboard_metrics(body) if m[0] == "Acme/Packages"}
    assert {"Upload", "ReconcileRepairs", "SyncEventsFailed"} <= business


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("log_level", "VERBOSE", "log_level must be one of"),
        ("metrics_namespace", "AWS/Lambda", "metrics_namespace"),
        ("metrics_namespace", "has spaces", "metrics_namespace"),
        ("concurrency_alarm_percent", "0", "within 1..100"),
        ("concurrency_alarm_percent", "101", "within 1..100"),
        ("api_p99_latency_alarm_ms", "0", "at least 1"),
        ("reconcile_drift_alarm_threshold", "0", "at least 1"),
    ],
)
def test_invalid_monitoring_settings_are_refused(name, value, message):
    import aws_cdk as cdk

    from infra.settings import DeploySettings

    with pytest.raises(ValueError, match=message):
        DeploySettings.from_node(cdk.App(context={name: value}).node)


# --- dashboard -----------------------------------------------------------------------------


def test_dashboard_shows_every_alarm_and_the_operations_metrics(templates):
    from infra.monitoring import BUSINESS_METRICS

    monitoring = templates["Monitoring"]
    dashboard_id = next(iter(resources(monitoring, "AWS::CloudWatch::Dashboard")))
    assert only(monitoring, "AWS::CloudWatch::Dashboard")["Properties"]["DashboardName"] == {
        "Fn::Join": ["", ["Stratus-", {"Ref": "AWS::Region"}]]
    }
    outputs = monitoring["Outputs"]
    assert outputs["DashboardName"]["Value"] == {"Ref": dashboard_id}
    url = json.dumps(outputs["DashboardUrl"]["Value"])
    assert "console.aws.amazon.com/cloudwatch/home" in url and dashboard_id in url

    body, refs = dashboard_body(monitoring)
    (status,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    alarm_ids = set(resources(monitoring, "AWS::CloudWatch::Alarm"))
    assert len(status["properties"]["alarms"]) == len(alarm_ids)
    assert {ref["Fn::GetAtt"][0] for ref in refs if "Fn::GetAtt" in ref} == alarm_ids

    metrics = dashboard_metrics(body)
    graphed = {(ns, name, stat) for ns, name, _, stat in metrics}
    assert {
        ("AWS/ApiGateway", "Count", "Sum"),
        ("AWS/ApiGateway", "4xx", "Sum"),
        ("AWS/ApiGateway", "5xx", "Sum"),
        ("AWS/ApiGateway", "Latency", "p50"),
        ("AWS/ApiGateway", "Latency", "p99"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum"),
        ("AWS/DynamoDB", "ConsumedReadCapacityUnits", "Sum"),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", "Sum"),
        ("AWS/DynamoDB", "ThrottledRequests", "Sum"),
    } <= graphed
    # both queues: the events and their dead letters
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert sum(1 for m in metrics if m[1] == metric) == 2
    # each function: invocations, errors, throttles, duration p50/p99, concurrency
    for metric, stat in [
        ("Invocations", "Sum"),
        ("Errors", "Sum"),
        ("Throttles", "Sum"),
        ("Duration", "p50"),
        ("Duration", "p99"),
        ("ConcurrentExecutions", "Maximum"),
    ]:
        lines = [m for m in metrics if m[:2] == ("AWS/Lambda", metric) and m[3] == stat]
        assert len(lines) == len(SERVICES), metric
        assert all(set(m[2]) == {"FunctionName"} for m in lines)
    # the business metrics, each with the service dimension of the function emitting it
    business = {(name, m[2]["service"]) for m in metrics if m[0] == "Stratus" for name in [m[1]]}
    expected = {
        (name, SERVICES[FUNCTION_STACKS.get(function, function)])
        for function, panels in BUSINESS_METRICS.items()
        # the fill function exists with fallback = cache only
        if FUNCTION_STACKS.get(function, function) in SERVICES
        for names in panels.values()
        for name in names
    }
    assert business == expected
    # what the issue asks for
    names = {name for name, _ in business}
    assert {
        "Upload",
        "Downloads",
        "AuthFailures",
        "ThrottledLogins",
        "SyncEventsUpserted",
        "SyncEventsSkipped",
        "SyncEventsFailed",
        "ReconcileRepairs",
    } <= names


def test_with_a_fallback_the_dashboard_graphs_the_apis_upstream_counts(synth, templates):
    """In redirect mode there is no fill function: the API's own counts are graphed."""
    from infra.monitoring import API_FALLBACK_METRICS

    def api_counts(monitoring: dict[str, Any]) -> set[str]:
        body, _ = dashboard_body(monitoring)
        return {
            m[1]
            for m in dashboard_metrics(body)
            if m[0] == "Stratus" and m[2]["service"] == "stratus-api"
        }

    wanted = {name for names in API_FALLBACK_METRICS.values() for name in names}
    assert wanted == {"UpstreamErrors"}
    assert not wanted & api_counts(templates["Monitoring"])  # fallback = none: not graphed
    redirect = templates_of(synth(fallback="redirect"))["Monitoring"]
    assert wanted <= api_counts(redirect)


def api_metric_names() -> set[str]:
    """Every name the API's request observer counts, for every audited route and result."""
    from stratus.app.audit import Auditor
    from stratus.web.observe import ROUTE_ACTIONS, RequestObserver

    counted: list[str] = []
    sink = SimpleNamespace(count=lambda name, value=1: counted.append(name))

    def respond(route_path: str, status: int):
        async def app(scope, receive, send):
            scope["route"] = SimpleNamespace(path=route_path)
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        return app

    requests = [
        (method, route, status, [])
        for (method, route) in ROUTE_ACTIONS
        for status in (200, 403, 500)
    ]
    requests += [
        ("GET", "/files/{path:path}", 200, []),  # a download
        ("GET", "/simple/", 401, [(b"authorization", b"Basic eDp5")]),  # a failed login
        ("GET", "/simple/", 429, []),  # a throttled login
    ]
    for method, route, status, headers in requests:
        observer = RequestObserver(respond(route, status), auditor=Auditor(None), metrics=sink)
        scope = {
            "type": "http",
            "method": method,
            "path": route.replace("{", "").replace("}", ""),
            "headers": headers,
            "client": ("127.0.0.1", 1),
        }

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        asyncio.run(observer(scope, receive, send))
    return set(counted)


def sync_metric_names(monkeypatch) -> set[str]:
    """What the sync handler counts for each outcome of an event, and for a failure."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from stratus.app import sync
    from stratus.handlers import sync as handler

    monkeypatch.setattr(handler, "services", lambda: SimpleNamespace(catalog=None, storage=None))
    outcomes = iter([list(sync.Outcome), RuntimeError("unreadable")])

    def apply_message(catalog, storage, body):
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(sync, "apply_message", apply_message)
    handler.metrics.clear_metrics()
    try:
        handler.record_handler(SQSRecord({"body": "{}", "messageId": "1"}))
        with pytest.raises(RuntimeError):
            handler.record_handler(SQSRecord({"body": "{}", "messageId": "2"}))
        return set(handler.metrics.metric_set)
    finally:
        handler.metrics.clear_metrics()


def test_the_dashboard_graphs_only_metrics_the_functions_emit(monkeypatch):
    from infra.monitoring import BUSINESS_METRICS, REPAIRS_METRIC

    def shown(function: str) -> set[str]:
        return {name for names in BUSINESS_METRICS[function].values() for name in names}

    assert shown("Api") <= api_metric_names()
    assert shown("Sync") == sync_metric_names(monkeypatch)
    # tests/integration/test_reconcile.py::test_repairs_are_published_as_a_metric runs the
    # reconcile handler and reads this metric from its EMF output.
    assert shown("Reconcile") == {REPAIRS_METRIC} == {"ReconcileRepairs"}


def test_a_fill_function_gets_its_alarm_and_cache_panel(built_layer):
    """With fallback = cache the app adds the fill function and its dead-letter queue."""
    import aws_cdk as cdk
    from aws_cdk import aws_apigatewayv2 as apigwv2
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_sqs as sqs
    from aws_cdk.assertions import Template

    from infra.functions import StratusFunction
    from infra.monitoring import MonitoringStack
    from infra.settings import DeploySettings

    settings = DeploySettings()
    app = cdk.App()
    parts = cdk.Stack(app, "Parts")
    queues = {name: sqs.Queue(parts, name) for name in ("Dead", "Events", "Failed", "FillDead")}
    functions = {
        name: StratusFunction(
            parts,
            name,
            settings=settings,
            handler=f"stratus.handlers.{name.lower()}.handler",
            description=name,
            memory_mb=128,
            timeout_seconds=10,
            environment={},
            layers=[],
        )
        for name in ("Api", "Sync", "Reconcile", "Fill")
    }
    table = dynamodb.Table(
        parts,
        "Index",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
    )
    monitoring = MonitoringStack(
        app,
        "Monitoring",
        settings=settings,
        dead_letters=queues["Dead"],
        events_queue=queues["Events"],
        reconcile_failures=queues["Failed"],
        http_api=apigwv2.HttpApi(parts, "Http"),
        table=table,
        functions=functions,
        fill_dead_letters=queues["FillDead"],
    )
    template = Template.from_stack(monitoring).to_json()
    alarms = alarms_by_name(template)
    assert {"FillDeadLetters", "FillErrors", "FillThrottles"} <= set(alarms)
    assert "FillDead" in json.dumps(alarms["FillDeadLetters"]["Dimensions"])
    body, _ = dashboard_body(template)
    cache = {(m[1], m[2]["service"]) for m in dashboard_metrics(body) if m[0] == "Stratus"}
    assert {("CacheFills", "stratus-fill"), ("UpstreamErrors", "stratus-fill")} <= cache
