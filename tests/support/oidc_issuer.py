"""A real OIDC issuer on 127.0.0.1 for trusted-publishing tests (GitHub/GitLab stand-in).

It serves ``/.well-known/openid-configuration`` and ``/.well-known/jwks`` over HTTP from a
thread, holds its own RSA (and optionally EC) keys, and signs any claims:

    with OidcIssuer() as issuer:
        token = issuer.token(github_claims(issuer, "acme/widget", "release.yml"), aud="idx")
        issuer.rotate()                     # new key; the old one leaves the JWKS
        issuer.sign(claims, key=issuer.foreign_key)  # a key the JWKS never listed
        issuer.sign(claims, alg="none")     # unsigned

``issuer.requests`` counts the JWKS fetches (``"jwks"``) and discovery fetches.
``oidc_issuer`` is the same as a pytest fixture.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _b64(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SigningKey:
    def __init__(self, private_key: Any, alg: str, kid: str | None = None) -> None:
        self.private_key = private_key
        self.alg = alg
        self.kid = kid or uuid.uuid4().hex[:16]

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        data.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return data


class OidcIssuer:
    def __init__(self, *, path: str = "") -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        self.keys: list[SigningKey] = [SigningKey(_rsa(), "RS256")]
        self.foreign_key = SigningKey(_rsa(), "RS256", kid=self.keys[0].kid)  # same kid!
        self.requests: Counter[str] = Counter()
        self.down = False
        self.discovery_issuer: str | None = None  # override the discovery document's issuer
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ---
    def start(self) -> OidcIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- keys ---
    @property
    def key(self) -> SigningKey:
        """The current signing key (the last one added)."""
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = False) -> SigningKey:
        """A new RSA key signs from now on; the old one leaves the JWKS unless ``keep_old``."""
        new = SigningKey(_rsa(), "RS256")
        self.keys = [*self.keys, new] if keep_old else [new]
        return new

    def add_ec_key(self) -> SigningKey:
        new = SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")
        self.keys.append(new)
        return new

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    # --- tokens ---
    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        key: SigningKey | None = None,
        alg: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` as they are. ``alg="none"`` gives an unsigned token;
        ``alg="HS256"`` signs with the public key (PEM) as an HMAC secret: the
        algorithm-confusion attack."""
        key = key or self.key
        extra = {"kid": key.kid, **(headers or {})}
        if alg == "none":
            return jwt.encode(dict(claims), None, algorithm="none", headers=extra)
        if alg == "HS256":
            secret = key.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            header = {"alg": "HS256", "typ": "JWT", **extra}
            signing_input = f"{_b64(header)}.{_b64(dict(claims))}"
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        return jwt.encode(dict(claims), key.private_key, algorithm=alg or key.alg, headers=extra)

    def claims(self, aud: str, lifetime: int = 300, **extra: Any) -> dict[str, Any]:
        """Registered claims for a fresh token (``iss`` is this issuer)."""
        now = int(time.time())
        base = {
            "iss": self.url,
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        base.update(extra)
        return base

    # --- HTTP ---
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                prefix = issuer.url.split("/", 3)[3] if issuer.url.count("/") > 2 else ""
                path = self.path.removeprefix("/" + prefix) if prefix else self.path
                if issuer.down:
                    self._send(503, {"error": "down"})
                elif path == "/.well-known/openid-configuration":
                    issuer.requests["discovery"] += 1
                    self._send(
                        200,
                        {
                            "issuer": issuer.discovery_issuer or issuer.url,
                            "jwks_uri": issuer.url + "/.well-known/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        },
                    )
                elif path == "/.well-known/jwks":
                    issuer.requests["jwks"] += 1
                    self._send(200, issuer.jwks())
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def github_claims(
    issuer: OidcIssuer,
    repository: str,
    workflow: str,
    *,
    aud: str,
    environment: str | None = None,
    ref: str = "refs/tags/v1.0",
    sha: str = "0123456789abcdef0123456789abcdef01234567",
    owner_id: str = "4242",
    **extra: Any,
) -> dict[str, Any]:
    """The claims GitHub Actions puts in a job's ID token (the ones Stratus looks at)."""
    owner = repository.split("/")[0]
    claims = issuer.claims(
        aud,
        sub=f"repo:{repository}:ref:{ref}",
        repository=repository,
        repository_owner=owner,
        repository_owner_id=owner_id,
        repository_id="99",
        workflow_ref=f"{repository}/.github/workflows/{workflow}@{ref}",
        job_workflow_ref=f"{repository}/.github/workflows/{workflow}@{ref}",
        ref=ref,
        sha=sha,
        actor="octocat",
        run_id="1234",
        run_attempt="1",
        event_name="push",
    )
    if environment is not None:
        claims["environment"] = environment
        claims["sub"] = f"repo:{repository}:environment:{environment}"
    claims.update(extra)
    return claims


def gitlab_claims(
    issuer: OidcIssuer,
    project_path: str,
    ci_file: str = ".gitlab-ci.yml",
    *,
    aud: str,
    environment: str | None = None,
    ref_path: str = "refs/heads/main",
    **extra: Any,
) -> dict[str, Any]:
    """The claims of a GitLab CI ``id_tokens`` token."""
    host = issuer.url.split("://", 1)[1]
    claims = issuer.claims(
        aud,
        sub=f"project_path:{project_path}:ref_type:branch:ref:main",
        project_path=project_path,
        namespace_path=project_path.rsplit("/", 1)[0],
        ci_config_ref_uri=f"{host}/{project_path}//{ci_file}@{ref_path}",
        ref_path=ref_path,
        sha="89abcdef0123456789abcdef0123456789abcdef",
        user_login="gitlab-user",
        pipeline_id="77",
        job_id="78",
    )
    if environment is not None:
        claims["environment"] = environment
    claims.update(extra)
    return claims


@pytest.fixture
def oidc_issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as issuer:
        yield issuer
