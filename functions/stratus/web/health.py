"""``GET /health``: checks each backend and says which one failed."""

from __future__ import annotations

from fastapi import APIRouter, Response

from .deps import Context
from .schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", responses={503: {"model": Health, "description": "A backend failed"}})
def health(ctx: Context, response: Response) -> Health:
    checks: dict[str, str] = {}
    for name in ("catalog", "storage", "access"):
        try:
            getattr(ctx.services, name).health()
            checks[name] = "ok"
        except Exception as exc:  # report, never raise: this endpoint is for monitoring
            checks[name] = f"error: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "error", checks=checks)
