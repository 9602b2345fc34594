"""CloudFront signed download URLs (pypicloud's ``storage.cloud_front_*`` options).

A distribution in front of the package bucket (``infra/cdn.py``) only serves URLs
signed with a private key whose public key is in its trusted key group. URLs use a
canned policy (one URL, an expiry), signed by botocore's ``CloudFrontSigner`` with
RSA-SHA1 from ``cryptography`` (what CloudFront verifies).

The private key comes from ``storage.cloud_front_key_string`` (the PEM itself),
``storage.cloud_front_key_file`` (a path) or, Stratus' addition for Lambda,
``storage.cloud_front_key_secret`` (a Secrets Manager secret whose SecretString is the
PEM). It is loaded on the first download and kept for the life of the process (a Lambda
container), never logged. Without ``cloud_front_key_id`` the URLs are unsigned, as in
pypicloud (a distribution that does not require signed URLs).
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote


def cloudfront_host(domain: str) -> str:
    """``d1234.cloudfront.net`` from ``https://d1234.cloudfront.net/`` or the bare name."""
    host = domain.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    host = host.rstrip("/")
    if not host or "/" in host or "?" in host or "#" in host:
        raise ValueError(f"storage.cloud_front_domain: {domain!r} is not a host name")
    return host


def load_private_key(pem: bytes) -> Any:
    """An RSA private key from PEM; ``ValueError`` for anything else."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("the CloudFront private key is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the CloudFront private key must be an RSA key")
    return key


def key_from_secret(secret_id: str) -> Callable[[], bytes]:
    """A loader reading the PEM from a Secrets Manager secret's SecretString."""

    def load() -> bytes:
        import boto3

        client = boto3.session.Session().client("secretsmanager")
        return str(client.get_secret_value(SecretId=secret_id)["SecretString"]).encode()

    return load


def key_from_file(path: str) -> Callable[[], bytes]:
    return lambda: Path(path).expanduser().read_bytes()


class CloudFrontUrlSigner:
    """``signer(key, filename)`` → a URL of ``key`` on the distribution, valid ``expiry`` s."""

    def __init__(
        self,
        domain: str,
        key_id: str | None = None,
        private_key: Callable[[], bytes] | None = None,
        *,
        expiry: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bool(key_id) != (private_key is not None):
            raise ValueError(
                "storage.cloud_front_key_id and a private key (cloud_front_key_file, "
                "cloud_front_key_string or cloud_front_key_secret) go together"
            )
        self.host = cloudfront_host(domain)
        self.key_id = key_id
        self.expiry = expiry
        self.clock = clock
        self._load = private_key
        self._signer: Any = None
        self._lock = threading.Lock()

    def _cloudfront_signer(self) -> Any:
        if self._signer is None:
            with self._lock:
                if self._signer is None:
                    from botocore.signers import CloudFrontSigner
                    from cryptography.hazmat.primitives import hashes
                    from cryptography.hazmat.primitives.asymmetric import padding

                    assert self._load is not None
                    key = load_private_key(self._load())

                    def rsa_sign(message: bytes) -> bytes:
                        # SHA-1 with RSA is what CloudFront's signed URLs are verified with.
                        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())

                    self._signer = CloudFrontSigner(self.key_id, rsa_sign)
        return self._signer

    def __call__(self, key: str, filename: str) -> str:
        url = f"https://{self.host}/{quote(key, safe='/')}"
        if not self.key_id:
            return url
        expires = datetime.datetime.fromtimestamp(int(self.clock()) + self.expiry, tz=datetime.UTC)
        return self._cloudfront_signer().generate_presigned_url(url, date_less_than=expires)
