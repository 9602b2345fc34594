"""The one app factory, used by the Lambda handler and by ``stratus serve``."""

from __future__ import annotations

from fastapi import FastAPI

from ..app.audit import Auditor
from ..app.policy import AccessPolicy
from ..app.publish import Publisher
from ..app.services import Services
from . import admin, errors, files, health, oidc, packages_api, simple, upload, users
from .deps import AppContext
from .observe import RequestObserver


def create_app(services: Services, *, access_log: bool = False) -> FastAPI:
    """The app; ``access_log`` writes a line per request (the local server turns it on)."""
    app = FastAPI(
        title="Stratus",
        summary="A private Python package index",
        redirect_slashes=False,  # every route names its slash variants itself
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    for module in (simple, files, upload, packages_api, users, oidc, admin, health):
        app.include_router(module.router)
    app.state.ctx = AppContext(
        services=services,
        policy=AccessPolicy(
            services.access,
            services.settings,
            token_store=services.tokens,
            minted_tokens=services.minted_tokens,
        ),
        publisher=Publisher(
            services.catalog, services.storage, allow_overwrite=services.settings.allow_overwrite
        ),
    )
    app.state.trusted_publishing = oidc.build(services)
    if services.settings.web_ui:
        from . import ui

        ui.install(app, app.state.ctx)
    errors.install(app, services.settings.realm)
    app.add_middleware(RequestObserver, auditor=Auditor(services.audit), access_log=access_log)
    return app
