"""Signing in and out, the account page (password, API tokens) and browser uploads."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from ...app import accounts, tokens
from ...app.accounts import check_password
from ...app.policy import BadCredentials, PendingApproval
from ...domain import distributions, metadata, names, passwords
from ...domain.errors import InvalidInput, NotFound
from ..deps import Context
from ..errors import Forbidden
from .common import (
    Member,
    UiRoute,
    Viewer,
    Visitor,
    audit_target,
    check_csrf,
    field_text,
    finish,
    read_form,
    redirect,
    render,
    safe_next,
    web_ui,
)

router = APIRouter(route_class=UiRoute, include_in_schema=False)
MAX_PASSWORD = 1024
DAY = 24 * 3600
EXPIRY_CHOICES = [
    (str(DAY), "in 1 day"),
    (str(7 * DAY), "in 7 days"),
    (str(30 * DAY), "in 30 days"),
    (str(90 * DAY), "in 90 days"),
    (str(365 * DAY), "in 1 year"),
    ("", "never"),
]
# On Lambda the request (base64, multipart) must stay under 6 MB: about 4.4 MB of file.
LAMBDA_UPLOAD_LIMIT = 4_400_000
LARGE_UPLOAD_HINT = (
    "larger files go straight to the package bucket (see the README: "
    "“Upload a file larger than the API's limit”)"
)


# --- sign in and out ----------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, ctx: Context, current: Viewer, next: str = "") -> Response:
    target = safe_next(next, request)
    if current.who.authenticated:
        return finish(request, RedirectResponse(target, status_code=303), current)
    return render(
        request,
        current,
        "login.html",
        active="login",
        next=target,
        username="",
        can_register=_registration_open(ctx),
    )


@router.post("/login")
async def login(request: Request, ctx: Context, current: Viewer) -> Response:
    form = await read_form(request, current)
    username = field_text(form, "username", max_length=100)
    password = form.get("password")
    target = safe_next(form.get("next"), request)
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        password = ""
    source = request.client.host if request.client else None
    audit_target(request, f"user:{username}")  # a throttled attempt (429) is recorded too
    refused: BadCredentials | None
    try:
        await run_in_threadpool(
            lambda: ctx.policy.authenticate(username, password, source, api_tokens=False)
        )
        state = await run_in_threadpool(ctx.policy.user_state, username)
    except BadCredentials as exc:
        state, refused = None, exc
    else:
        refused = None
    if state is None:
        audit_target(request, f"user:{username}", "login_failure")
        # the reason once the password is right (a pending registration), else the same
        # answer for an unknown user as for a wrong password
        message = str(refused) if isinstance(refused, PendingApproval) else None
        current.messages.append(("error", message or "Invalid username or password."))
        return render(
            request,
            current,
            "login.html",
            status=401,  # the browser shows the page (no Basic challenge: no dialog)
            headers={"WWW-Authenticate": 'Form realm="sign-in page"'},
            active="login",
            next=target,
            username=username,
            can_register=await run_in_threadpool(_registration_open, ctx),
        )
    current.session = web_ui(request).sessions.signed_in(username, state.password_stamp)
    current.new_session = True
    return finish(request, RedirectResponse(target, status_code=303), current)


@router.get("/logout")
def logout_form(request: Request, current: Viewer) -> Response:
    return render(request, current, "logout.html")


@router.post("/logout")
async def logout(request: Request, current: Viewer) -> Response:
    await read_form(request, current)
    current.session = web_ui(request).sessions.anonymous()
    current.new_session = True
    return redirect(request, current, "/", "signed-out")


# --- registration -------------------------------------------------------------------------


def _registration_open(ctx: Context) -> bool:
    backend = ctx.services.mutable_access
    return backend is not None and (not backend.has_admin() or backend.allow_register())


@router.get("/register")
def register_form(
    request: Request, ctx: Context, current: Viewer, username: str = "", token: str = ""
) -> Response:
    if ctx.services.mutable_access is None:
        raise NotFound("Accounts are managed outside Stratus on this server.")
    return render(
        request,
        current,
        "register.html",
        username=username[:100],
        token=token[:500],
        open=_registration_open(ctx),
    )


@router.post("/register")
async def register(request: Request, ctx: Context, current: Viewer) -> Response:
    form = await read_form(request, current)
    backend = ctx.services.mutable_access
    if backend is None:
        raise NotFound("Accounts are managed outside Stratus on this server.")
    username = field_text(form, "username", max_length=100)
    audit_target(request, f"user:{username}")
    token = field_text(form, "token", max_length=500) or None
    password, again = form.get("password"), form.get("confirm_password")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD or password != again:
        raise InvalidInput("The two passwords differ.")
    status = await run_in_threadpool(
        lambda: accounts.register(
            backend, username, password, token=token, signing_key=ctx.services.signing_key
        )
    )
    if status == "pending":
        current.messages.append(
            ("ok", f"Account {username} created: an admin must approve it before you sign in.")
        )
        return render(request, current, "register.html", username="", token="", open=True)
    state = await run_in_threadpool(ctx.policy.user_state, username)
    assert state is not None
    current.session = web_ui(request).sessions.signed_in(username, state.password_stamp)
    current.new_session = True
    return redirect(request, current, "/", "registered")


# --- account ------------------------------------------------------------------------------


def _account_page(
    request: Request, ctx: Context, current: Visitor, new_token: dict | None = None
) -> Response:
    store = ctx.services.tokens
    assert current.who.username is not None
    listed = (
        sorted(store.list_tokens(current.who.username), key=lambda t: -t.created) if store else []
    )
    return render(
        request,
        current,
        "account.html",
        active="account",
        tokens=listed,
        new_token=new_token,
        tokens_available=store is not None,
        can_change_password=ctx.services.mutable_access is not None,
        expiry_choices=EXPIRY_CHOICES,
        now=time.time(),
    )


@router.get("/account/")
@router.get("/account")
def account(request: Request, ctx: Context, current: Member) -> Response:
    return _account_page(request, ctx, current)


@router.post("/account/tokens")
async def create_token(request: Request, ctx: Context, current: Member) -> Response:
    form = await read_form(request, current)
    store = ctx.services.tokens
    if store is None:
        raise InvalidInput("API tokens are not available on this deployment.")
    name = field_text(form, "name", max_length=100)
    listed = [p for p in re.split(r"[\s,]+", field_text(form, "projects", max_length=2000)) if p]
    scope = sorted({names.validate(p) for p in listed}) if listed else None
    expiry = field_text(form, "expires_in")
    if expiry not in {value for value, _ in EXPIRY_CHOICES}:
        raise InvalidInput("Choose an expiry from the list.")
    assert current.who.username is not None
    secret, record = tokens.new_token(
        current.who.username, name, projects=scope, expires_in=float(expiry) if expiry else None
    )
    await run_in_threadpool(store.add_token, record)
    audit_target(request, f"token:{record.token_id}")
    shown = {"name": record.name, "secret": secret}
    return await run_in_threadpool(_account_page, request, ctx, current, shown)


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(request: Request, ctx: Context, current: Member, token_id: str) -> Response:
    await read_form(request, current)
    store = ctx.services.tokens
    record = await run_in_threadpool(store.get_token, token_id) if store else None
    if store is None or record is None or record.username != current.who.username:
        raise NotFound("No such token.")
    await run_in_threadpool(store.delete_token, token_id)
    ctx.policy.forget_token(token_id)  # this process stops accepting it at once
    return redirect(request, current, "/account/#tokens", "revoked")


@router.post("/account/password")
async def change_password(request: Request, ctx: Context, current: Member) -> Response:
    audit_target(request, f"user:{current.who.username}")
    form = await read_form(request, current)
    backend = ctx.services.mutable_access
    if backend is None:
        raise InvalidInput("Passwords are managed outside Stratus on this server.")
    old, new, again = (form.get(k) for k in ("old_password", "new_password", "confirm_password"))
    if not all(isinstance(v, str) and len(v) <= MAX_PASSWORD for v in (old, new, again)):
        raise InvalidInput("Fill in every password field.")
    assert isinstance(old, str) and isinstance(new, str)
    if new != again:
        raise InvalidInput("The two new passwords differ.")
    check_password(new)
    username = current.who.username
    assert username is not None
    source = request.client.host if request.client else None
    try:  # throttled like any sign-in: a stolen session cannot guess the password
        await run_in_threadpool(
            lambda: ctx.policy.authenticate(username, old, source, api_tokens=False)
        )
    except BadCredentials:
        raise InvalidInput("Your current password is wrong.") from None
    hashed = await run_in_threadpool(passwords.hash_password, new)
    await run_in_threadpool(backend.set_password_hash, username, hashed)
    ctx.policy.forget(username)  # other sessions end: their fingerprint is stale
    state = await run_in_threadpool(ctx.policy.user_state, username)
    if state is not None:
        current.session = web_ui(request).sessions.signed_in(username, state.password_stamp)
        current.new_session = True
    return redirect(request, current, "/account/", "password")


# --- upload -------------------------------------------------------------------------------


def upload_limit(request: Request, ctx: Context) -> tuple[int, str]:
    """The largest file a browser may send here, and where larger ones go."""
    limit = ctx.services.settings.max_upload_bytes
    if "aws.event" in request.scope:  # behind API Gateway and Lambda (Mangum)
        return min(limit, LAMBDA_UPLOAD_LIMIT), LARGE_UPLOAD_HINT
    return limit, ""


@router.get("/upload/")
@router.get("/upload")
def upload_form(request: Request, ctx: Context, current: Member) -> Response:
    limit, hint = upload_limit(request, ctx)
    return render(
        request,
        current,
        "upload.html",
        active="upload",
        max_bytes=limit,
        large_upload_hint=hint,
        result=None,
    )


@router.post("/upload/")
async def upload(request: Request, ctx: Context, current: Member) -> Response:
    limit, hint = upload_limit(request, ctx)
    too_large = InvalidInput(
        f"The file is larger than {limit} bytes" + (f"; {hint}." if hint else ".")
    )
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise InvalidInput("The upload has no Content-Length.")
    if int(length) > limit + 64 * 1024:
        raise too_large
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
    except Exception as exc:  # multipart parser errors: bad input
        raise InvalidInput(f"Malformed upload form: {exc}") from None
    check_csrf(current, form)
    content = form.get("content")
    if not isinstance(content, UploadFile) or not content.filename:
        raise InvalidInput("Choose a file to upload.")
    dist = distributions.parse(content.filename)
    audit_target(request, f"{dist.project}/{dist.filename}")
    if not ctx.policy.can_write(current.who, dist.project):
        raise Forbidden(f"You may not upload to the project {dist.project!r}.")
    data = await content.read(limit + 1)
    if len(data) > limit:
        raise too_large
    # As twine does: name and version from the file's own metadata.
    meta = await run_in_threadpool(metadata.extract, data, dist)
    record = await run_in_threadpool(
        lambda: ctx.publisher.upload(
            name=meta.name or dist.project,
            version=meta.version or str(dist.version),
            filename=dist.filename,
            data=data,
            digests={},
            uploader=current.who.username,
        )
    )
    return render(
        request,
        current,
        "upload.html",
        active="upload",
        max_bytes=limit,
        large_upload_hint=hint,
        result=record,
        status=201,
    )
