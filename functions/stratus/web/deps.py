"""FastAPI dependencies: the app's context, who is calling, and what they may do.

``identity`` answers a credential verified recently (the policy's cache) on the event
loop, at no cost; anything else (a password hash, token and group lookups) runs in a
small thread pool of its own (``CREDENTIAL_THREADS`` threads at a lower CPU priority).
So a password hash never blocks the event loop, and a login storm (each login an
argon2id hash: 64 MiB and ~150 ms of CPU) neither takes the threads other work needs nor
delays logged-in users, whose requests need no thread to authenticate
(``benchmarks/bench_login_storm.py``). FastAPI caches a dependency's value per request,
so a request authenticates once whatever number of dependencies need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..app.policy import AccessPolicy
from ..app.publish import Publisher
from ..app.services import Services
from ..domain.errors import InvalidInput, NotFound
from ..domain.models import Identity
from ..domain.names import normalize
from ..ports import MutableAccessBackend
from .errors import AuthRequired, Forbidden

if TYPE_CHECKING:
    from .ui.sessions import SessionCodec


@dataclass
class AppContext:
    """Everything a request needs, built once with the app."""

    services: Services
    policy: AccessPolicy
    publisher: Publisher
    sessions: SessionCodec | None = None  # the web UI's browser sessions, when it is on


def context_of(request: Request) -> AppContext:
    return request.app.state.ctx


async def app_context(request: Request) -> AppContext:
    """The ``Context`` dependency. ``async``: FastAPI runs a plain ``def`` dependency in a
    worker thread, and under Mangum each invocation is a new root task, for which anyio
    starts a new worker thread: a thread start per request for an attribute lookup."""
    return context_of(request)


Context = Annotated[AppContext, Depends(app_context)]


# Credential checks at once: leave a core to the event loop (and memory: 64 MiB a hash).
CREDENTIAL_THREADS = max(1, (os.cpu_count() or 2) - 1)
CREDENTIAL_NICENESS = 10  # below the event loop's thread: hashes yield the CPU to it


def _lower_priority() -> None:
    # Linux schedules threads one by one; raising one's own niceness needs no privilege.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CREDENTIAL_NICENESS)


# A pool of its own, not the shared one: queued checks hold no thread that others need.
_credential_pool = ThreadPoolExecutor(
    CREDENTIAL_THREADS, thread_name_prefix="stratus-credentials", initializer=_lower_priority
)


async def identity(request: Request) -> Identity:
    """Authenticate the request (``BadCredentials`` → 401); see the module docstring.

    The context comes from the request, not as a ``Context`` sub-dependency: FastAPI
    solves every sub-dependency of every request again, cached or not (~7 µs each), and
    nearly every route depends on this one."""
    ctx = context_of(request)
    source = request.client.host if request.client else None
    header = request.headers.get("authorization")
    who = ctx.policy.identify_cached(header, source)
    if who is None:
        loop = asyncio.get_running_loop()
        who = await loop.run_in_executor(_credential_pool, ctx.policy.identify, header, source)
    request.state.user = who.username  # for the access log and the audit trail
    return who


Caller = Annotated[Identity, Depends(identity)]


async def reader(request: Request) -> Identity:
    """Who reads: Basic credentials, else the web UI's session cookie (a signed-in
    browser following a download link). For GET routes only: a cookie never authorizes
    a change (forms carry CSRF tokens for that)."""
    ctx = context_of(request)
    if (
        ctx.sessions is None
        or request.method not in ("GET", "HEAD")
        or request.headers.get("authorization")
    ):
        return await identity(request)
    from .ui.sessions import COOKIE_NAME

    session = ctx.sessions.loads(request.cookies.get(COOKIE_NAME))
    who = await run_in_threadpool(ctx.sessions.identity, session, ctx.policy)
    request.state.user = who.username
    return who


Reader = Annotated[Identity, Depends(reader)]


def require_user(who: Caller) -> Identity:
    """An authenticated identity, or 401."""
    if not who.authenticated:
        raise AuthRequired("Authentication required.")
    return who


User = Annotated[Identity, Depends(require_user)]


def require_admin(who: User) -> Identity:
    """An admin identity: 401 anonymous, 403 otherwise."""
    if not who.is_admin:
        raise Forbidden("Admin privileges required.")
    return who


def may_read(ctx: AppContext, who: Identity, project: str, missing: str) -> None:
    """401 for an anonymous caller without read access, 404 (``missing``) for others."""
    if not ctx.policy.can_read(who, project):
        if not who.authenticated:
            raise AuthRequired(f"Authentication required to read {project!r}.")
        raise NotFound(missing)


def may_write(ctx: AppContext, who: Identity, project: str, action: str = "upload") -> None:
    """401 for an anonymous caller, 403 for one without write access to ``project``.

    ``action`` names what was refused in the message: upload, delete, yank, unyank.
    """
    if ctx.policy.can_write(who, project):
        return
    if not who.authenticated:
        raise AuthRequired(f"Authentication required to {action}.")
    raise Forbidden(f"User {who.username!r} may not {action} in project {project!r}.")


def _write_action(request: Request) -> str:
    if request.method == "DELETE":
        return "delete"
    last = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in ("yank", "unyank") else "upload"


def may_upload(ctx: AppContext, who: Identity, project: str) -> None:
    """As ``may_write``, also letting a trusted-publishing token upload to its projects."""
    if ctx.policy.can_upload(who, project):
        return
    may_write(ctx, who, project)


def may_upload_anything(ctx: AppContext, who: Identity) -> None:
    """401 for an anonymous caller, 403 for one who may upload to no project at all.

    For uploads whose project is named inside the body: runs before the body is read.
    """
    if ctx.policy.may_upload_somewhere(who):
        return
    if not who.authenticated:
        raise AuthRequired("Authentication required to upload.")
    raise Forbidden(f"User {who.username!r} may not upload.")


def readable_project(project: str, ctx: Context, who: Caller) -> str:
    """The normalized ``{project}`` of the path, if the caller may read it."""
    name = normalize(project)
    may_read(ctx, who, name, f"No project named {name!r}.")
    return name


def writable_project(project: str, request: Request, ctx: Context, who: Caller) -> str:
    """The normalized ``{project}`` of the path, if the caller may write to it."""
    name = normalize(project)
    may_write(ctx, who, name, _write_action(request))
    return name


ReadableProject = Annotated[str, Depends(readable_project)]
WritableProject = Annotated[str, Depends(writable_project)]


def mutable_backend(ctx: Context) -> MutableAccessBackend:
    backend = ctx.services.mutable_access
    if backend is None:
        raise InvalidInput(
            "The access backend is read-only; use pypi.auth = sqlite, dynamo or "
            "aws_secrets_manager to manage users through the API."
        )
    return backend


Directory = Annotated[MutableAccessBackend, Depends(mutable_backend)]
