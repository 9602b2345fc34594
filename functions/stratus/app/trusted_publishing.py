"""Trusted publishing: a CI job's OIDC ID token → a short-lived upload token (as PyPI does).

Settings (INI keys in any section; on AWS ``STRATUS_OIDC_<KEY>`` environment variables,
e.g. ``STRATUS_OIDC_GITHUB_ISSUER``, ``STRATUS_OIDC_ISSUER_BUILDKITE_URL``):

- ``oidc.github_issuer`` (default ``https://token.actions.githubusercontent.com``; empty
  disables GitHub), ``oidc.gitlab_issuer`` (default ``https://gitlab.com``; empty disables);
- ``oidc.audience``: the ``aud`` tokens must carry (default: the index's own host name);
- ``oidc.token_lifetime``: seconds a minted token lives (default 900, 60 to 3600);
- ``oidc.jwks_cache_seconds`` (default 600): how long an issuer's keys are reused;
  an unknown ``kid`` refetches them, at most once per ``oidc.jwks_refresh_seconds`` (30);
- generic issuers: ``oidc.issuer.<name>.url`` and ``oidc.issuer.<name>.claims`` (claim
  names every publisher of it must give; the first finds the publishers, so make it the
  most specific, e.g. ``sub``). ``<name>``: lower-case letters and digits.

Verification: the token's ``alg`` must be RS256 or ES256 and its ``kid`` one of the
issuer's keys (fetched from the issuer's OpenID configuration, cached); the signature,
``iss``, ``aud``, ``exp``/``nbf``/``iat`` (30 s leeway) are checked by PyJWT; the ``jti``
is remembered until the token expires, so a token mints once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..domain import oidc
from ..domain.errors import BackendUnavailable, InvalidInput, NotFound
from ..domain.models import Identity
from ..domain.names import validate
from ..domain.oidc import IssuerConfig, PublisherMismatch, TrustedPublisher
from ..ports import Catalog, JwksSource, MintedTokens, ReplayGuard, TrustedPublishers
from . import tokens
from .audit import Auditor

if TYPE_CHECKING:
    import jwt

audit_log = logging.getLogger("stratus.audit")
log = logging.getLogger(__name__)

_ISSUER_KEY = re.compile(r"^oidc\.issuer[._]([a-z][a-z0-9]*)[._](url|claims)$")


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuers: tuple[IssuerConfig, ...] = ()
    audience: str | None = None
    token_lifetime: int = 900
    jwks_cache_seconds: int = 600
    jwks_refresh_seconds: int = 30

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> OidcSettings:
        """From INI-style options (``oidc.*``; env variables arrive as ``oidc.<key>``)."""
        issuers: list[IssuerConfig] = []
        for kind, default in (
            (oidc.GITHUB, oidc.DEFAULT_GITHUB_ISSUER),
            (oidc.GITLAB, oidc.DEFAULT_GITLAB_ISSUER),
        ):
            url = options.get(f"oidc.{kind}_issuer", default).strip()
            if url:
                issuers.append(IssuerConfig(kind, kind, url))
        generic: dict[str, dict[str, str]] = {}
        for key, value in options.items():
            matched = _ISSUER_KEY.match(key.lower())
            if matched:
                generic.setdefault(matched.group(1), {})[matched.group(2)] = value.strip()
        for name, values in sorted(generic.items()):
            if name in (oidc.GITHUB, oidc.GITLAB):
                raise ValueError(f"oidc.issuer.{name}: use oidc.{name}_issuer")
            if not values.get("url") or not values.get("claims"):
                raise ValueError(f"oidc.issuer.{name} needs both .url and .claims")
            claims = tuple(c for c in values["claims"].replace(",", " ").split() if c)
            issuers.append(IssuerConfig(name, oidc.GENERIC, values["url"], claims))
        urls = [i.url for i in issuers]
        if len(set(urls)) != len(urls):
            raise ValueError("two OIDC issuers have the same URL")
        lifetime = int(options.get("oidc.token_lifetime", 900))
        if not 60 <= lifetime <= 3600:
            raise ValueError("oidc.token_lifetime must be 60 to 3600 seconds")
        return cls(
            issuers=tuple(issuers),
            audience=options.get("oidc.audience", "").strip() or None,
            token_lifetime=lifetime,
            jwks_cache_seconds=int(options.get("oidc.jwks_cache_seconds", 600)),
            jwks_refresh_seconds=int(options.get("oidc.jwks_refresh_seconds", 30)),
        )

    def issuer(self, name: str) -> IssuerConfig | None:
        return next((i for i in self.issuers if i.name == name), None)


class MintError(Exception):
    """A refused mint, answered as PyPI answers it (``status``, default 422)."""

    def __init__(self, code: str, description: str, *, status: int = 422) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status

    def body(self) -> dict[str, object]:
        return {
            "message": "Token request failed",
            "errors": [{"code": self.code, "description": self.description}],
        }


def _invalid_token() -> MintError:
    return MintError("invalid-token", "malformed or invalid token")


# --- issuer keys --------------------------------------------------------------------------


@dataclass
class _KeySet:
    keys: dict[str, jwt.PyJWK]
    fetched: float  # monotonic time of the last successful fetch
    attempted: float  # monotonic time of the last fetch attempt


def parse_jwks(data: Mapping[str, object]) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS by ``kid``; keys of other uses or algorithms are skipped."""
    import jwt  # PyJWT and cryptography: ~25 ms of a cold start that mints nothing

    found: dict[str, jwt.PyJWK] = {}
    raw_keys = data.get("keys")
    for raw in raw_keys if isinstance(raw_keys, list) else []:
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str):
            continue
        if raw.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(raw)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in oidc.ALGORITHMS:
            found[raw["kid"]] = key
    return found


class IssuerKeyCache:
    """Issuer keys, cached for ``ttl`` seconds; an unknown ``kid`` refetches them at most
    once per ``min_refresh`` seconds (so random kids cannot make us hammer the issuer).
    When a refetch fails, the keys already known stay in use."""

    def __init__(
        self,
        source: JwksSource,
        *,
        ttl: float = 600,
        min_refresh: float = 30,
        clock=time.monotonic,
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.clock = clock
        self._sets: dict[str, _KeySet] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, issuer_url: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(issuer_url, threading.Lock())

    def _refresh(self, issuer_url: str, current: _KeySet | None, now: float) -> _KeySet:
        try:
            keys = parse_jwks(self.source.fetch_jwks(issuer_url))
        except BackendUnavailable:
            if current is None:
                raise
            log.warning("OIDC issuer %s: key refresh failed; using the known keys", issuer_url)
            current.attempted = now
            return current
        fresh = _KeySet(keys, now, now)
        self._sets[issuer_url] = fresh
        return fresh

    def key(self, issuer_url: str, kid: str) -> jwt.PyJWK | None:
        """The issuer's key ``kid``, or None. Raise ``BackendUnavailable`` if no keys of the
        issuer could ever be fetched."""
        with self._lock(issuer_url):
            now = self.clock()
            current = self._sets.get(issuer_url)
            stale = current is None or now - current.fetched >= self.ttl
            if stale and (current is None or now - current.attempted >= self.min_refresh):
                current = self._refresh(issuer_url, current, now)
            assert current is not None  # a missing set is stale, so it was fetched above
            found = current.keys.get(kid)
            if found is None and now - current.attempted >= self.min_refresh:
                current = self._refresh(issuer_url, current, now)
                found = current.keys.get(kid)
            return found


# --- minting --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MintResult:
    token: str
    expires: int
    projects: tuple[str, ...]
    audit: dict[str, Any] = field(default_factory=dict)


def replay_key(issuer_url: str, jti: str) -> str:
    return hashlib.sha256(f"{issuer_url}\0{jti}".encode()).hexdigest()


class TrustedPublishing:
    def __init__(
        self,
        settings: OidcSettings,
        *,
        publishers: TrustedPublishers,
        replay_guard: ReplayGuard,
        minted_tokens: MintedTokens,
        catalog: Catalog,
        keys: IssuerKeyCache,
        auditor: Auditor | None = None,
        clock=time.time,
    ) -> None:
        self.settings = settings
        self.publishers = publishers
        self.replay_guard = replay_guard
        self.minted_tokens = minted_tokens
        self.catalog = catalog
        self.keys = keys
        self.auditor = auditor
        self.clock = clock
        self._by_url = {issuer.url: issuer for issuer in settings.issuers}

    def audience(self, own_host: str) -> str:
        """The ``aud`` minting requires: ``oidc.audience``, else the index's host name."""
        return self.settings.audience or own_host

    # --- verification ---

    def verify(self, raw: object, audience: str) -> tuple[IssuerConfig, dict[str, Any]]:
        """The issuer and the verified claims of an ID token, or raise :class:`MintError`."""
        if not isinstance(raw, str) or not raw or len(raw) > oidc.MAX_TOKEN_CHARS:
            raise _invalid_token()
        import jwt

        try:
            header = jwt.get_unverified_header(raw)
            unverified = jwt.decode(raw, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid_token() from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in oidc.ALGORITHMS or not isinstance(kid, str) or len(kid) > 256:
            log.info("OIDC token refused: alg %r / kid %r", alg, kid)
            raise _invalid_token()
        iss = unverified.get("iss")
        issuer = self._by_url.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise MintError("invalid-payload", "unknown trusted publishing issuer")
        try:
            key = self.keys.key(issuer.url, kid)
        except BackendUnavailable as exc:
            log.warning("OIDC issuer %s unavailable: %s", issuer.url, exc)
            raise MintError(
                "issuer-unavailable", "the token's issuer cannot be reached", status=503
            ) from None
        if key is None or key.algorithm_name != alg:
            log.info("OIDC token refused: no key %r (%s) at %s", kid, alg, issuer.url)
            raise _invalid_token()
        try:
            claims = jwt.decode(
                raw,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.url,
                leeway=oidc.LEEWAY_SECONDS,
                options={"require": list(oidc.REQUIRED_TOKEN_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            log.info("OIDC token from %s refused: %s", issuer.url, exc)
            raise _invalid_token() from None
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > oidc.MAX_JTI_CHARS:
            raise _invalid_token()
        return issuer, claims

    # --- minting ---

    def mint(self, raw: object, audience: str, *, source: str | None = None) -> MintResult:
        """An upload token for every publisher the ID token satisfies, or :class:`MintError`.

        Order: verify → find the matching publishers (reads only) → remember the ``jti``
        (the one conditional write that makes a token mint once) → activate pending
        publishers used → store the new token → one audit record ``event=oidc_mint``.
        """
        if not self.settings.issuers:
            raise MintError("not-enabled", "trusted publishing is not enabled", status=404)
        issuer, claims = self.verify(raw, audience)
        lookup = oidc.token_lookup(issuer, claims)
        candidates = self.publishers.find_publishers(issuer.name, lookup) if lookup else []
        matched: list[TrustedPublisher] = []
        for publisher in candidates:
            try:
                oidc.check_publisher(issuer, publisher.claims, claims)
            except PublisherMismatch as exc:
                log.info(
                    "OIDC publisher %s of %s: %s", publisher.publisher_id, publisher.project, exc
                )
                continue
            matched.append(publisher)
        if not matched:
            raise MintError("invalid-publisher", "valid token, but no corresponding publisher")
        usable = [p for p in matched if not p.pending or not self.catalog.list_files(p.project)]
        if not usable:
            raise MintError("invalid-pending-publisher", "valid token, but project already exists")
        if not self.replay_guard.first_use(
            replay_key(issuer.url, claims["jti"]),
            float(claims["exp"]) + oidc.LEEWAY_SECONDS,
        ):
            raise MintError("invalid-reuse-token", "invalid token: already used")
        for publisher in usable:
            if publisher.pending:
                self.publishers.activate_publisher(publisher.project, publisher.publisher_id)
        projects = sorted({p.project for p in usable})
        audit = oidc.audit_claims(issuer, claims)
        secret, record = tokens.new_upload_token(
            oidc.principal(issuer, lookup or ""),
            f"OIDC {issuer.name} {lookup}"[:100],
            projects,
            expires_in=self.settings.token_lifetime,
            now=self.clock(),
        )
        self.minted_tokens.add_minted_token(record, audit)
        assert record.expires is not None
        entry = {
            "event": "oidc_mint",
            "issuer": issuer.name,
            "principal": record.username,
            "projects": projects,
            "publishers": sorted(p.publisher_id for p in usable),
            "token_id": record.token_id,
            "expires": int(record.expires),
            "claims": audit,
        }
        audit_log.info(json.dumps(entry, sort_keys=True), extra={"audit": entry})
        if self.auditor is not None:
            self.auditor(
                "oidc_mint",
                actor=record.username,
                source=source,
                target=f"token:{record.token_id}",
                projects=projects,
                publishers=entry["publishers"],
                expires=entry["expires"],
                claims=audit,
            )
        return MintResult(secret, int(record.expires), tuple(projects), entry)

    def burn(self, token: object) -> bool:
        """PyPI's ``/_/oidc/burn-token`` (``uv publish`` calls it after uploading): revoke a
        minted token presented whole. True if one was revoked; callers answer alike anyway."""
        if not isinstance(token, str) or len(token) > 512:
            return False
        parts = tokens.split(token)
        if parts is None or not tokens.is_minted(parts[0]):
            return False
        record = self.minted_tokens.get_minted_token(parts[0])
        if record is None or not tokens.matches(record, parts[1]):
            return False
        self.minted_tokens.revoke_minted_token(record.token_id)
        entry = {"event": "oidc_burn", "principal": record.username, "token_id": record.token_id}
        audit_log.info(json.dumps(entry, sort_keys=True), extra={"audit": entry})
        if self.auditor is not None:
            self.auditor(
                "token_revoke",
                actor=record.username,
                source=None,
                target=f"token:{record.token_id}",
            )
        return True

    # --- managing publishers ---

    @staticmethod
    def may_manage(policy: Any, who: Identity, project: str) -> bool:
        """Admins and writers of the project, with a password or an unscoped token (a scoped
        or minted token cannot set up a way to upload that outlives it)."""
        if not who.authenticated or who.upload_only or who.upload_scope is not None:
            return False
        return bool(policy.can_write(who, project))

    def add_publisher(
        self, project: str, data: Mapping[str, object], *, created_by: str
    ) -> TrustedPublisher:
        """Validate and store a publisher; pending when the project has no files yet."""
        project = validate(project)
        issuer_name = data.get("issuer")
        issuer = self.settings.issuer(issuer_name) if isinstance(issuer_name, str) else None
        if issuer is None:
            known = ", ".join(i.name for i in self.settings.issuers) or "none configured"
            raise InvalidInput(f"'issuer' must be one of: {known}.")
        spec = oidc.parse_publisher(issuer, data)
        publisher = TrustedPublisher(
            publisher_id=spec.publisher_id(project),
            project=project,
            issuer=issuer.name,
            claims=spec.claims,
            lookup=spec.lookup,
            pending=not self.catalog.list_files(project),
            created=self.clock(),
            created_by=created_by,
        )
        self.publishers.add_publisher(publisher)
        return publisher

    def list_publishers(self, project: str) -> list[TrustedPublisher]:
        return self.publishers.list_publishers(validate(project))

    def delete_publisher(self, project: str, publisher_id: str) -> TrustedPublisher:
        removed = self.publishers.delete_publisher(validate(project), publisher_id)
        if removed is None:
            raise NotFound(f"No publisher {publisher_id!r} for project {project!r}.")
        return removed
