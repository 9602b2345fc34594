"""Trusted-publishing settings (INI keys and STRATUS_OIDC_* variables) and upload tokens."""

from __future__ import annotations

import pytest

from stratus.app import tokens
from stratus.app.trusted_publishing import OidcSettings
from stratus.domain import oidc
from stratus.domain.errors import InvalidInput
from stratus.wiring import options_from_env


def test_defaults_trust_github_and_gitlab_dot_com():
    settings = OidcSettings.from_options({})
    assert [(i.name, i.url) for i in settings.issuers] == [
        ("github", "https://token.actions.githubusercontent.com"),
        ("gitlab", "https://gitlab.com"),
    ]
    assert settings.audience is None
    assert settings.token_lifetime == 900


def test_ini_keys():
    settings = OidcSettings.from_options(
        {
            "oidc.github_issuer": "https://ghe.example.com/_services/token",
            "oidc.gitlab_issuer": "",  # disabled
            "oidc.audience": "pypi.example.com",
            "oidc.token_lifetime": "600",
            "oidc.issuer.buildkite.url": "https://agent.buildkite.com",
            "oidc.issuer.buildkite.claims": "sub, organization_slug pipeline_slug",
        }
    )
    assert [i.name for i in settings.issuers] == ["github", "buildkite"]
    assert settings.issuer("github").url == "https://ghe.example.com/_services/token"
    buildkite = settings.issuer("buildkite")
    assert buildkite.kind == oidc.GENERIC
    assert buildkite.claims == ("sub", "organization_slug", "pipeline_slug")
    assert settings.audience == "pypi.example.com"
    assert settings.token_lifetime == 600


def test_environment_variables_on_aws():
    options = options_from_env(
        {
            "STRATUS_OIDC_GITHUB_ISSUER": "https://token.example",
            "STRATUS_OIDC_AUDIENCE": "idx.example",
            "STRATUS_OIDC_ISSUER_CIRCLE_URL": "https://oidc.circleci.com/org/1",
            "STRATUS_OIDC_ISSUER_CIRCLE_CLAIMS": "sub",
            "STRATUS_AUTH_SECRET_ID": "x",
        }
    )
    settings = OidcSettings.from_options(options)
    assert settings.issuer("github").url == "https://token.example"
    assert settings.issuer("circle").claims == ("sub",)
    assert settings.audience == "idx.example"


@pytest.mark.parametrize(
    "options",
    [
        {"oidc.issuer.ci.url": "https://ci.example"},  # no claims
        {"oidc.issuer.ci.claims": "sub"},  # no url
        {"oidc.issuer.ci.url": "ftp://ci.example", "oidc.issuer.ci.claims": "sub"},
        {"oidc.issuer.ci.url": "https://ci.example", "oidc.issuer.ci.claims": "aud"},
        {"oidc.issuer.github.url": "https://x.example", "oidc.issuer.github.claims": "sub"},
        {"oidc.gitlab_issuer": "https://token.actions.githubusercontent.com"},  # same URL twice
        {"oidc.token_lifetime": "86400"},
    ],
)
def test_bad_settings_fail_at_start(options):
    with pytest.raises(ValueError):
        OidcSettings.from_options(options)


def test_upload_token():
    secret, record = tokens.new_upload_token(
        "oidc:github:acme/widget", "OIDC", ["b", "a"], expires_in=900, now=1000
    )
    token_id, raw = tokens.split(secret)
    assert token_id == record.token_id and tokens.is_minted(token_id)
    assert record.upload_only and record.projects == ["a", "b"] and record.expires == 1900
    assert tokens.matches(record, raw, now=1899)
    assert not tokens.matches(record, raw, now=1900)
    assert tokens.public(record)["upload_only"] is True
    _, ordinary = tokens.new_token("dev", "ci")
    assert not tokens.is_minted(ordinary.token_id) and not ordinary.upload_only
    with pytest.raises(InvalidInput):
        tokens.new_upload_token("oidc:x:y", "OIDC", [], expires_in=900)


def test_publisher_ids_are_deterministic_per_project():
    github = oidc.IssuerConfig("github", oidc.GITHUB, oidc.DEFAULT_GITHUB_ISSUER)
    spec = oidc.parse_publisher(
        github, {"issuer": "github", "repository": "Acme/Widget", "workflow": "r.yml"}
    )
    assert spec.lookup == "acme/widget"
    assert spec.publisher_id("a") == spec.publisher_id("a") != spec.publisher_id("b")


def test_job_workflow_ref_must_carry_the_ref_or_sha():
    github = oidc.IssuerConfig("github", oidc.GITHUB, oidc.DEFAULT_GITHUB_ISSUER)
    publisher = {"repository": "acme/widget", "workflow": "r.yml"}
    token = {
        "repository": "acme/widget",
        "job_workflow_ref": "acme/widget/.github/workflows/r.yml@abc",
        "ref": "refs/heads/main",
        "sha": "abc",
    }
    oidc.check_publisher(github, publisher, token)
    with pytest.raises(oidc.PublisherMismatch):
        oidc.check_publisher(github, publisher, {**token, "sha": "def"})
    with pytest.raises(oidc.PublisherMismatch):  # file names are case-sensitive
        oidc.check_publisher(github, {**publisher, "workflow": "R.yml"}, token)
