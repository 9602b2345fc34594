"""``GET /health``: checks each backend and says which one failed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .context import app_context
from .routing import Router

router = Router()


@router.get("/health")
def health(request: Request) -> JSONResponse:
    services = app_context(request).services
    checks: dict[str, str] = {}
    for name in ("catalog", "storage", "access"):
        try:
            getattr(services, name).health()
            checks[name] = "ok"
        except Exception as exc:  # report, never raise: this endpoint is for monitoring
            checks[name] = f"error: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "error", "checks": checks}, status_code=200 if ok else 503
    )
