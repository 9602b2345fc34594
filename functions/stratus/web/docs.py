"""``GET /docs``: Swagger UI for ``/openapi.json``, served entirely by this index.

The Swagger UI bundle and stylesheet come from the ``fastapi-offline`` wheel (locked
with hashes like every dependency; no CDN: deployments may have no internet, and a CDN
would see admin traffic). Every URL in the page is relative, so it works behind any
stage path or custom domain. Off with ``pypi.api_docs = false``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse

from ..domain.errors import NotFound

OPENAPI_URL = "/openapi.json"
# The files /docs needs, and their media types; nothing else in the folder is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
ASSET_DIR = files("fastapi_offline") / "static"
# validatorUrl None: Swagger UI would otherwise send the spec's URL to validator.swagger.io.
SWAGGER_PARAMETERS = {"validatorUrl": None, "deepLinking": True}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=OPENAPI_URL.lstrip("/"),  # relative to /docs
        title="Stratus API",
        swagger_js_url="docs/swagger-ui-bundle.js",
        swagger_css_url="docs/swagger-ui.css",
        swagger_favicon_url="docs/favicon.png",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    )
    page.headers["Cache-Control"] = "no-cache"
    return page


@router.get("/docs/{asset}")
def swagger_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise NotFound(f"No documentation asset {asset!r}.")
    return FileResponse(
        str(ASSET_DIR / asset),
        media_type=ASSETS[asset],
        headers={"Cache-Control": "public, max-age=86400"},
    )


def describe_basic_auth(app: FastAPI) -> None:
    """Declare HTTP Basic (password or API token) in the OpenAPI, optional per route."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {})["securitySchemes"] = {
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Username and password, or __token__ and an API token.",
                }
            }
            schema["security"] = [{}, {"basic": []}]
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
