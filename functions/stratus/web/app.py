"""The one app factory, used by the Lambda handler and by ``stratus serve``."""

from __future__ import annotations

from fastapi import FastAPI

from ..policy import AccessPolicy
from ..publishing import Publisher
from ..wiring import Services
from . import admin, errors, files, health, packages_api, simple, upload, users
from .context import AppContext


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Stratus package index",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = AppContext(
        services=services,
        policy=AccessPolicy(services.access, services.settings, token_store=services.tokens),
        publisher=Publisher(
            services.catalog, services.storage, allow_overwrite=services.settings.allow_overwrite
        ),
    )
    errors.install(app, services.settings.realm)
    for module in (simple, files, upload, packages_api, users, admin, health):
        app.include_router(module.router)
    return app
