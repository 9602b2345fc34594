"""Trusted publishing (OIDC), the pure part: issuers, publisher specifications, claim matching.

A *trusted publisher* names an OIDC issuer and the claims a CI job's ID token must carry to
upload to one project. Three kinds of issuer:

- ``github`` (GitHub Actions): ``repository`` (``owner/name``), ``workflow`` (the workflow
  file name, e.g. ``release.yml``), optional ``environment`` and ``repository_owner_id``.
  Matched as PyPI matches them: ``repository`` case-insensitively; ``job_workflow_ref`` must
  be ``<repository>/.github/workflows/<workflow>@<ref or sha>``; ``environment`` (if the
  publisher names one) case-insensitively; ``repository_owner_id`` exactly.
- ``gitlab`` (GitLab CI): ``repository`` (the ``namespace/project`` path), ``workflow`` (the
  CI file path, e.g. ``.gitlab-ci.yml``), optional ``environment``. ``project_path`` is
  matched case-insensitively and ``ci_config_ref_uri`` must be
  ``<issuer host>/<project_path>//<workflow>@<ref_path>``.
- ``generic``: an issuer configured by URL with a list of claim names; a publisher gives a
  value for each (and may add others); every one must equal the token's claim.

Tokens are found by a *lookup* value (the repository, or the generic issuer's first claim),
so the store answers with one query and never scans.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import InvalidInput

GITHUB = "github"
GITLAB = "gitlab"
GENERIC = "generic"
DEFAULT_GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
DEFAULT_GITLAB_ISSUER = "https://gitlab.com"

ALGORITHMS = ("RS256", "ES256")  # never "none", never HS* (a shared secret is no proof)
LEEWAY_SECONDS = 30
MAX_TOKEN_CHARS = 8192
MAX_JTI_CHARS = 256
MAX_VALUE_CHARS = 200
MAX_GENERIC_CLAIMS = 10
REQUIRED_TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "jti")

_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_WORKFLOW_FILE = re.compile(r"^[A-Za-z0-9._-]+\.ya?ml$")
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$")
_GITLAB_CI_FILE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.ya?ml$")
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_ISSUER_NAME = re.compile(r"^[a-z][a-z0-9]{0,31}$")


class PublisherMismatch(Exception):
    """A verified token does not satisfy a publisher; the message is for the server log."""


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One issuer Stratus trusts. ``url`` is both the ``iss`` value and the discovery base."""

    name: str  # "github", "gitlab" or the generic issuer's configured name
    kind: str  # GITHUB | GITLAB | GENERIC
    url: str
    claims: tuple[str, ...] = ()  # generic: claims every publisher names; the first is the lookup

    def __post_init__(self) -> None:
        if self.kind not in (GITHUB, GITLAB, GENERIC):
            raise ValueError(f"unknown issuer kind {self.kind!r}")
        if not _ISSUER_NAME.match(self.name):
            raise ValueError(f"issuer name {self.name!r}: lower-case letters and digits only")
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"issuer {self.name}: {self.url!r} is not an http(s) URL")
        if self.kind == GENERIC:
            if not self.claims:
                raise ValueError(f"issuer {self.name}: a generic issuer needs claims")
            for claim in self.claims:
                if not _CLAIM_NAME.match(claim) or claim in REQUIRED_TOKEN_CLAIMS:
                    raise ValueError(f"issuer {self.name}: cannot match on claim {claim!r}")

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True, slots=True)
class TrustedPublisher:
    """A stored publisher of one (normalized) project."""

    publisher_id: str
    project: str
    issuer: str  # IssuerConfig.name
    claims: Mapping[str, str]  # what parse_publisher returned
    lookup: str  # the value tokens are found by (see token_lookup)
    pending: bool = False  # made for a project with no files yet (PyPI's pending publisher)
    created: float = 0.0
    created_by: str = ""

    def public(self) -> dict[str, object]:
        """The JSON form the admin API and the CLI show."""
        return {
            "id": self.publisher_id,
            "project": self.project,
            "issuer": self.issuer,
            **dict(self.claims),
            "pending": self.pending,
            "created": int(self.created),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class PublisherSpec:
    """A publisher request after validation: its claims, lookup value and id."""

    issuer: str
    claims: dict[str, str] = field(default_factory=dict)
    lookup: str = ""

    def publisher_id(self, project: str) -> str:
        """Deterministic: the same publisher twice on one project is one id (a Conflict)."""
        body = json.dumps([project, self.issuer, self.claims], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _text(data: Mapping[str, object], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"The publisher needs {key!r}.")
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidInput(f"{key!r} must be a string.")
    text = str(value).strip()
    if not text or len(text) > MAX_VALUE_CHARS or not text.isprintable():
        raise InvalidInput(f"{key!r} must be 1 to {MAX_VALUE_CHARS} printable characters.")
    return text


_FIELDS = {
    GITHUB: {"issuer", "repository", "workflow", "environment", "repository_owner_id"},
    GITLAB: {"issuer", "repository", "workflow", "environment"},
    GENERIC: {"issuer", "claims"},
}


def parse_publisher(issuer: IssuerConfig, data: Mapping[str, object]) -> PublisherSpec:
    """Validate a publisher request (JSON as the admin API takes it) for ``issuer``."""
    unknown = set(data) - _FIELDS[issuer.kind]
    if unknown:
        raise InvalidInput(f"Unknown field(s) for a {issuer.name} publisher: {sorted(unknown)}.")
    if issuer.kind == GENERIC:
        return _parse_generic(issuer, data.get("claims"))
    repository = _text(data, "repository")
    workflow = _text(data, "workflow")
    environment = _text(data, "environment", required=False)
    assert repository is not None and workflow is not None
    claims = {"repository": repository, "workflow": workflow}
    if issuer.kind == GITHUB:
        if not _GITHUB_REPOSITORY.match(repository):
            raise InvalidInput("'repository' must be a GitHub 'owner/name'.")
        if not _WORKFLOW_FILE.match(workflow):
            raise InvalidInput(
                "'workflow' must be the workflow's file name in .github/workflows, "
                "e.g. 'release.yml'."
            )
        owner_id = _text(data, "repository_owner_id", required=False)
        if owner_id is not None:
            if not owner_id.isdigit() or len(owner_id) > 20:
                raise InvalidInput("'repository_owner_id' must be GitHub's numeric owner id.")
            claims["repository_owner_id"] = owner_id
        if environment is not None:
            claims["environment"] = environment.lower()  # GitHub: case-insensitive
    else:
        if not _GITLAB_PATH.match(repository) or ".." in repository:
            raise InvalidInput("'repository' must be the GitLab 'namespace/project' path.")
        if not _GITLAB_CI_FILE.match(workflow) or ".." in workflow.split("/"):
            raise InvalidInput(
                "'workflow' must be the CI file's path in the repository, e.g. '.gitlab-ci.yml'."
            )
        if environment is not None:
            claims["environment"] = environment
    return PublisherSpec(issuer.name, claims, repository.lower())


def _parse_generic(issuer: IssuerConfig, raw: object) -> PublisherSpec:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(
            f"A {issuer.name} publisher needs 'claims': {{{', '.join(issuer.claims)}: ...}}."
        )
    if len(raw) > MAX_GENERIC_CLAIMS:
        raise InvalidInput(f"At most {MAX_GENERIC_CLAIMS} claims.")
    claims: dict[str, str] = {}
    for name in raw:
        if not isinstance(name, str) or not _CLAIM_NAME.match(name):
            raise InvalidInput(f"Invalid claim name {name!r}.")
        if name in REQUIRED_TOKEN_CLAIMS:
            raise InvalidInput(f"Claim {name!r} is checked by Stratus itself.")
        value = _text(raw, name)
        assert value is not None
        claims[name] = value
    missing = [c for c in issuer.claims if c not in claims]
    if missing:
        raise InvalidInput(f"A {issuer.name} publisher must name the claim(s) {missing}.")
    return PublisherSpec(issuer.name, claims, claims[issuer.claims[0]])


def _claim(token: Mapping[str, object], name: str) -> str | None:
    value = token.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


def token_lookup(issuer: IssuerConfig, token: Mapping[str, object]) -> str | None:
    """The lookup value of a verified token (None: the token cannot match any publisher)."""
    if issuer.kind == GITHUB:
        value = _claim(token, "repository")
        return value.lower() if value else None
    if issuer.kind == GITLAB:
        value = _claim(token, "project_path")
        return value.lower() if value else None
    return _claim(token, issuer.claims[0])


def check_publisher(
    issuer: IssuerConfig, publisher: Mapping[str, str], token: Mapping[str, object]
) -> None:
    """Raise :class:`PublisherMismatch` unless the verified ``token`` satisfies ``publisher``."""
    if issuer.kind == GITHUB:
        _check_github(publisher, token)
    elif issuer.kind == GITLAB:
        _check_gitlab(issuer, publisher, token)
    else:
        for name, expected in publisher.items():
            if _claim(token, name) != expected:
                raise PublisherMismatch(f"claim {name!r} differs")


def _check_environment(publisher: Mapping[str, str], token: Mapping[str, object], fold) -> None:
    expected = publisher.get("environment")
    if expected is None:
        return  # any environment, or none
    actual = _claim(token, "environment")
    if actual is None or fold(actual) != fold(expected):
        raise PublisherMismatch("environment differs")


def _check_github(publisher: Mapping[str, str], token: Mapping[str, object]) -> None:
    repository = publisher["repository"]
    if (_claim(token, "repository") or "").lower() != repository.lower():
        raise PublisherMismatch("repository differs")
    owner_id = publisher.get("repository_owner_id")
    if owner_id is not None and _claim(token, "repository_owner_id") != owner_id:
        raise PublisherMismatch("repository_owner_id differs")
    workflow_ref = _claim(token, "job_workflow_ref") or ""
    path, at, ref = workflow_ref.partition("@")
    expected_path = f"{repository}/.github/workflows/{publisher['workflow']}"
    prefix, _, filename = path.rpartition("/")
    expected_prefix, _, expected_file = expected_path.rpartition("/")
    if not at or prefix.lower() != expected_prefix.lower() or filename != expected_file:
        raise PublisherMismatch("workflow differs")
    if ref not in {v for v in (_claim(token, "ref"), _claim(token, "sha")) if v}:
        raise PublisherMismatch("job_workflow_ref's ref is neither the ref nor the sha claim")
    _check_environment(publisher, token, str.lower)


def _check_gitlab(
    issuer: IssuerConfig, publisher: Mapping[str, str], token: Mapping[str, object]
) -> None:
    repository = publisher["repository"]
    if (_claim(token, "project_path") or "").lower() != repository.lower():
        raise PublisherMismatch("project_path differs")
    uri = _claim(token, "ci_config_ref_uri") or ""
    location, at, ref = uri.rpartition("@")
    project_part, sep, ci_file = location.partition("//")
    expected_project = f"{issuer.host}/{repository}"
    if not at or not sep or project_part.lower() != expected_project.lower():
        raise PublisherMismatch("ci_config_ref_uri names another project")
    if ci_file != publisher["workflow"]:
        raise PublisherMismatch("CI file differs")
    ref_path = _claim(token, "ref_path")
    if not ref_path or ref != ref_path:
        raise PublisherMismatch("ci_config_ref_uri's ref is not the ref_path claim")
    _check_environment(publisher, token, lambda s: s)


_AUDIT_CLAIMS = {
    GITHUB: (
        "sub",
        "repository",
        "repository_owner_id",
        "job_workflow_ref",
        "workflow_ref",
        "ref",
        "sha",
        "environment",
        "actor",
        "run_id",
        "run_attempt",
    ),
    GITLAB: (
        "sub",
        "project_path",
        "ci_config_ref_uri",
        "ref_path",
        "sha",
        "environment",
        "user_login",
        "pipeline_id",
        "job_id",
    ),
}


def audit_claims(issuer: IssuerConfig, token: Mapping[str, object]) -> dict[str, str]:
    """The claims worth recording with a minted token (who, which repository/workflow/commit)."""
    names = _AUDIT_CLAIMS.get(issuer.kind, ("sub", *issuer.claims))
    picked = {"iss": issuer.url, "jti": _claim(token, "jti") or ""}
    for name in names:
        value = _claim(token, name)
        if value is not None:
            picked[name] = value[: MAX_VALUE_CHARS * 2]
    return picked


def principal(issuer: IssuerConfig, lookup: str) -> str:
    """The uploader name of a minted token (never a user name: those cannot hold ':')."""
    return f"oidc:{issuer.name}:{lookup}"
