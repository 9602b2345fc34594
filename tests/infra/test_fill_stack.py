"""The cache fill stack (``fallback = cache``): queue, dead letters, function, least-privilege
IAM for it and for the API's queueing; cdk-nag and cfn-lint on that variant of the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import STACKS
from .test_nag_and_lint import run_cfn_lint
from .test_templates import (
    SQS_CONSUME_ACTIONS,
    log_group_arn,
    objects,
    only,
    resources,
    statements,
    table_arn,
)

CACHE = {
    "fallback": "cache",
    "fallback_base_url": "https://mirror.example",
    "private_projects": "acme-* internal-tools",
    "origin_lock": "true",
}


@pytest.fixture(scope="module")
def cache_synth(synth) -> dict[str, Any]:
    return synth(**CACHE)


@pytest.fixture(scope="module")
def fill(cache_synth) -> dict[str, Any]:
    return cache_synth["stacks"]["StratusFill"].template


@pytest.fixture(scope="module")
def api(cache_synth) -> dict[str, Any]:
    return cache_synth["stacks"]["StratusApi"].template


def test_no_fill_stack_without_fallback_cache(default_synth, synth, templates):
    assert "StratusFill" not in default_synth["stacks"]
    assert "StratusFill" not in synth(fallback="redirect")["stacks"]
    assert "QueueCacheFills" not in json.dumps(templates["Api"])


def test_queue_has_sse_and_dead_letters(fill):
    queues = resources(fill, "AWS::SQS::Queue")
    jobs = next(q for k, q in queues.items() if k.startswith("FillJobs"))["Properties"]
    dlq_id = next(k for k in queues if k.startswith("FillDeadLetters"))
    assert jobs["SqsManagedSseEnabled"] is True
    assert jobs["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 3,
    }
    assert jobs["VisibilityTimeout"] == 6 * 900


def test_fill_function(fill):
    fn = only(fill, "AWS::Lambda::Function")["Properties"]
    assert fn["Handler"] == "stratus.handlers.fill.handler"
    assert (fn["Runtime"], fn["Architectures"]) == ("python3.12", ["arm64"])
    assert (fn["Timeout"], fn["MemorySize"]) == (900, 512)
    assert fn["EphemeralStorage"] == {"Size": 2048}
    env = fn["Environment"]["Variables"]
    assert env["STRATUS_FALLBACK"] == "cache"
    assert env["STRATUS_FALLBACK_BASE_URL"] == "https://mirror.example"
    assert env["STRATUS_PRIVATE_PROJECTS"] == "acme-* internal-tools"
    assert env["STRATUS_ORIGIN_LOCK"] == "true"
    mapping = only(fill, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_fill_role_is_least_privilege(fill):
    got = statements(fill, "FillRole")
    assert set(got) == {
        "WriteOwnLogs",
        "WriteTraces",
        "StoreFilledFiles",
        "ReadWriteIndex",
        "ConsumeEvents",
    }
    assert got["WriteOwnLogs"]["resource"] == log_group_arn(fill, "FillLogs")
    assert got["StoreFilledFiles"] == {
        "actions": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
        "resource": objects("*"),
    }
    from infra.permissions import TABLE_READ_ACTIONS, TABLE_WRITE_ACTIONS

    # No UpdateItem (yanks), no Scan, no batch calls.
    assert got["ReadWriteIndex"]["actions"] == sorted(TABLE_READ_ACTIONS + TABLE_WRITE_ACTIONS)
    table_arn(got["ReadWriteIndex"]["resource"])
    assert got["ConsumeEvents"]["actions"] == SQS_CONSUME_ACTIONS
    assert "FillJobs" in json.dumps(got["ConsumeEvents"]["resource"])


def test_api_may_only_send_to_the_fill_queue(api):
    got = statements(api, "ApiRole")
    assert got["QueueCacheFills"]["actions"] == ["sqs:SendMessage"]
    assert "FillJobs" in json.dumps(got["QueueCacheFills"]["resource"])
    env = only(api, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert "FillJobs" in json.dumps(env["STRATUS_FILL_QUEUE_URL"])
    assert env["STRATUS_FALLBACK"] == "cache"
    assert env["STRATUS_CACHE_UPDATE"] == "authenticated"
    assert env["STRATUS_UPSTREAM_CACHE_SECONDS"] == "600"


def test_fill_dead_letters_raise_an_alarm(cache_synth):
    monitoring = cache_synth["stacks"]["StratusMonitoring"].template
    alarms = resources(monitoring, "AWS::CloudWatch::Alarm")
    assert any(k.startswith("FillDeadLetters") for k in alarms)
    assert any(k.startswith("FillErrors") for k in alarms)


def test_cdk_nag_and_cfn_lint_pass_with_the_fill_stack(cache_synth):
    report = json.loads(Path(cache_synth["outdir"], "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []
    templates = sorted(Path(cache_synth["outdir"]).glob("*.template.json"))
    assert len(templates) == len(STACKS) + 1  # and the fill stack
    result = run_cfn_lint(templates)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("fallback", "mirror", "fallback must be one of"),
        ("fallback_base_url", "ftp://x", "http"),
        ("fill_ephemeral_storage_mb", "100", "512..10240"),
        ("fill_timeout_seconds", "1000", "900"),
    ],
)
def test_invalid_fallback_settings_are_refused(name, value, message):
    import aws_cdk as cdk

    from infra.settings import DeploySettings

    with pytest.raises(ValueError, match=message):
        DeploySettings.from_node(cdk.App(context={name: value}).node)
