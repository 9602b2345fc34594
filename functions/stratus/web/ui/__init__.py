"""The web UI: server-rendered pages (Jinja2) for browsing, reading, uploading and
administering, served by the same app as the APIs (``pypi.web_ui``, default on)."""

from __future__ import annotations

from fastapi import FastAPI

from ..deps import AppContext
from .common import build_web_ui


def install(app: FastAPI, ctx: AppContext) -> None:
    """Set up what every route needs of the UI (its session cookies, which identify a
    signed-in visitor to the APIs too) and read its static files now."""
    web_ui = build_web_ui(ctx.services.signing_key)
    app.state.web_ui = web_ui
    ctx.sessions = web_ui.sessions


def add_pages(app: FastAPI) -> None:
    """Add the UI's pages (importing their modules builds their routes)."""
    from . import account_pages, browse_pages, manage_pages

    for module in (browse_pages, account_pages, manage_pages):
        app.include_router(module.router)
