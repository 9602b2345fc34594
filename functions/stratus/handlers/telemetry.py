"""Powertools Tracer and Metrics shared by the Lambda entry points.

The stacks set ``POWERTOOLS_SERVICE_NAME`` (per function) and
``POWERTOOLS_METRICS_NAMESPACE`` (one namespace). Metrics are CloudWatch embedded metric
format lines flushed at the end of each invocation (``@metrics.log_metrics``, which also
flushes what the app counted through ``adapters.emf_metrics``); traces go to X-Ray with
the AWS SDK calls patched. Outside Lambda the Tracer disables itself.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics, Tracer

# The stacks set the namespace; "Stratus" elsewhere (tests, a hand-made function).
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Stratus"

tracer = Tracer()
metrics = Metrics(namespace=NAMESPACE)
