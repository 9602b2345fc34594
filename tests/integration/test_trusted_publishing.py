"""Trusted publishing at the app level: a real local OIDC issuer (HTTP on 127.0.0.1, its
own keys) signs ID tokens; ``TrustedPublishing`` verifies them over HTTP, mints upload
tokens into SQLite, and ``AccessPolicy`` decides what a minted token may do."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from stratus.adapters.file_audit import FileAuditLog
from stratus.adapters.http_jwks import HttpJwksSource
from stratus.adapters.sqlite_access import SqliteAccess
from stratus.adapters.sqlite_catalog import SqliteCatalog
from stratus.adapters.sqlite_publishers import SqlitePublishers
from stratus.app.audit import Auditor
from stratus.app.policy import AccessPolicy, BadCredentials
from stratus.app.trusted_publishing import (
    IssuerKeyCache,
    MintError,
    OidcSettings,
    TrustedPublishing,
)
from stratus.domain.errors import Conflict, InvalidInput
from stratus.domain.models import FileRecord, Identity
from stratus.settings import Settings
from tests.support.concurrency import run_concurrently
from tests.support.oidc_issuer import OidcIssuer, github_claims, gitlab_claims

AUD = "stratus.example"
REPO, WORKFLOW = "acme/widget", "release.yml"


class World:
    def __init__(self, tmp_path, github: OidcIssuer, gitlab: OidcIssuer, generic: OidcIssuer):
        self.github, self.gitlab, self.generic = github, gitlab, generic
        self.catalog = SqliteCatalog(tmp_path / "index.sqlite3")
        self.state = SqlitePublishers(tmp_path / "oidc.sqlite3")
        self.settings = OidcSettings.from_options(
            {
                "oidc.github_issuer": github.url,
                "oidc.gitlab_issuer": gitlab.url,
                "oidc.issuer.ci.url": generic.url,
                "oidc.issuer.ci.claims": "sub pipeline",
                "oidc.audience": AUD,
            }
        )
        self.keys = IssuerKeyCache(HttpJwksSource(), min_refresh=0)
        self.tp = TrustedPublishing(
            self.settings,
            publishers=self.state,
            replay_guard=self.state,
            minted_tokens=self.state,
            catalog=self.catalog,
            keys=self.keys,
        )
        self.policy = AccessPolicy(
            SqliteAccess(tmp_path / "access.sqlite3"),
            Settings(default_read=("authenticated",)),
            minted_tokens=self.state,
        )

    def add_file(self, project: str) -> None:
        self.catalog.add_file(
            FileRecord(project, f"{project}-1.0.tar.gz", "1.0", "ab" * 32, 10, time.time())
        )

    def publish_from_github(self, project: str = "widget", **fields) -> None:
        data = {"issuer": "github", "repository": REPO, "workflow": WORKFLOW, **fields}
        self.tp.add_publisher(project, data, created_by="alice")

    def github_token(self, **changes) -> str:
        claims = github_claims(self.github, REPO, WORKFLOW, aud=AUD)
        claims.update(changes)
        return self.github.sign(claims)

    def identify(self, token: str) -> Identity:
        basic = base64.b64encode(f"__token__:{token}".encode()).decode()
        return self.policy.identify(f"Basic {basic}")


@pytest.fixture(scope="module")
def issuers():
    with OidcIssuer() as github, OidcIssuer() as gitlab, OidcIssuer(path="/realms/ci") as generic:
        yield github, gitlab, generic


@pytest.fixture
def world(tmp_path, issuers) -> World:
    for issuer in issuers:  # undo what a test did to the shared issuers
        issuer.down, issuer.discovery_issuer = False, None
    return World(tmp_path, *issuers)


def refused(world: World, token: object, code: str, audience: str = AUD) -> MintError:
    with pytest.raises(MintError) as caught:
        world.tp.mint(token, audience)
    assert caught.value.code == code, caught.value.description
    body = caught.value.body()
    assert body["errors"][0]["code"] == code
    assert "message" in body
    return caught.value


# --- success -----------------------------------------------------------------------------


def test_mint_success_upload_only_scoped_and_audited(world, caplog):
    world.add_file("widget")
    world.add_file("other")
    world.publish_from_github()
    before = time.time()
    with caplog.at_level(logging.INFO, logger="stratus.audit"):
        result = world.tp.mint(world.github_token(), AUD)
    assert result.projects == ("widget",)
    assert before + 900 - 5 <= result.expires <= time.time() + 900 + 1

    who = world.identify(result.token)
    assert who.upload_only and not who.is_admin and who.groups == frozenset()
    assert who.username == "oidc:github:acme/widget"
    assert world.policy.can_upload(who, "widget")
    assert not world.policy.can_upload(who, "other")  # another project
    assert not world.policy.can_write(who, "widget")  # delete, yank: not uploads
    assert not world.policy.can_write(who, "other")
    assert world.policy.can_read(who, "widget")  # its own project
    assert not world.policy.can_read(who, "other")  # not "authenticated"

    # One structured audit record with who/what/commit, never the token.
    records = [r for r in caplog.records if r.name == "stratus.audit"]
    assert len(records) == 1
    entry = json.loads(records[0].getMessage())
    assert entry == records[0].audit
    assert entry["event"] == "oidc_mint"
    assert entry["projects"] == ["widget"]
    assert entry["claims"]["repository"] == REPO
    assert entry["claims"]["sha"] == "0123456789abcdef0123456789abcdef01234567"
    assert entry["claims"]["job_workflow_ref"].startswith(f"{REPO}/.github/workflows/{WORKFLOW}@")
    assert entry["claims"]["actor"] == "octocat"
    assert result.token.rpartition("_")[2] not in records[0].getMessage()
    stored = world.state.minted_token_claims(entry["token_id"])
    assert stored["repository"] == REPO and stored["jti"]


def test_minted_token_only_with_the_token_user_name(world):
    world.publish_from_github()
    token = world.tp.mint(world.github_token(), AUD).token
    basic = base64.b64encode(f"alice:{token}".encode()).decode()
    with pytest.raises(BadCredentials):
        world.policy.identify(f"Basic {basic}")
    with pytest.raises(BadCredentials):
        world.identify(token[:-2] + ("aa" if not token.endswith("aa") else "bb"))


def test_burn_revokes_a_minted_token(world):
    world.publish_from_github()
    token = world.tp.mint(world.github_token(), AUD).token
    assert not world.tp.burn(token[:-3] + "xyz")  # wrong secret: nothing happens
    assert world.identify(token).upload_only
    assert world.tp.burn(token)
    with pytest.raises(BadCredentials):
        world.identify(token)
    assert not world.tp.burn(token)
    assert not world.tp.burn("stratus_abc_def") and not world.tp.burn(None)


def test_minted_token_expires(world):
    world.publish_from_github()
    world.tp.clock = lambda: time.time() - 901  # minted 901 s ago: 15 minutes are over
    token = world.tp.mint(world.github_token(), AUD).token
    with pytest.raises(BadCredentials):
        world.identify(token)


def test_one_publisher_on_several_projects_scopes_the_token_to_all(world):
    for project in ("widget", "widget-extras"):
        world.add_file(project)
        world.publish_from_github(project)
    world.add_file("unrelated")
    result = world.tp.mint(world.github_token(), AUD)
    assert result.projects == ("widget", "widget-extras")
    who = world.identify(result.token)
    assert world.policy.can_upload(who, "widget-extras")
    assert not world.policy.can_upload(who, "unrelated")


def test_environment_optional_and_case_insensitive(world):
    world.publish_from_github(environment="Release")
    token = world.github_token(environment="RELEASE")
    assert world.tp.mint(token, AUD).projects == ("widget",)


def test_es256_keys_work(world):
    key = world.github.add_ec_key()
    world.publish_from_github()
    token = world.github.sign(github_claims(world.github, REPO, WORKFLOW, aud=AUD), key=key)
    assert world.tp.mint(token, AUD).projects == ("widget",)
    world.github.keys.remove(key)


def test_audience_list_containing_ours(world):
    world.publish_from_github()
    assert world.tp.mint(world.github_token(aud=["other", AUD]), AUD).projects == ("widget",)


# --- publisher mismatches -------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"repository": "acme/gadget"},
        {"repository": "evil/widget"},
        {"job_workflow_ref": f"{REPO}/.github/workflows/other.yml@refs/tags/v1.0"},
        {"job_workflow_ref": f"evil/fork/.github/workflows/{WORKFLOW}@refs/tags/v1.0"},
        {"job_workflow_ref": f"{REPO}/.github/workflows/{WORKFLOW}@refs/heads/elsewhere"},
        {"job_workflow_ref": None},
        {"environment": "staging"},
        {"environment": None},
        {"repository_owner_id": "666"},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_wrong_repository_workflow_or_environment(world, changes):
    world.publish_from_github(environment="release", repository_owner_id="4242")
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD, environment="release")
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    error = refused(world, world.github.sign(claims), "invalid-publisher")
    assert "staging" not in error.description and "evil" not in error.description


def test_repository_matches_case_insensitively(world):
    world.publish_from_github()
    claims = github_claims(world.github, "Acme/Widget", WORKFLOW, aud=AUD)
    assert world.tp.mint(world.github.sign(claims), AUD).projects == ("widget",)


def test_no_publisher_at_all(world):
    refused(world, world.github_token(), "invalid-publisher")


# --- token verification ----------------------------------------------------------------------


def test_expired(world):
    world.publish_from_github()
    now = int(time.time())
    refused(world, world.github_token(iat=now - 600, nbf=now - 600, exp=now - 60), "invalid-token")


def test_expiry_within_the_leeway_is_accepted(world):
    world.publish_from_github()
    now = int(time.time())
    assert world.tp.mint(world.github_token(exp=now - 10), AUD).projects == ("widget",)


def test_not_yet_valid(world):
    world.publish_from_github()
    now = int(time.time())
    refused(world, world.github_token(nbf=now + 600, exp=now + 900), "invalid-token")
    refused(world, world.github_token(iat=now + 600, nbf=None, exp=now + 900), "invalid-token")


def test_wrong_audience(world):
    world.publish_from_github()
    refused(world, world.github_token(aud="pypi"), "invalid-token")
    refused(world, world.github_token(), "invalid-token", audience="another.example")


def test_wrong_issuer(world):
    world.publish_from_github()
    unknown = world.github_token(iss="https://token.actions.githubusercontent.com")
    refused(world, unknown, "invalid-payload")
    # A token of the GitLab issuer claiming to come from GitHub: the GitHub keys refuse it.
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD)
    refused(world, world.gitlab.sign(claims), "invalid-token")


def test_bad_signature(world):
    world.publish_from_github()
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD)
    forged = world.github.sign(claims, key=world.github.foreign_key)  # same kid, other key
    refused(world, forged, "invalid-token")
    good = world.github.sign(claims)
    head, payload, signature = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["repository"] = "acme/widget"
    body = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    refused(world, f"{head}.{body}.{signature[::-1]}", "invalid-token")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_alg_none_and_hmac_are_refused(world, alg):
    world.publish_from_github()
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD)
    refused(world, world.github.sign(claims, alg=alg), "invalid-token")


@pytest.mark.parametrize("missing", ["jti", "exp", "iat", "aud"])
def test_required_claims(world, missing):
    world.publish_from_github()
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD)
    del claims[missing]
    refused(world, world.github.sign(claims), "invalid-token")


@pytest.mark.parametrize("garbage", [None, 42, "", "not.a.jwt", "x" * 9000, {"token": "x"}])
def test_garbage(world, garbage):
    refused(world, garbage, "invalid-token")


def test_replayed_jti(world):
    world.publish_from_github()
    token = world.github_token()
    world.tp.mint(token, AUD)
    refused(world, token, "invalid-reuse-token")


def test_concurrent_mints_of_one_token_give_one_token(world):
    world.publish_from_github()
    token = world.github_token()
    results = run_concurrently([lambda: world.tp.mint(token, AUD)] * 6)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert {r.code for r in results if isinstance(r, MintError)} == {"invalid-reuse-token"}


def test_refused_token_does_not_use_up_its_jti(world):
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD)
    token = world.github.sign(claims)
    refused(world, token, "invalid-publisher")  # no publisher yet
    world.publish_from_github()
    assert world.tp.mint(token, AUD).projects == ("widget",)


# --- issuer keys ------------------------------------------------------------------------------


def test_key_rotation_at_the_issuer(world):
    world.publish_from_github()
    world.tp.mint(world.github_token(), AUD)  # keys cached now
    old = world.github.key
    fetches = world.github.requests["jwks"]
    world.github.rotate()  # the old key leaves the JWKS
    assert world.tp.mint(world.github_token(), AUD).projects == ("widget",)
    assert world.github.requests["jwks"] == fetches + 1  # refetched for the unknown kid
    stale = world.github.sign(github_claims(world.github, REPO, WORKFLOW, aud=AUD), key=old)
    refused(world, stale, "invalid-token")


def test_unknown_kids_refetch_at_most_once_per_interval(world):
    clock = [1000.0]
    world.tp.keys = IssuerKeyCache(
        HttpJwksSource(), ttl=600, min_refresh=30, clock=lambda: clock[0]
    )
    world.publish_from_github()
    world.tp.mint(world.github_token(), AUD)
    fetches = world.github.requests["jwks"]
    claims = github_claims(world.github, REPO, WORKFLOW, aud=AUD)
    for n in range(5):
        bogus = world.github.sign(claims, headers={"kid": f"random-{n}"})
        refused(world, bogus, "invalid-token")
    assert world.github.requests["jwks"] == fetches  # within 30 s of the last fetch
    clock[0] += 31
    refused(world, world.github.sign(claims, headers={"kid": "random-x"}), "invalid-token")
    assert world.github.requests["jwks"] == fetches + 1
    clock[0] += 600  # the cache's TTL: one refetch, then served from the cache again
    world.tp.mint(world.github_token(), AUD)
    world.tp.mint(world.github_token(), AUD)
    assert world.github.requests["jwks"] == fetches + 2


def test_issuer_down_and_keys_already_known(world):
    clock = [1000.0]
    world.tp.keys = IssuerKeyCache(
        HttpJwksSource(), ttl=600, min_refresh=30, clock=lambda: clock[0]
    )
    world.publish_from_github()
    world.github.down = True
    refused(world, world.github_token(), "issuer-unavailable")
    world.github.down = False
    clock[0] += 31
    world.tp.mint(world.github_token(), AUD)
    world.github.down = True
    clock[0] += 700  # cache expired, refresh fails: the known keys still verify
    assert world.tp.mint(world.github_token(), AUD).projects == ("widget",)


def test_discovery_naming_another_issuer_is_not_trusted(world):
    world.publish_from_github()
    world.github.discovery_issuer = "https://evil.example"
    refused(world, world.github_token(), "issuer-unavailable")


# --- pending publishers ------------------------------------------------------------------------


def test_pending_publisher_for_a_new_project(world):
    world.publish_from_github("brand-new")
    assert world.state.list_publishers("brand-new")[0].pending
    who = world.identify(world.tp.mint(world.github_token(), AUD).token)
    assert world.policy.can_upload(who, "brand-new")
    assert not world.state.list_publishers("brand-new")[0].pending  # now a regular one


def test_pending_publisher_void_once_someone_else_created_the_project(world):
    world.publish_from_github("brand-new")
    world.add_file("brand-new")  # somebody else uploaded first
    refused(world, world.github_token(), "invalid-pending-publisher")


# --- GitLab and generic issuers ---------------------------------------------------------------


def test_gitlab(world):
    world.tp.add_publisher(
        "widget",
        {"issuer": "gitlab", "repository": "Acme/Sub/Widget", "workflow": "ci/release.yml"},
        created_by="alice",
    )
    good = gitlab_claims(world.gitlab, "acme/sub/widget", "ci/release.yml", aud=AUD)
    result = world.tp.mint(world.gitlab.sign(good), AUD)
    assert result.projects == ("widget",)
    assert result.audit["claims"]["project_path"] == "acme/sub/widget"
    for bad in (
        gitlab_claims(world.gitlab, "acme/sub/widget", ".gitlab-ci.yml", aud=AUD),
        gitlab_claims(world.gitlab, "acme/sub/gadget", "ci/release.yml", aud=AUD),
        {**good, "jti": "other", "project_path": "acme/other"},
        {**good, "jti": "other2", "ref_path": "refs/heads/other"},
    ):
        refused(world, world.gitlab.sign(bad), "invalid-publisher")


def test_gitlab_environment(world):
    world.tp.add_publisher(
        "widget",
        {
            "issuer": "gitlab",
            "repository": "acme/widget",
            "workflow": ".gitlab-ci.yml",
            "environment": "prod",
        },
        created_by="alice",
    )
    ok = gitlab_claims(world.gitlab, "acme/widget", aud=AUD, environment="prod")
    assert world.tp.mint(world.gitlab.sign(ok), AUD).projects == ("widget",)
    bad = gitlab_claims(world.gitlab, "acme/widget", aud=AUD, environment="dev")
    refused(world, world.gitlab.sign(bad), "invalid-publisher")


def test_generic_issuer_with_claim_rules(world):
    world.tp.add_publisher(
        "widget",
        {"issuer": "ci", "claims": {"sub": "pipeline:widget", "pipeline": "release", "org": "a"}},
        created_by="alice",
    )
    claims = world.generic.claims(AUD, sub="pipeline:widget", pipeline="release", org="a")
    result = world.tp.mint(world.generic.sign(claims), AUD)
    assert result.projects == ("widget",)
    assert world.identify(result.token).username == "oidc:ci:pipeline:widget"
    other = world.generic.claims(AUD, sub="pipeline:widget", pipeline="release", org="b")
    refused(world, world.generic.sign(other), "invalid-publisher")


# --- managing publishers ---------------------------------------------------------------------


def test_who_may_manage_publishers(world):
    policy = world.policy
    policy.backend.create_user("writer", "x")
    policy.backend.set_permission("widget", "user", "writer", "w", True)
    admin = Identity("root", is_admin=True)
    writer = Identity("writer")
    reader = Identity("reader")
    scoped = Identity("writer", upload_scope=frozenset({"widget"}))
    minted = Identity(
        "oidc:github:acme/widget", upload_scope=frozenset({"widget"}), upload_only=True
    )
    assert TrustedPublishing.may_manage(policy, admin, "widget")
    assert TrustedPublishing.may_manage(policy, writer, "widget")
    assert not TrustedPublishing.may_manage(policy, writer, "other")
    assert not TrustedPublishing.may_manage(policy, reader, "widget")
    assert not TrustedPublishing.may_manage(policy, scoped, "widget")
    assert not TrustedPublishing.may_manage(policy, minted, "widget")
    assert not TrustedPublishing.may_manage(policy, Identity(), "widget")


def test_add_list_delete_publishers(world):
    world.add_file("widget")
    world.publish_from_github(environment="Release")
    with pytest.raises(Conflict):
        world.publish_from_github(environment="release")  # the same publisher
    listed = world.tp.list_publishers("Widget")
    assert [p.public() for p in listed] == [
        {
            "id": listed[0].publisher_id,
            "project": "widget",
            "issuer": "github",
            "repository": REPO,
            "workflow": WORKFLOW,
            "environment": "release",
            "pending": False,
            "created": int(listed[0].created),
            "created_by": "alice",
        }
    ]
    world.tp.delete_publisher("widget", listed[0].publisher_id)
    assert world.tp.list_publishers("widget") == []
    refused(world, world.github_token(environment="release"), "invalid-publisher")


@pytest.mark.parametrize(
    "data",
    [
        {"issuer": "bitbucket", "repository": REPO, "workflow": WORKFLOW},
        {"repository": REPO, "workflow": WORKFLOW},
        {"issuer": "github", "repository": "acme", "workflow": WORKFLOW},
        {"issuer": "github", "repository": REPO, "workflow": ".github/workflows/release.yml"},
        {"issuer": "github", "repository": REPO, "workflow": "release.sh"},
        {"issuer": "github", "repository": REPO, "workflow": WORKFLOW, "extra": "x"},
        {"issuer": "github", "repository": REPO, "workflow": WORKFLOW, "environment": "a\nb"},
        {"issuer": "github", "repository": REPO, "workflow": WORKFLOW, "environment": "x" * 300},
        {"issuer": "github", "repository": REPO, "workflow": WORKFLOW, "repository_owner_id": "a"},
        {"issuer": "gitlab", "repository": "widget", "workflow": ".gitlab-ci.yml"},
        {"issuer": "gitlab", "repository": "acme/widget", "workflow": "../x.yml"},
        {"issuer": "ci", "claims": {"pipeline": "release"}},  # the lookup claim "sub" missing
        {"issuer": "ci", "claims": {"sub": "x", "pipeline": "y", "aud": "z"}},
        {"issuer": "ci", "claims": "sub=x"},
    ],
)
def test_invalid_publishers_are_refused(world, data):
    with pytest.raises(InvalidInput):
        world.tp.add_publisher("widget", data, created_by="alice")
    assert world.state.list_publishers("widget") == []


def test_invalid_project_name(world):
    with pytest.raises(InvalidInput):
        world.tp.add_publisher(
            "bad name!",
            {"issuer": "github", "repository": REPO, "workflow": WORKFLOW},
            created_by="alice",
        )


def test_not_enabled_without_issuers(world):
    world.tp.settings = OidcSettings()
    refused(world, world.github_token(), "not-enabled")


def test_mint_and_burn_go_to_the_audit_log(world, tmp_path):
    log = FileAuditLog(tmp_path / "audit.log", echo=False)
    world.tp.auditor = Auditor(log)
    world.publish_from_github()
    token = world.tp.mint(world.github_token(), AUD, source="10.0.0.7").token
    world.tp.burn(token)
    minted, revoked = log.recent()
    assert (minted.action, minted.actor, minted.source) == (
        "oidc_mint",
        "oidc:github:acme/widget",
        "10.0.0.7",
    )
    assert minted.detail["projects"] == ["widget"]
    assert minted.detail["claims"]["sha"] == "0123456789abcdef0123456789abcdef01234567"
    assert revoked.action == "token_revoke" and revoked.target == minted.target
    assert token.rpartition("_")[2] not in (tmp_path / "audit.log").read_text()
