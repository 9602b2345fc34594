"""Trusted publishing over HTTP on both deployments (``stratus serve`` and the Lambda
handler behind the local API Gateway on DynamoDB Local + moto), with a local OIDC issuer
and real twine uploading with the minted token as ``__token__``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.distributions import wheel_bytes, write
from tests.support.oidc_issuer import OidcIssuer, github_claims

from .conftest import SAMPLE_CONFIG, Index, running_serve
from .test_clients import ALICE, BOB, twine_upload

# Generous timeouts: under CI load a request may wait for a cold Lambda path and argon2.
http = httpx.Client(timeout=60)

pytestmark = pytest.mark.slow

AUD = "stratus.test"
REPO, WORKFLOW = "acme/widget", "release.yml"


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as running:
        yield running


@pytest.fixture(params=["serve", "lambda"])
def index(request, tmp_path, issuer, monkeypatch) -> Index:
    if request.param == "lambda":
        monkeypatch.setenv("STRATUS_OIDC_GITHUB_ISSUER", issuer.url)
        monkeypatch.setenv("STRATUS_OIDC_AUDIENCE", AUD)
        return request.getfixturevalue("lambda_index")
    config = tmp_path / "stratus.ini"
    config.write_text(
        SAMPLE_CONFIG.read_text() + f"\noidc.github_issuer = {issuer.url}\noidc.audience = {AUD}\n"
    )
    serve = running_serve(config, tmp_path / "data", tmp_path / "serve.log")
    url = serve.__enter__()
    request.addfinalizer(lambda: serve.__exit__(None, None, None))
    return Index("serve", url, tmp_path / "data")


def add_publisher(index: Index, project: str, auth=ALICE, **fields) -> httpx.Response:
    data = {"issuer": "github", "repository": REPO, "workflow": WORKFLOW, **fields}
    return http.post(f"{index.url}/admin/package/{project}/publishers/", json=data, auth=auth)


def mint(index: Index, token: str) -> httpx.Response:
    return http.post(f"{index.url}/_/oidc/mint-token", json={"token": token}, timeout=30)


def test_publish_with_a_minted_token(index, issuer, tmp_path):
    assert http.get(f"{index.url}/_/oidc/audience").json() == {"audience": AUD}
    added = add_publisher(index, "Widget", environment="release")
    assert added.status_code == 201, added.text
    assert added.json()["pending"] is True  # no such project yet

    id_token = issuer.sign(github_claims(issuer, REPO, WORKFLOW, aud=AUD, environment="release"))
    minted = mint(index, id_token)
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["success"] is True and isinstance(body["expires"], int)
    token = body["token"]

    dist = tmp_path / "dist"
    ok = twine_upload(
        index, [write(dist, wheel_bytes("widget", "1.0"))], ("__token__", token), tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    other = twine_upload(
        index, [write(dist, wheel_bytes("gadget", "1.0"))], ("__token__", token), tmp_path
    )
    assert other.returncode != 0 and "403" in other.stdout + other.stderr

    # Upload only: no delete, no yank, no token management, no admin API.
    auth = ("__token__", token)
    filename = "widget-1.0-py3-none-any.whl"
    assert httpx.delete(f"{index.url}/api/package/widget/{filename}", auth=auth).status_code == 403
    assert (
        http.post(f"{index.url}/api/package/widget/{filename}/yank", auth=auth).status_code == 403
    )
    assert http.post(f"{index.url}/api/tokens/", json={"name": "x"}, auth=auth).status_code == 403
    assert http.get(f"{index.url}/admin/user/", auth=auth).status_code == 403
    assert add_publisher(index, "widget", auth=auth, workflow="other.yml").status_code == 403
    # The file is there, uploaded by the publisher.
    files = http.get(f"{index.url}/api/package/widget/", auth=ALICE).json()["packages"]
    assert [f["filename"] for f in files] == [filename]

    # The same ID token again: refused.
    replay = mint(index, id_token)
    assert replay.status_code == 422
    assert replay.json()["errors"][0]["code"] == "invalid-reuse-token"

    if index.data_dir is not None:  # the mint is in the local audit log, with its claims
        records = [json.loads(line) for line in (index.data_dir / "audit.log").open()]
        mints = [r for r in records if r["action"] == "oidc_mint"]
        assert [m["detail"]["projects"] for m in mints] == [["widget"]]
        assert mints[0]["actor"] == "oidc:github:acme/widget"
        assert mints[0]["detail"]["claims"]["environment"] == "release"

    # uv's burn-token revokes it.
    assert http.post(f"{index.url}/_/oidc/burn-token", json={"token": token}).status_code == 202
    again = twine_upload(
        index, [write(tmp_path / "d2", wheel_bytes("widget", "1.1"))], auth, tmp_path
    )
    assert again.returncode != 0


def test_refusals_say_little(index, issuer):
    assert add_publisher(index, "widget").status_code == 201
    wrong_env = issuer.sign(github_claims(issuer, REPO, "deploy.yml", aud=AUD))
    answer = mint(index, wrong_env)
    assert answer.status_code == 422
    assert answer.json() == {
        "message": "Token request failed",
        "errors": [
            {
                "code": "invalid-publisher",
                "description": "valid token, but no corresponding publisher",
            }
        ],
    }
    unsigned = issuer.sign(github_claims(issuer, REPO, WORKFLOW, aud=AUD), alg="none")
    assert mint(index, unsigned).json()["errors"][0]["code"] == "invalid-token"
    other_aud = issuer.sign(github_claims(issuer, REPO, WORKFLOW, aud="pypi"))
    assert mint(index, other_aud).json()["errors"][0]["code"] == "invalid-token"
    garbage = http.post(f"{index.url}/_/oidc/mint-token", content=b"{not json")
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["code"] == "invalid-payload"
    huge = http.post(f"{index.url}/_/oidc/mint-token", json={"token": "x" * 40_000})
    assert huge.status_code == 422
    # The legacy path older gh-action-pypi-publish releases call works too.
    good = issuer.sign(github_claims(issuer, REPO, WORKFLOW, aud=AUD))
    legacy = http.post(f"{index.url}/_/oidc/github/mint-token", json={"token": good})
    assert legacy.status_code == 200 and legacy.json()["token"].startswith("stratus_oidc")


def test_managing_publishers(index):
    assert add_publisher(index, "widget", auth=None).status_code == 401
    assert add_publisher(index, "widget", auth=BOB).status_code == 403  # a reader
    assert add_publisher(index, "widget", repository="nope").status_code == 400
    created = add_publisher(index, "widget").json()
    assert add_publisher(index, "widget").status_code == 409
    listed = http.get(f"{index.url}/admin/package/widget/publishers/", auth=ALICE).json()
    assert [p["id"] for p in listed["publishers"]] == [created["id"]]
    assert http.get(f"{index.url}/admin/package/widget/publishers", auth=BOB).status_code == 403
    url = f"{index.url}/admin/package/widget/publishers/{created['id']}/"
    assert httpx.delete(url, auth=BOB).status_code == 403
    assert httpx.delete(url, auth=ALICE).json() == {"deleted": created["id"]}
    assert httpx.delete(url, auth=ALICE).status_code == 404
