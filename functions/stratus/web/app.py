"""The one app factory, used by the Lambda handler and by ``stratus serve``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from .. import __version__
from ..app.audit import Auditor
from ..app.policy import AccessPolicy
from ..app.publish import upload_publisher
from ..app.services import Services
from . import docs, errors, fallback, files, health, simple, upload
from .deferred import DeferredRoutes
from .deps import AppContext
from .observe import RequestObserver

NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    services: Services, *, access_log: bool = False, defer_rare_routes: bool = False
) -> FastAPI:
    """The app on ``services`` (built once by ``stratus.wiring`` or a test);
    ``access_log`` writes a line per request (the local server turns it on);
    ``defer_rare_routes`` leaves every route but those of installs and twine uploads (the
    simple pages, file downloads, the legacy upload, fetch, health) to the first request
    that needs one (``web.deferred``: an on-demand Lambda init)."""
    api_docs = services.settings.api_docs
    app = FastAPI(
        title="Stratus",
        summary="A private Python package index: pypicloud's API, PEP 503/691 simple pages",
        version=__version__,
        redirect_slashes=False,  # every route names its slash variants itself
        openapi_url=docs.OPENAPI_URL if api_docs else None,
        docs_url=None,  # web.docs serves Swagger UI without a CDN
        redoc_url=None,
        # Traces are Powertools' (X-Ray) on AWS. FastAPI's own OpenTelemetry would look
        # for a configured global provider on every request (~6 µs of each): off.
        telemetry=NO_OPENTELEMETRY,
    )
    for module in (simple, files, upload, fallback, health):
        # Each module's routes are complete (prefix and router dependencies applied when
        # they were declared): added as they are, FastAPI does not build them again on the
        # first request as it does for an include_router().
        app.router.routes.extend(module.router.routes)
    if api_docs:
        docs.describe_basic_auth(app)
    app.state.ctx = AppContext(
        services=services,
        policy=AccessPolicy(
            services.access,
            services.settings,
            token_store=services.tokens,
            minted_tokens=services.minted_tokens,
        ),
        publisher=upload_publisher(services),  # with the origin controls as its guard
    )
    if services.settings.web_ui:
        from . import ui

        ui.install(app, app.state.ctx)

    def add_rare_routes() -> None:
        """The surfaces no install or twine upload uses; importing their modules builds
        their routes."""
        from . import admin, oidc, packages_api, upload_sessions, users

        app.state.trusted_publishing = oidc.build(services)
        app.state.upload_sessions = upload_sessions.build(services, app.state.ctx.publisher)
        for module in (upload_sessions, packages_api, users, oidc, admin):
            app.router.routes.extend(module.router.routes)
        if api_docs:
            app.router.routes.extend(docs.router.routes)
        if services.settings.web_ui:
            from . import ui

            ui.add_pages(app)

    if defer_rare_routes:
        deferred = DeferredRoutes(app.router, add_rare_routes)
        app.router.routes.append(deferred)
        describe = app.openapi

        def openapi() -> dict:
            deferred.ensure_added()  # the description covers every route
            return describe()

        app.openapi = openapi  # type: ignore[method-assign]
    else:
        add_rare_routes()
    errors.install(app, services.settings.realm)
    app.add_middleware(
        RequestObserver,
        auditor=Auditor(services.audit),
        metrics=services.metrics,
        access_log=access_log,
    )
    return app
