"""A small real HTTP server speaking pypicloud's remote access protocol (manual §1.6.6).

It answers every ``auth.uri.*`` endpoint over the §1.6.2 sample of
``tests/contract/access_backends`` (package names stored as a pypicloud admin spells
them, ``django_unchained``; the ``package`` parameter is looked up normalized), checks HTTP
basic auth, and records every request so tests can assert on paths, params and headers.

    with RemoteAccessServer(uris={"verify": "/auth/check"}) as server:
        backend = RemoteAccess(server.url, user=server.user, password=server.password,
                               uris=server.uris)

``remote_access_server`` is the same as a pytest fixture. ``server.fail_with = 500`` makes
every answer that HTTP error; ``stop()`` takes the server down.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from stratus.adapters.remote_access import DEFAULT_URIS
from stratus.domain.names import normalize
from tests.contract.access_backends import ADMINS, GROUPS, PACKAGES, PASSWORDS

_WORDS = {"r": ["read"], "w": ["write"], "rw": ["read", "write"]}


def pypicloud_name(project: str) -> str:
    """How the sample's projects are spelled in a pypicloud config (``django_unchained``)."""
    return project.replace("-", "_")


@dataclass(frozen=True)
class Recorded:
    path: str
    params: dict[str, str]
    authorization: str | None


class SampleDirectory:
    """The §1.6.2 sample, answering each endpoint as pypicloud's JSON backends do."""

    def __init__(self) -> None:
        self.passwords = dict(PASSWORDS)
        self.admins = set(ADMINS)
        self.groups = {g: list(m) for g, m in GROUPS.items()}
        # stored name -> {"users": {...}, "groups": {...}} with pypicloud's permission words
        self.packages = {
            pypicloud_name(p): {
                "users": {u: _WORDS[v] for u, v in kinds["user"].items()},
                "groups": {g: _WORDS[v] for g, v in kinds["group"].items()},
            }
            for p, kinds in PACKAGES.items()
        }

    def _package(self, name: str) -> dict[str, Any]:
        for stored, entry in self.packages.items():
            if normalize(stored) == normalize(name):
                return entry
        return {"users": {}, "groups": {}}

    def verify(self, username: str = "", password: str = "") -> bool:
        expected = self.passwords.get(username)
        return expected is not None and hmac.compare_digest(expected, password)

    def groups_of(self, username: str | None = None) -> list[str]:
        if username is None:
            return sorted(self.groups)
        return sorted(g for g, members in self.groups.items() if username in members)

    def group_members(self, group: str = "") -> list[str]:
        return sorted(self.groups.get(group, []))

    def admin(self, username: str = "") -> bool:
        return username in self.admins

    def group_permissions(self, package: str = "") -> dict[str, list[str]]:
        return self._package(package)["groups"]

    def user_permissions(self, package: str = "") -> dict[str, list[str]]:
        return self._package(package)["users"]

    def user_package_permissions(self, username: str = "") -> list[dict[str, Any]]:
        return [
            {"package": name, "permissions": entry["users"][username]}
            for name, entry in self.packages.items()
            if username in entry["users"]
        ]

    def group_package_permissions(self, group: str = "") -> list[dict[str, Any]]:
        return [
            {"package": name, "permissions": entry["groups"][group]}
            for name, entry in self.packages.items()
            if group in entry["groups"]
        ]

    def user_data(self, username: str | None = None) -> Any:
        if username is None:
            return [{"username": u, "admin": u in self.admins} for u in sorted(self.passwords)]
        if username not in self.passwords:
            return None
        return {
            "username": username,
            "admin": username in self.admins,
            "groups": self.groups_of(username),
        }

    def answer(self, endpoint: str, params: Mapping[str, str]) -> Any:
        method = {"groups": self.groups_of}.get(endpoint) or getattr(self, endpoint)
        return method(**params)


class RemoteAccessServer:
    """ThreadingHTTPServer on 127.0.0.1 and a free port, serving :class:`SampleDirectory`."""

    def __init__(
        self,
        *,
        uris: Mapping[str, str] | None = None,
        user: str | None = "pypi-index",
        password: str | None = "remote-secret",
        directory: SampleDirectory | None = None,
    ) -> None:
        self.uris = {**DEFAULT_URIS, **(uris or {})}
        self.user = user
        self.password = password
        self.directory = directory or SampleDirectory()
        self.requests: list[Recorded] = []
        self.fail_with: int | None = None
        self._routes = {path: name for name, path in self.uris.items()}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> RemoteAccessServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                authorization = self.headers.get("Authorization")
                server.requests.append(Recorded(parts.path, params, authorization))
                if server.fail_with is not None:
                    return self._send(server.fail_with, {"error": "injected failure"})
                if server.user is not None and not server.authorized(authorization):
                    return self._send(401, {"error": "bad credentials"}, auth=True)
                endpoint = server._routes.get(parts.path)
                if endpoint is None:
                    return self._send(404, {"error": f"no endpoint {parts.path}"})
                try:
                    body = server.directory.answer(endpoint, params)
                except TypeError:
                    return self._send(400, {"error": "bad parameters"})
                self._send(200, body)

            def _send(self, status: int, body: Any, *, auth: bool = False) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if auth:
                    self.send_header("WWW-Authenticate", 'Basic realm="access"')
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def authorized(self, header: str | None) -> bool:
        expected = (
            "Basic " + base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
        )
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def calls(self, endpoint: str) -> list[Recorded]:
        """The recorded requests to one endpoint (by name, e.g. ``"verify"``)."""
        return [r for r in self.requests if r.path == self.uris[endpoint]]

    def __enter__(self) -> RemoteAccessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def remote_access_server() -> Iterator[RemoteAccessServer]:
    with RemoteAccessServer() as server:
        yield server
