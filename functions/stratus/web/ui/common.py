"""What every page of the web UI shares: the visitor, rendering, forms, errors.

The UI knows visitors only by their signed session cookie (``sessions``), never by an
``Authorization`` header: a browser sends cached Basic credentials along with
cross-site requests, a form's CSRF token can only come from a page of this site.
Every POST checks that token before it changes anything.

UI routes use ``UiRoute``: the errors the use cases raise become HTML pages (the API's
routes keep their plain-text answers), and an anonymous visitor who needs to sign in is
sent to the sign-in page.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...app.policy import BadCredentials
from ...app.throttle import TooManyAttempts
from ...domain.errors import (
    InvalidInput,
    StratusError,
)
from ...domain.models import ANONYMOUS, Identity
from ..deps import AppContext, context_of
from ..errors import AuthRequired, Forbidden, describe, status_of
from .sessions import COOKIE_NAME, Session, SessionCodec
from .templating import StaticFile, environment, load_static

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024  # every form but the upload
SECURITY_HEADERS = {
    # Scripts and styles only from this site: a README that slipped a <script> past the
    # sanitizer would still not run. Images may come from https (README badges).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Outcomes a redirect may announce (``?done=<code>``): fixed texts, nothing reflected.
DONE_MESSAGES = {
    "signed-in": "You are signed in.",
    "signed-out": "You are signed out.",
    "registered": "Welcome! Your account is ready.",
    "password": "Your password was changed; your other sessions have ended.",
    "revoked": "The token was revoked.",
    "approved": "The user was approved.",
    "admin": "The admin flag was changed.",
    "deleted-user": "The user was deleted.",
    "groups": "The user's groups were saved.",
    "group-created": "The group was created.",
    "group-deleted": "The group was deleted.",
    "registration": "The registration setting was changed.",
    "permission": "The permission was changed.",
    "yanked": "The file was yanked.",
    "unyanked": "The file was un-yanked.",
    "deleted-file": "The file was deleted.",
}


class CsrfRejected(Exception):
    """A state-changing form without this session's CSRF token."""


@dataclass
class WebUi:
    """The UI's per-app parts, built once with the app (``install``)."""

    static: dict[str, StaticFile]
    sessions: SessionCodec


def web_ui(request: Request) -> WebUi:
    return request.app.state.web_ui


def new_session_key() -> str:
    log.warning(
        "No auth.signing_key: web sessions use a random key and end when the server "
        "restarts (set auth.signing_key to keep them)."
    )
    return secrets.token_urlsafe(32)


def build_web_ui(signing_key: str | None) -> WebUi:
    return WebUi(load_static(), SessionCodec(signing_key or new_session_key()))


# --- the visitor ------------------------------------------------------------------------


@dataclass
class Visitor:
    """Who is looking, from the session cookie; a new anonymous session if none is valid."""

    who: Identity
    session: Session
    new_session: bool  # the cookie must be (re)set with the response
    messages: list[tuple[str, str]] = field(default_factory=list)


def visitor_from(request: Request, ctx: AppContext, ui: WebUi) -> Visitor:
    session = ui.sessions.loads(request.cookies.get(COOKIE_NAME))
    if session is None:
        return Visitor(ANONYMOUS, ui.sessions.anonymous(), True)
    who = ui.sessions.identity(session, ctx.policy)
    if session.username is not None and not who.authenticated:
        # The user is gone or changed their password: start over, anonymous.
        return Visitor(ANONYMOUS, ui.sessions.anonymous(), True)
    return Visitor(who, session, False)


def visitor(request: Request) -> Visitor:
    """The visitor (plain ``def``: the user lookup may do I/O, FastAPI runs it in a thread)."""
    current = request.scope.get("stratus.visitor")
    if current is None:
        current = visitor_from(request, context_of(request), web_ui(request))
        done = DONE_MESSAGES.get(request.query_params.get("done", ""))
        if done:
            current.messages.append(("ok", done))
        request.scope["stratus.visitor"] = current
        request.state.user = current.who.username  # for the access log and the audit trail
    return current


Viewer = Annotated[Visitor, Depends(visitor)]


def signed_in(request: Request) -> Visitor:
    """A signed-in visitor, else the sign-in page (``AuthRequired`` → redirect)."""
    current = visitor(request)
    if not current.who.authenticated:
        raise AuthRequired("Sign in to see this page.")
    return current


Member = Annotated[Visitor, Depends(signed_in)]


def admin_visitor(request: Request) -> Visitor:
    current = signed_in(request)
    if not current.who.is_admin:
        raise Forbidden("Only admins may see this page.")
    return current


AdminViewer = Annotated[Visitor, Depends(admin_visitor)]


# --- responses ----------------------------------------------------------------------------


def root_path(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def url_for_path(request: Request, path: str) -> str:
    return root_path(request) + path


def base_url(request: Request) -> str:
    """The site's absolute URL, ending in ``/``."""
    return str(request.base_url).rstrip("/") + "/"


def set_session(request: Request, response: Response, ui: WebUi, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        ui.sessions.dumps(session),
        max_age=ui.sessions.max_age,
        path=root_path(request) + "/",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )


def finish(request: Request, response: Response, current: Visitor) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if current.new_session:
        set_session(request, response, web_ui(request), current.session)
    return response


def render(
    request: Request,
    current: Visitor,
    template: str,
    *,
    status: int = 200,
    active: str = "",
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    ui = web_ui(request)
    ctx = context_of(request)
    root = root_path(request)
    site = base_url(request)

    def static(name: str) -> str:
        return f"{root}/static/{name}?v={ui.static[name].version}"

    values = {
        "site_title": ctx.services.settings.site_title,
        "who": current.who,
        "csrf": current.session.csrf,
        "url": lambda path: root + path,
        "static": static,
        "query": "",
        "active": active,
        "messages": current.messages,
        "index_url": site + "simple/",
        "upload_url": site,
        **context,
    }
    body = environment().get_template(template).render(values)
    response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
    return finish(request, response, current)


def redirect(request: Request, current: Visitor, path: str, done: str | None = None) -> Response:
    """303 to a path of this site (after a POST), announcing ``done`` if given."""
    target = url_for_path(request, path)
    if done:
        base, _, fragment = target.partition("#")
        target = base + ("&" if "?" in base else "?") + urlencode({"done": done})
        target += f"#{fragment}" if fragment else ""
    return finish(request, RedirectResponse(target, status_code=303), current)


def safe_next(value: object, request: Request) -> str:
    """A path of this site to go to after signing in; anything else becomes the home page."""
    root = root_path(request)
    if (
        isinstance(value, str)
        and value.startswith(root + "/")
        and not value.startswith(("//", "/\\"))
        and "\\" not in value
        and len(value) <= 2000
        and not any(ord(c) < 0x20 for c in value)
    ):
        return value
    return root + "/"


# --- forms ------------------------------------------------------------------------------


async def read_form(request: Request, current: Visitor, *, limit: int = MAX_FORM_BYTES) -> FormData:
    """The body of a small form, after checking its size and this session's CSRF token."""
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > limit:
        raise InvalidInput(f"The form is missing or larger than {limit} bytes.")
    form = await request.form(max_files=0, max_fields=100)
    check_csrf(current, form)
    return form


def check_csrf(current: Visitor, form: FormData) -> None:
    if current.new_session or not SessionCodec.csrf_ok(current.session, form.get("csrf_token")):
        raise CsrfRejected()


def field_text(form: FormData, name: str, *, max_length: int = 1000) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > max_length:
        raise InvalidInput(f"The field {name!r} is longer than {max_length} characters.")
    return value.strip()


# --- errors as pages ----------------------------------------------------------------------

# The page's heading for each status (the statuses are the API's: ``errors.status_of``).
_HEADINGS = {
    400: "That did not work",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Already there",
    502: "The upstream index did not answer",
    503: "Unavailable",
}


def _status_and_heading(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, BadCredentials):
        return 401, _HEADINGS[401]
    if isinstance(exc, Forbidden):
        return 403, _HEADINGS[403]
    status = status_of(exc)
    if status == 500:
        return 500, "Something went wrong" if isinstance(exc, StratusError) else "Error"
    return status, _HEADINGS[status]


def error_page(request: Request, exc: Exception) -> Response:
    try:
        current = visitor(request)
    except Exception:  # the backend that failed may be the one naming the visitor
        current = Visitor(ANONYMOUS, SessionCodec.anonymous(), False)
    path = request.url.path
    if isinstance(exc, AuthRequired):
        query = urlencode({"next": path + (f"?{request.url.query}" if request.url.query else "")})
        return finish(
            request,
            RedirectResponse(f"{url_for_path(request, '/login')}?{query}", status_code=303),
            current,
        )
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyAttempts):
        status, heading, detail = 429, "Too many attempts", str(exc)
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, CsrfRejected):
        status, heading = 403, "The form has expired"
        detail = (
            "The form was not sent from a page of this site, or your session changed. "
            "Go back, reload the page and try again."
        )
    elif isinstance(exc, RequestValidationError):
        status, heading, detail = 400, "That did not work", describe(exc.errors())
    else:
        status, heading = _status_and_heading(exc)
        detail = str(exc) or heading
    return render(
        request,
        current,
        "error.html",
        status=status,
        headers=headers,
        heading=heading,
        detail=detail,
        code=status,
        request_path=path,
        back=_back(request),
    )


def _back(request: Request) -> str | None:
    """For a failed POST: the page its form is on."""
    if request.method != "POST":
        return None
    path = request.url.path[len(root_path(request)) :]
    if path == "/register":
        return url_for_path(request, "/register")
    for prefix in ("/account/", "/upload/"):
        if path.startswith(prefix):
            return url_for_path(request, prefix)
    if path.startswith("/manage/project/"):
        name = path.split("/")[3]
        return url_for_path(request, f"/manage/project/{name}/")
    if path.startswith("/manage/"):
        return url_for_path(request, "/manage/")
    return None


HANDLED = (
    StratusError,
    AuthRequired,
    Forbidden,
    BadCredentials,
    TooManyAttempts,
    CsrfRejected,
    RequestValidationError,
)


# The audit action of each form (``web.observe`` records it, allowed or refused, with the
# target the path names or the handler adds through ``audit_target``).
AUDIT_ACTIONS = {
    "/register": "user_create",
    "/account/password": "password_change",
    "/account/tokens": "token_create",
    "/account/tokens/{token_id}/revoke": "token_revoke",
    "/upload/": "upload",
    "/manage/users/{username}/approve": "user_approve",
    "/manage/users/{username}/admin": "user_admin",
    "/manage/users/{username}/delete": "user_delete",
    "/manage/users/{username}/groups": "user_group",
    "/manage/groups": "group_change",
    "/manage/groups/{group}/delete": "group_change",
    "/manage/registration": "register_switch",
    "/manage/project/{name}/permissions": "permission_change",
}
FILE_ACTIONS = {"yank": "yank", "unyank": "unyank", "delete": "delete"}


def audit_target(request: Request, target: str, action: str | None = None) -> None:
    """Name what a form acted on (and, if given, the action) for the audit record."""
    record = dict(getattr(request.state, "audit", None) or {})
    record["target"] = target
    if action is not None:
        record["action"] = action
    request.state.audit = record


class UiRoute(APIRoute):
    """An APIRoute whose errors (dependencies included) are HTML pages, and whose forms
    are audited."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        action = AUDIT_ACTIONS.get(self.path) if "POST" in (self.methods or ()) else None
        files = self.path.startswith("/manage/project/{name}/files/")

        async def route(request: Request) -> Response:
            params = request.path_params
            if files:
                name = params.get("name", "")
                audit_target(
                    request, f"{name}/{params.get('filename')}", FILE_ACTIONS.get(params["action"])
                )
            elif action is not None:
                request.state.audit = {"action": action}
                if "name" in params:
                    audit_target(request, str(params["name"]))
            try:
                return await handler(request)
            except HANDLED as exc:
                return await run_in_threadpool(error_page, request, exc)

        return route
