"""The app in-process on each deployment's adapters, driven by an HTTP client."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from passlib.hash import sha256_crypt
from starlette.testclient import TestClient

from stratus.adapters.config_access import ConfigAccess
from stratus.settings import Settings
from stratus.web.app import create_app
from stratus.wiring import Services

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

CONFIG = """
[stratus]
pypi.default_read = authenticated
pypi.default_write =
auth.admins = alice
{users}
package.carol-lib.user.carol = rw
package.carol-lib.group.authenticated = r
package.secret-lib.user.alice = rw
package.open-lib.group.everyone = r
"""


def config_options() -> dict[str, str]:
    import configparser

    users = "\n".join(
        f"user.{name} = {sha256_crypt.using(rounds=1000).hash(pw)}" for name, pw in USERS.items()
    )
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(CONFIG.format(users=users))
    return dict(parser.items("stratus"))


def auth(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def make_services(kind: str, request, tmp_path, **settings) -> Services:
    options = config_options()
    access = ConfigAccess.from_options(options)
    merged = {k[5:]: v for k, v in options.items() if k.startswith("pypi.")} | settings
    parsed = Settings.from_mapping(merged)
    if kind == "local":
        from stratus.adapters.local_storage import LocalStorage
        from stratus.adapters.sqlite_catalog import SqliteCatalog

        return Services(
            SqliteCatalog(tmp_path / "index.sqlite3"),
            LocalStorage(tmp_path / "files"),
            access,
            parsed,
        )
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.s3_storage import S3Storage

    table = request.getfixturevalue("dynamo_table")
    bucket = request.getfixturevalue("s3_bucket")
    return Services(DynamoCatalog(table), S3Storage(bucket), access, parsed)


@pytest.fixture(params=["local", "aws"])
def services(request, tmp_path) -> Services:
    return make_services(request.param, request, tmp_path)


@pytest.fixture
def client(services) -> Iterator[TestClient]:
    with TestClient(create_app(services), follow_redirects=False) as c:
        yield c
