"""OIDC issuer keys over HTTP: ``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``.

The JwksSource port with the standard library's ``urllib`` (no dependency): short
timeouts, bounded response sizes, and the discovery
document's ``issuer`` must be the configured issuer (OpenID Connect Discovery §4.3).
Caching is the caller's (``stratus.app.trusted_publishing.IssuerKeyCache``).
"""

from __future__ import annotations

import http.client
import json
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from ..domain.errors import BackendUnavailable

MAX_DOCUMENT_BYTES = 512 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"


class HttpJwksSource:
    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout

    @cached_property
    def _opener(self) -> Any:
        """Made on the first fetch: ``urllib.request`` and its TLS context (the CA bundle
        loaded) cost a Lambda init ~20-40 ms that only a trusted-publishing mint needs."""
        import urllib.request

        return urllib.request.build_opener()

    def _get_json(self, url: str) -> Any:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            url, headers={"Accept": "application/json", "User-Agent": "stratus-oidc"}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(MAX_DOCUMENT_BYTES + 1)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise BackendUnavailable(f"cannot fetch {url}: {exc}") from exc
        if len(body) > MAX_DOCUMENT_BYTES:
            raise BackendUnavailable(f"{url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise BackendUnavailable(f"{url}: not JSON") from exc

    def fetch_jwks(self, issuer_url: str) -> dict[str, Any]:
        config = self._get_json(issuer_url.rstrip("/") + DISCOVERY_PATH)
        if not isinstance(config, dict) or config.get("issuer") != issuer_url:
            raise BackendUnavailable(f"{issuer_url}: the OpenID configuration names another issuer")
        jwks_uri = config.get("jwks_uri")
        issuer_scheme = urlsplit(issuer_url).scheme
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in {
            "https",
            issuer_scheme,
        }:
            raise BackendUnavailable(f"{issuer_url}: no usable jwks_uri")
        jwks = self._get_json(jwks_uri)
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise BackendUnavailable(f"{jwks_uri}: not a JSON Web Key Set")
        return jwks
