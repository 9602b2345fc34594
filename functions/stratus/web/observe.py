"""One place that sees every request: request ids, the access log and the audit trail.

A pure ASGI middleware (streaming responses pass through untouched). For each request it

* gives it an id: API Gateway's request id on Lambda, a fresh one locally, returned as
  ``X-Request-Id`` and kept in ``scope["state"]["request_id"]``;
* after the response, writes one access-log line (method, path, status, bytes, duration,
  user) to the ``stratus.access`` logger when the app was built with ``access_log``;
* records an audit event for every security-relevant request, allowed or refused: writes
  under ``/admin``, ``/api`` and the upload endpoints (the action is named by the matched
  route, the target by its path parameters or by what the handler put in
  ``scope["state"]["audit"]``), failed logins (a 401 to a request that carried
  credentials) and throttled ones (429).

The user comes from ``scope["state"]["user"]``, which the identity dependency sets.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..app.audit import Auditor
from ..ports import MetricsSink

access_log = logging.getLogger("stratus.access")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# (method, route path) → audit action. Routes registered without a trailing slash too.
ROUTE_ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/"): "upload",
    ("POST", "/simple/"): "upload",
    ("POST", "/legacy/"): "upload",
    ("POST", "/api/package/{project}/{filename}"): "upload",
    ("DELETE", "/api/package/{project}/{filename}"): "delete",
    ("POST", "/api/package/{project}/{filename}/yank"): "yank",
    ("POST", "/api/package/{project}/{filename}/unyank"): "unyank",
    ("PUT", "/api/user/{username}/"): "user_create",
    ("POST", "/api/user/password/"): "password_change",
    ("POST", "/api/tokens/"): "token_create",
    ("DELETE", "/api/tokens/{token_id}"): "token_revoke",
    ("PUT", "/admin/user/{username}/"): "user_create",
    ("DELETE", "/admin/user/{username}/"): "user_delete",
    ("POST", "/admin/user/{username}/approve/"): "user_approve",
    ("POST", "/admin/user/{username}/admin/"): "user_admin",
    ("PUT", "/admin/user/{username}/group/{group}/"): "user_group",
    ("DELETE", "/admin/user/{username}/group/{group}/"): "user_group",
    ("PUT", "/admin/group/{group}/"): "group_change",
    ("DELETE", "/admin/group/{group}/"): "group_change",
    ("PUT", "/admin/package/{package}/{kind}/{name}/{perm}/"): "permission_change",
    ("DELETE", "/admin/package/{package}/{kind}/{name}/{perm}/"): "permission_change",
    ("POST", "/admin/register/"): "register_switch",
    ("GET", "/admin/rebuild/"): "rebuild",
    ("POST", "/admin/rebuild/"): "rebuild",
}
SECURITY_METRICS = {"login_failure": "AuthFailures", "throttled": "ThrottledLogins"}
# Routes not named above still get a record when they change something under these.
AUDITED_PREFIXES = ("/admin/", "/api/", "/_/")


def _action(method: str, route_path: str | None, path: str) -> str | None:
    if route_path is not None:
        slashed = route_path if route_path.endswith("/") else route_path + "/"
        for candidate in (route_path, slashed):
            action = ROUTE_ACTIONS.get((method, candidate))
            if action is not None:
                return action
    if method not in READ_METHODS and path.startswith(AUDITED_PREFIXES):
        if path.startswith("/admin/package/"):
            return "permission_change"
        if path.startswith("/admin/"):
            return "user_admin" if "/user/" in path else "group_change"
    return None


TARGET_KINDS = {"username": "user", "group": "group", "token_id": "token"}


def _target(params: dict[str, Any], path: str) -> str:
    if "project" in params or "package" in params:
        name = params.get("project") or params.get("package")
        return f"{name}/{params['filename']}" if "filename" in params else str(name)
    for key, kind in TARGET_KINDS.items():
        if key in params:
            return f"{kind}:{params[key]}"
    return path


def _has_credentials(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


def _claimed_user(scope: Scope) -> str | None:
    """The user name a refused request claimed (Basic auth), never its password."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value[:6].lower() == b"basic ":
            try:
                return base64.b64decode(value[6:], validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return None
    return None


def _result(status: int) -> str:
    if status < 400:
        return "ok"
    return "denied" if status in (401, 403, 429) else "failed"


def _request_id(scope: Scope) -> str:
    event = scope.get("aws.event")
    if isinstance(event, dict):
        found = event.get("requestContext", {}).get("requestId")
        if found:
            return str(found)
    return os.urandom(16).hex()  # as random as a uuid4's hex, without building a UUID


class RequestObserver:
    def __init__(
        self,
        app: ASGIApp,
        *,
        auditor: Auditor,
        metrics: MetricsSink | None = None,
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.auditor = auditor
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        request_id = state["request_id"] = _request_id(scope)
        sent = {"status": 500, "bytes": 0}

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._after(scope, state, sent["status"], sent["bytes"], started)

    def _count(self, action: str | None, route_path: str | None, status: int) -> None:
        """Business metrics: one count per audited action, by result; downloads."""
        if self.metrics is None:
            return
        if route_path is not None and route_path.startswith("/files/") and status < 400:
            self.metrics.count("Downloads")
        if action in SECURITY_METRICS:
            self.metrics.count(SECURITY_METRICS[action])
        elif action is not None:
            result = _result(status)
            name = "".join(part.title() for part in action.split("_"))
            self.metrics.count(name if result == "ok" else f"{name}{result.title()}")
        if status >= 500:
            self.metrics.count("ServerErrors")

    def _after(
        self, scope: Scope, state: dict[str, Any], status: int, size: int, started: float
    ) -> None:
        method, path = scope["method"], scope["path"]
        user = state.get("user")
        source = scope["client"][0] if scope.get("client") else None
        if self.access_log:
            access_log.info(
                '%s "%s %s" %d %d %.1fms user=%s id=%s',
                source or "-",
                method,
                path,
                status,
                size,
                (time.perf_counter() - started) * 1000,
                user or "-",
                state["request_id"],
            )
        route = scope.get("route")
        route_path = getattr(route, "path", None)
        action = _action(method, route_path, path)
        audit = state.get("audit")
        extra: dict[str, Any] = dict(audit) if audit else {}
        action = extra.pop("action", None) or action
        if status == 429 or (status == 401 and _has_credentials(scope)):
            if action is not None:
                extra["attempted"] = action
            action = "login_failure" if status == 401 else "throttled"
            user = user or _claimed_user(scope)
        self._count(action, route_path, status)
        if action is None:
            return
        target = extra.pop("target", None) or _target(scope.get("path_params") or {}, path)
        self.auditor(
            action,
            actor=user,
            source=source,
            target=target,
            result=_result(status),
            request_id=state["request_id"],
            method=method,
            path=path,
            status=status,
            **extra,
        )
