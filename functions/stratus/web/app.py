"""The one app factory, used by the Lambda handler and by ``stratus serve``."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..app.audit import Auditor
from ..app.policy import AccessPolicy
from ..app.publish import Publisher
from ..app.services import Services
from . import (
    admin,
    docs,
    errors,
    fallback,
    files,
    health,
    oidc,
    packages_api,
    simple,
    upload,
    upload_sessions,
    users,
)
from .deps import AppContext
from .observe import RequestObserver


def create_app(services: Services, *, access_log: bool = False) -> FastAPI:
    """The app on ``services`` (built once by ``stratus.wiring`` or a test);
    ``access_log`` writes a line per request (the local server turns it on)."""
    api_docs = services.settings.api_docs
    app = FastAPI(
        title="Stratus",
        summary="A private Python package index: pypicloud's API, PEP 503/691 simple pages",
        version=__version__,
        redirect_slashes=False,  # every route names its slash variants itself
        openapi_url=docs.OPENAPI_URL if api_docs else None,
        docs_url=None,  # web.docs serves Swagger UI without a CDN
        redoc_url=None,
    )
    modules = [
        simple,
        files,
        upload,
        upload_sessions,
        packages_api,
        fallback,
        users,
        oidc,
        admin,
        health,
    ]
    if api_docs:
        modules.append(docs)
    for module in modules:
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
        publisher=Publisher(
            services.catalog,
            services.storage,
            allow_overwrite=services.settings.allow_overwrite,
            # origin controls: a name locked to the upstream refuses uploads (403)
            guard=services.fallback.origins.check_publish if services.fallback else None,
        ),
    )
    app.state.trusted_publishing = oidc.build(services)
    if services.settings.web_ui:
        from . import ui

        ui.install(app, app.state.ctx)
    app.state.upload_sessions = upload_sessions.build(services, app.state.ctx.publisher)
    errors.install(app, services.settings.realm)
    app.add_middleware(
        RequestObserver,
        auditor=Auditor(services.audit),
        metrics=services.metrics,
        access_log=access_log,
    )
    return app
