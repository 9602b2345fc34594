"""The remote-server backend (§1.6.6) asking a real HTTP test server that holds the sample."""

from __future__ import annotations

from stratus.adapters.remote_access import RemoteAccess
from tests.support.remote_access_server import RemoteAccessServer


def build(request, tmp_path):
    server = RemoteAccessServer().start()
    request.addfinalizer(server.stop)
    return RemoteAccess(server.url, user=server.user, password=server.password)
