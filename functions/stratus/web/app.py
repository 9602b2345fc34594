"""The one app factory, used by the Lambda handler and by ``stratus serve``."""

from __future__ import annotations

from starlette.applications import Starlette

from ..app.policy import AccessPolicy
from ..app.publish import Publisher
from ..wiring import Services
from . import admin, errors, files, health, packages_api, simple, upload, users
from .context import AppContext


def create_app(services: Services) -> Starlette:
    routes = [
        route
        for module in (simple, files, upload, packages_api, users, admin, health)
        for route in module.router.routes
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False  # every route names its slash variants itself
    app.state.ctx = AppContext(
        services=services,
        policy=AccessPolicy(services.access, services.settings, token_store=services.tokens),
        publisher=Publisher(
            services.catalog, services.storage, allow_overwrite=services.settings.allow_overwrite
        ),
    )
    errors.install(app, services.settings.realm)
    return app
