"""``GET /health``: checks each backend.

Anyone (a load balancer, a monitor) gets the overall status: 200 ``{"status": "ok"}`` or
503 ``{"status": "error"}``. Which backend failed and why (exception text, which can name
paths, tables and hosts) goes to the log, and to admins in ``checks``.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from .deps import Caller, Context

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class Health(BaseModel):
    """Here, not in ``web.schemas``: the health check is built at every init, the API
    bodies there only with the routes that use them (``web.deferred``)."""

    status: Literal["ok", "error"]
    checks: dict[str, str] | None = Field(
        None, description="Per backend: ok, or the error (admins only)."
    )


@router.get(
    "/health",
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "A backend failed"}},
)
def health(ctx: Context, who: Caller, response: Response) -> Health:
    checks: dict[str, str] = {}
    for name in ("catalog", "storage", "access"):
        try:
            getattr(ctx.services, name).health()
            checks[name] = "ok"
        except Exception as exc:  # report, never raise: this endpoint is for monitoring
            log.warning("health: the %s backend failed", name, exc_info=True)
            checks[name] = f"error: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "error", checks=checks if who.is_admin else None)
