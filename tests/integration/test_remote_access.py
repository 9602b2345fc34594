"""The remote-server access backend (§1.6.6) against a real HTTP server started by the test.

Every ``auth.uri.*`` endpoint with its documented params and answer shapes, custom uris,
HTTP basic auth, caching, and what a remote failure does.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest

from stratus.adapters.remote_access import DEFAULT_URIS, RemoteAccess, RemoteAccessError
from stratus.domain.errors import BackendUnavailable, NotFound
from stratus.domain.permissions import PackageAcl
from stratus.ports import AccessBackend, AccessDirectory, UserInfo
from tests.support.remote_access_server import RemoteAccessServer


@pytest.fixture
def remote_server() -> Iterator[RemoteAccessServer]:
    with RemoteAccessServer() as server:
        yield server


def connect(server: RemoteAccessServer, **kwargs) -> RemoteAccess:
    return RemoteAccess(server.url, user=server.user, password=server.password, **kwargs)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_is_a_read_only_backend_and_directory(remote_server):
    access = connect(remote_server)
    assert isinstance(access, AccessBackend) and isinstance(access, AccessDirectory)
    assert not hasattr(access, "create_user")


def test_verify(remote_server):
    access = connect(remote_server)
    assert access.verify_user("dsa", "paranoia")
    assert not access.verify_user("dsa", "wrong")
    assert not access.verify_user("nobody", "paranoia")
    calls = remote_server.calls("verify")
    assert [c.params for c in calls] == [
        {"username": "dsa", "password": "paranoia"},
        {"username": "dsa", "password": "wrong"},
        {"username": "nobody", "password": "paranoia"},
    ]


def test_groups_and_admin(remote_server):
    access = connect(remote_server)
    assert access.groups("dsa") == {"brotatos", "sharkfest"}
    assert access.groups("nobody") == frozenset()
    assert access.is_admin("admin") is True
    assert access.is_admin("dsa") is False
    assert [c.params for c in remote_server.calls("groups")] == [
        {"username": "dsa"},
        {"username": "nobody"},
    ]
    assert [c.params for c in remote_server.calls("admin")] == [
        {"username": "admin"},
        {"username": "dsa"},
    ]


def test_package_acl_from_user_and_group_permissions(remote_server):
    access = connect(remote_server)
    assert access.package_acl("Polite.Requests") == PackageAcl(
        {"dsa": {"r", "w"}}, {"authenticated": {"r"}, "brotatos": {"r", "w"}}
    )
    assert access.package_acl("unknown").empty
    # The normalized name is sent.
    assert [c.params for c in remote_server.calls("user_permissions")] == [
        {"package": "polite-requests"},
        {"package": "unknown"},
    ]
    assert [c.params for c in remote_server.calls("group_permissions")] == [
        {"package": "polite-requests"},
        {"package": "unknown"},
    ]


def test_directory_endpoints(remote_server):
    access = connect(remote_server)
    assert access.list_users() == [
        UserInfo("admin", admin=True),
        UserInfo("donlan"),
        UserInfo("dsa"),
        UserInfo("stevearc"),
    ]
    assert access.get_user("dsa") == UserInfo("dsa", admin=False, groups=["brotatos", "sharkfest"])
    assert access.get_user("nobody") is None
    assert [c.params for c in remote_server.calls("user_data")] == [
        {},
        {"username": "dsa"},
        {"username": "nobody"},
    ]

    assert access.list_groups() == ["brotatos", "sharkfest"]
    assert remote_server.calls("groups")[-1].params == {}  # all groups: no username
    assert access.group_members("brotatos") == ["donlan", "dsa"]
    with pytest.raises(NotFound):
        access.group_members("nogroup")
    assert remote_server.calls("group_members")[0].params == {"group": "brotatos"}

    # Answers name packages as the remote spells them; they come back normalized.
    assert access.user_package_permissions("dsa") == {"polite-requests": {"r", "w"}}
    assert access.user_package_permissions("stevearc") == {"django-unchained": {"r", "w"}}
    assert access.user_package_permissions("nobody") == {}
    assert access.group_package_permissions("brotatos") == {
        "polite-requests": {"r", "w"},
        "pyramid-head": {"r", "w"},
    }
    assert access.group_package_permissions("everyone") == {"pyramid-head": {"r"}}
    assert remote_server.calls("user_package_permissions")[0].params == {"username": "dsa"}
    assert remote_server.calls("group_package_permissions")[0].params == {"group": "brotatos"}


def test_every_endpoint_is_used():
    with RemoteAccessServer() as server:
        access = connect(server)
        access.verify_user("dsa", "paranoia")
        access.groups("dsa")
        access.is_admin("dsa")
        access.package_acl("pyramid-head")
        access.list_users()
        access.group_members("brotatos")
        access.user_package_permissions("dsa")
        access.group_package_permissions("brotatos")
        used = {path for path in (r.path for r in server.requests)}
    assert used == set(DEFAULT_URIS.values())


def test_custom_uris_from_options():
    uris = {name: f"/api/v2/access/{name.replace('_', '-')}" for name in DEFAULT_URIS}
    with RemoteAccessServer(uris=uris) as server:
        options = {
            "auth.backend_server": server.url + "/",
            "auth.user": server.user,
            "auth.password": server.password,
            **{f"auth.uri.{name}": uri for name, uri in uris.items()},
        }
        access = RemoteAccess.from_options(options)
        assert access.verify_user("donlan", "osptony")
        assert access.groups("donlan") == {"brotatos"}
        assert access.is_admin("admin")
        assert access.package_acl("pyramid-head").groups == {
            "brotatos": {"r", "w"},
            "everyone": {"r"},
        }
        assert access.get_user("admin") == UserInfo("admin", admin=True, groups=[])
        assert access.group_members("sharkfest") == ["dsa", "stevearc"]
        assert access.user_package_permissions("donlan") == {}
        assert access.group_package_permissions("sharkfest") == {"django-unchained": {"r", "w"}}
        access.health()
        assert {r.path for r in server.requests} == set(uris.values())


def test_partial_custom_uris_keep_the_other_defaults():
    with RemoteAccessServer(uris={"verify": "/check-password"}) as server:
        access = RemoteAccess.from_options(
            {
                "auth.backend_server": server.url,
                "auth.user": server.user,
                "auth.password": server.password,
                "auth.uri.verify": "/check-password",
            }
        )
        assert access.verify_user("dsa", "paranoia")
        assert access.groups("dsa") == {"brotatos", "sharkfest"}
        assert [r.path for r in server.requests] == ["/check-password", "/groups"]


def test_basic_auth_is_sent(remote_server):
    access = connect(remote_server)
    access.verify_user("dsa", "paranoia")
    access.list_groups()
    expected = basic("pypi-index", "remote-secret")
    assert {r.authorization for r in remote_server.requests} == {expected}


def test_no_auth_header_without_auth_user():
    with RemoteAccessServer(user=None) as server:
        access = RemoteAccess(server.url)
        assert access.verify_user("dsa", "paranoia")
        assert server.requests[0].authorization is None


def test_wrong_service_credentials(remote_server):
    access = RemoteAccess(remote_server.url, user="pypi-index", password="nope")
    assert not access.verify_user("dsa", "paranoia")
    with pytest.raises(BackendUnavailable, match="HTTP 401"):
        access.health()
    with pytest.raises(BackendUnavailable):
        access.groups("dsa")


def test_answers_are_cached_briefly(remote_server):
    access = connect(remote_server, cache_seconds=60)
    for _ in range(5):
        access.groups("dsa")
        access.is_admin("dsa")
        access.package_acl("pyramid-head")
        access.verify_user("dsa", "paranoia")  # never cached here
    counts = {name: len(remote_server.calls(name)) for name in DEFAULT_URIS}
    assert counts["groups"] == counts["admin"] == 1
    assert counts["user_permissions"] == counts["group_permissions"] == 1
    assert counts["verify"] == 5
    access.clear_cache()
    access.groups("dsa")
    assert len(remote_server.calls("groups")) == 2

    uncached = connect(remote_server, cache_seconds=0)
    uncached.groups("dsa")
    uncached.groups("dsa")
    assert len(remote_server.calls("groups")) == 4


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down():
    server = RemoteAccessServer().start()
    access = connect(server, timeout=2)
    assert access.verify_user("dsa", "paranoia")
    server.stop()
    assert not access.verify_user("dsa", "paranoia")
    with pytest.raises(BackendUnavailable, match="unreachable"):
        access.health()
    with pytest.raises(BackendUnavailable):
        access.is_admin("admin")
    with pytest.raises(BackendUnavailable):
        access.list_users()

    never = RemoteAccess(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    assert not never.verify_user("dsa", "paranoia")
    with pytest.raises(RemoteAccessError):
        never.health()


def test_server_errors_and_bad_answers(remote_server):
    access = connect(remote_server)
    remote_server.fail_with = 500
    assert not access.verify_user("dsa", "paranoia")
    with pytest.raises(BackendUnavailable, match="HTTP 500") as info:
        access.package_acl("pyramid-head")
    assert "paranoia" not in str(info.value)
    with pytest.raises(BackendUnavailable):
        access.health()

    remote_server.fail_with = None
    access.health()
    # A server that does not speak the protocol: JSON of the wrong shape.
    bad = RemoteAccess(
        remote_server.url,
        user=remote_server.user,
        password=remote_server.password,
        uris={"admin": "/user_data", "verify": "/groups"},
    )
    with pytest.raises(BackendUnavailable, match="true or false"):
        bad.is_admin("dsa")
    assert not bad.verify_user("dsa", "paranoia")  # a list is not ``true``


def test_configuration_errors():
    with pytest.raises(ValueError, match=r"auth\.backend_server"):
        RemoteAccess.from_options({})
    with pytest.raises(ValueError, match="http"):
        RemoteAccess("file:///etc/passwd")
    with pytest.raises(ValueError, match=r"unknown auth\.uri"):
        RemoteAccess("http://localhost", uris={"verfy": "/v"})
    access = RemoteAccess.from_options(
        {
            "auth.backend_server": "https://auth.example.com",
            "auth.timeout": "2.5",
            "auth.cache_seconds": "0",
        }
    )
    assert access.timeout == 2.5 and access.cache_seconds == 0
