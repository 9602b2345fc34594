"""Trusted publishing over HTTP: PyPI's endpoints, so gh-action-pypi-publish, uv and twine
work unchanged, and the publishers of a project for its admins and writers.

- ``GET /_/oidc/audience`` → ``{"audience": ...}`` (404 when no issuer is configured);
- ``POST /_/oidc/mint-token`` (and the legacy ``/_/oidc/github/mint-token`` that older
  gh-action-pypi-publish releases call) ``{"token": "<OIDC JWT>"}`` →
  ``{"success": true, "token": ..., "expires": <unix time>}``, or 4xx
  ``{"message": ..., "errors": [{"code": ..., "description": ...}]}``;
- ``POST /_/oidc/burn-token`` ``{"token": "<minted token>"}`` → 202 (revokes it; ``uv
  publish`` calls it after uploading), whatever the token;
- ``GET/POST /admin/package/<p>/publishers/``, ``DELETE .../publishers/<id>/``: admins
  and writers of the project, with a password or an unscoped token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from ..app.audit import Auditor
from ..app.services import Services
from ..app.trusted_publishing import (
    IssuerKeyCache,
    MintError,
    OidcSettings,
    TrustedPublishing,
)
from ..domain.errors import InvalidInput, NotFound
from ..domain.names import validate
from .bodies import bounded_json
from .deps import Context, User
from .errors import Forbidden
from .routes import both_slashes

router = APIRouter(tags=["trusted publishing"])
MAX_TOKEN_BODY = 16 * 1024  # a GitHub ID token is ~1-2 KB
MAX_PUBLISHER_BODY = 4 * 1024


def build(services: Services) -> TrustedPublishing | None:
    """The use case of a deployment; None when it has no trusted-publishing stores."""
    if not (
        services.publishers and services.replay_guard and services.minted_tokens and services.jwks
    ):
        return None
    settings = OidcSettings.from_options(services.settings.extra)  # bad settings: fail at start
    return TrustedPublishing(
        settings,
        publishers=services.publishers,
        replay_guard=services.replay_guard,
        minted_tokens=services.minted_tokens,
        catalog=services.catalog,
        keys=IssuerKeyCache(
            services.jwks,
            ttl=settings.jwks_cache_seconds,
            min_refresh=settings.jwks_refresh_seconds,
        ),
        auditor=Auditor(services.audit),
    )


def enabled(request: Request) -> TrustedPublishing:
    tp: TrustedPublishing | None = getattr(request.app.state, "trusted_publishing", None)
    if tp is None or not tp.settings.issuers:
        raise NotFound("Trusted publishing is not enabled on this index.")
    return tp


Publishing = Annotated[TrustedPublishing, Depends(enabled)]


def own_host(request: Request) -> str:
    return (request.url.hostname or "").lower()


def _failed(error: MintError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


@router.get("/_/oidc/audience", summary="The audience OIDC tokens must be issued for")
def audience(request: Request, tp: Publishing) -> dict[str, str]:
    return {"audience": tp.audience(own_host(request))}


@router.post("/_/oidc/mint-token", summary="Exchange a CI job's OIDC token for an upload token")
@router.post("/_/oidc/github/mint-token", include_in_schema=False)
async def mint_token(request: Request, tp: Publishing) -> Response:
    try:
        payload = await bounded_json(request, MAX_TOKEN_BODY)
    except ValueError:
        return _failed(MintError("invalid-payload", "malformed or oversized request body"))
    if not isinstance(payload, dict) or not isinstance(payload.get("token"), str):
        return _failed(MintError("invalid-payload", 'the body must be {"token": "..."}'))
    source = request.client.host if request.client else None
    try:
        result = await run_in_threadpool(
            tp.mint, payload["token"], tp.audience(own_host(request)), source=source
        )
    except MintError as error:
        return _failed(error)
    return JSONResponse({"success": True, "token": result.token, "expires": result.expires})


@router.post("/_/oidc/burn-token", status_code=202, summary="Revoke a minted upload token")
async def burn_token(request: Request, tp: Publishing) -> Response:
    try:
        payload = await bounded_json(request, MAX_TOKEN_BODY)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        await run_in_threadpool(tp.burn, payload.get("token"))
    return JSONResponse({}, status_code=202)


# --- publishers of a project ---------------------------------------------------------------


def manageable_project(project: str, ctx: Context, who: User, tp: Publishing) -> str:
    """The validated, normalized ``{project}`` if the caller may manage its publishers."""
    name = validate(project)
    if not TrustedPublishing.may_manage(ctx.policy, who, name):
        raise Forbidden(
            f"Only admins and writers of {name!r} manage its trusted publishers, "
            "with a password or an unscoped token."
        )
    return name


Managed = Annotated[str, Depends(manageable_project)]


@both_slashes(router, "/admin/package/{project}/publishers", "GET")
def list_publishers(project: Managed, tp: Publishing) -> dict[str, list[dict[str, object]]]:
    return {"publishers": [p.public() for p in tp.list_publishers(project)]}


@both_slashes(router, "/admin/package/{project}/publishers", "POST", status_code=201)
async def add_publisher(
    request: Request, project: Managed, who: User, tp: Publishing
) -> dict[str, object]:
    try:
        data = await bounded_json(request, MAX_PUBLISHER_BODY)
    except ValueError:
        raise InvalidInput("The body must be a JSON object of at most 4 KB.") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.")
    assert who.username is not None
    publisher = await run_in_threadpool(tp.add_publisher, project, data, created_by=who.username)
    return publisher.public()


@both_slashes(router, "/admin/package/{project}/publishers/{publisher_id}", "DELETE")
def delete_publisher(project: Managed, publisher_id: str, tp: Publishing) -> dict[str, str]:
    removed = tp.delete_publisher(project, publisher_id)
    return {"deleted": removed.publisher_id}
