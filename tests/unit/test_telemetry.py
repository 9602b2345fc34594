"""The handlers' tracer: Powertools' where it traces, a no-op elsewhere (same rule)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stratus.handlers import telemetry

IN_LAMBDA = {"LAMBDA_TASK_ROOT": "/var/task"}


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),  # outside Lambda
        (IN_LAMBDA, True),
        ({**IN_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({**IN_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({**IN_LAMBDA, "POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({**IN_LAMBDA, "AWS_SAM_LOCAL": "true"}, False),
        ({**IN_LAMBDA, "AWS_CHALICE_CLI_MODE": "true"}, False),
    ],
)
def test_tracing_is_enabled_where_powertools_would_trace(environ, enabled):
    assert telemetry.tracing_enabled(environ) is enabled


def test_the_no_op_tracer_returns_the_functions_unchanged():
    tracer = telemetry.NoTracer()

    def handler(event, context):
        return {"event": event}

    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler
    assert tracer.capture_method(handler) is handler
    assert tracer.capture_method(capture_response=False)(handler) is handler
    tracer.put_annotation("project", "x")
    tracer.put_metadata("k", {"v": 1})


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [("false", "aws_lambda_powertools.tracing.tracer.Tracer True"), ("true", "NoTracer False")],
)
def test_in_lambda_the_tracer_is_powertools_unless_disabled(disabled, expected):
    """In a fresh process: a real Tracer patches botocore for good."""
    script = (
        "import sys; from stratus.handlers import telemetry as t; "
        "print(type(t.tracer).__qualname__ if isinstance(t.tracer, t.NoTracer) else "
        "type(t.tracer).__module__ + '.' + type(t.tracer).__qualname__, "
        "'aws_xray_sdk' in sys.modules)"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")},
        "LAMBDA_TASK_ROOT": "/var/task",
        "POWERTOOLS_TRACE_DISABLED": disabled,
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == expected.split()
