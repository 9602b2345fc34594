"""Powertools Tracer and Metrics shared by the Lambda entry points.

The stacks set ``POWERTOOLS_SERVICE_NAME`` (per function) and
``POWERTOOLS_METRICS_NAMESPACE`` (one namespace). Metrics are CloudWatch embedded metric
format lines flushed at the end of each invocation (``@metrics.log_metrics``, which also
flushes what the app counted through ``adapters.emf_metrics``); traces go to X-Ray with
the AWS SDK calls patched.

The Tracer exists only where it traces. Powertools' ``Tracer()`` imports the X-Ray SDK
(and through it botocore and an X-Ray client: ~0.2 s CPU of every cold start) even when it
then disables itself, which it does outside Lambda and with ``POWERTOOLS_TRACE_DISABLED``.
In exactly those cases (:func:`tracing_enabled`, Powertools' own rule) ``tracer`` is a
:class:`NoTracer`, whose decorators return the function unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Metrics

from ..settings import TRUE_WORDS

# The stacks set the namespace; "Stratus" elsewhere (tests, a hand-made function).
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Stratus"


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether Powertools' Tracer would trace here: in Lambda (``LAMBDA_TASK_ROOT``), not
    in SAM or Chalice local emulation, and ``POWERTOOLS_TRACE_DISABLED`` not true."""
    # the same words as Powertools' strtobool; anything else is "not disabled", as there
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in TRUE_WORDS:
        return False
    if environ.get("AWS_SAM_LOCAL") or environ.get("AWS_CHALICE_CLI_MODE"):
        return False
    return bool(environ.get("LAMBDA_TASK_ROOT"))


class NoTracer:
    """The Tracer's interface where nothing is traced: the decorators return the function
    as it is (no wrapper, no cost per call), annotations and metadata go nowhere."""

    def capture_lambda_handler(
        self, lambda_handler: Callable[..., Any] | None = None, **_: Any
    ) -> Any:
        if lambda_handler is None:  # used as @tracer.capture_lambda_handler(...)
            return lambda function: function
        return lambda_handler

    def capture_method(self, method: Callable[..., Any] | None = None, **_: Any) -> Any:
        if method is None:
            return lambda function: function
        return method

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        pass


def make_tracer() -> Any:
    """Powertools' Tracer where it traces, else a :class:`NoTracer`."""
    if not tracing_enabled():
        return NoTracer()
    from aws_lambda_powertools import Tracer

    return Tracer()


tracer = make_tracer()
metrics = Metrics(namespace=NAMESPACE)
