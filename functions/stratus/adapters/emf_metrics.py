"""The MetricsSink port on Powertools Metrics: CloudWatch embedded metric format.

Powertools' ``Metrics`` instances share one metric set, so the handlers'
``@metrics.log_metrics`` flushes what the app counted here, once per invocation.
"""

from __future__ import annotations

import os


class EmfCounter:
    def __init__(self, namespace: str = "Stratus") -> None:
        from aws_lambda_powertools import Metrics

        self._metrics = Metrics(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or namespace
        )

    def count(self, name: str, value: int = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
