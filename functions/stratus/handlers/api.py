"""Lambda entry point of the HTTP API: Mangum around the FastAPI app.

Importing this module is the cold start, so it imports only the logger; the app and its
adapters are built on the first invocation and kept for the container's life.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from .telemetry import metrics, tracer

logger = Logger(service="stratus-api")
_asgi_handler: Any = None


def _build() -> Any:
    from mangum import Mangum

    from ..web.app import create_app
    from ..wiring import services_from_env

    return Mangum(create_app(services_from_env()), lifespan="off", api_gateway_base_path="/")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _asgi_handler
    if _asgi_handler is None:
        _asgi_handler = _build()
    return _asgi_handler(event, context)
