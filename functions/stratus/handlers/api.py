"""Lambda entry point of the HTTP API: Mangum around the FastAPI app.

Importing this module is the Lambda init, which SnapStart snapshots. In a deployment
(``STRATUS_TABLE_NAME`` is set) it builds everything a request needs right here:
settings, adapters and their AWS clients, the FastAPI app and the Mangum handler; no
request pays for them. Without that variable (a test or tool that only imports this
module) nothing is built and nothing fails: the first invocation builds it.

What must differ per execution environment is made again after a SnapStart restore
(``after_restore``): the credential cache's random key, the AWS clients' connections,
the audit log's stream and the ``random`` module's seed.

The init creates hundreds of thousands of objects that live as long as the environment
(modules, routes, pydantic schemas, botocore models); Python's cyclic garbage collector
would walk them again and again while they are made (~60 ms of a cold start here). It is
paused for the init, and what the init made is then frozen (``gc.freeze``: never walked
again, also by the collections warm requests trigger) before it resumes.
"""

from __future__ import annotations

import gc

gc.disable()  # resumed at the end of the init, below

import os  # noqa: E402
from typing import Any  # noqa: E402

from aws_lambda_powertools import Logger  # noqa: E402
from aws_lambda_powertools.logging import correlation_paths  # noqa: E402

from .runtime import build_services, in_deployment, register_after_restore  # noqa: E402
from .telemetry import metrics, tracer  # noqa: E402

logger = Logger(service="stratus-api")


# Lambda's name for an init that no request waits for: the SnapStart snapshot's (paid once
# per published version) or a provisioned environment's (paid before traffic).
INIT_PAID_AHEAD = ("snap-start", "provisioned-concurrency")


def init_paid_ahead() -> bool:
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in INIT_PAID_AHEAD


def build() -> Any:
    """The Mangum handler of a new app on the services the environment describes. Unless
    the init is paid ahead, the routes no install or upload uses are added on their first
    request (``web.deferred``)."""
    from mangum import Mangum

    from ..web.app import create_app

    app = create_app(build_services(), defer_rare_routes=not init_paid_ahead())
    return Mangum(app, lifespan="off", api_gateway_base_path="/")


def preload() -> None:
    """Load what only rare requests use: the web UI's templates (Jinja2), the long
    description renderers (an upload), PyJWT and urllib.request (a trusted-publishing
    mint). An on-demand init leaves them to their first request (~0.3 s CPU that a cold
    start serving pip would pay for nothing); an init paid ahead loads them."""
    from ..web.ui import templating

    environment = templating.environment()
    for name in environment.list_templates():
        environment.get_template(name)
    templating.load_static()
    import urllib.request  # noqa: F401

    import jwt  # noqa: F401
    import readme_renderer.markdown
    import readme_renderer.rst
    import readme_renderer.txt  # noqa: F401


try:
    _asgi_handler: Any = build() if in_deployment() else None
    if _asgi_handler is not None and init_paid_ahead():
        preload()
    if _asgi_handler is not None:
        gc.freeze()  # the init's objects: kept for the environment's life, never walked again
finally:
    gc.enable()


@register_after_restore
def after_restore() -> None:
    """Per-environment state, made anew in each environment restored from the snapshot."""
    import random

    from ..wiring import new_environment

    random.seed()  # the snapshot froze one generator state for every restored environment
    if _asgi_handler is not None:
        ctx = _asgi_handler.app.state.ctx
        ctx.policy.new_environment()
        new_environment(ctx.services)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _asgi_handler
    if _asgi_handler is None:
        _asgi_handler = build()
    return _asgi_handler(event, context)
