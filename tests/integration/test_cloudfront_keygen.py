"""``stratus cloudfront-keygen``: the private key lands in Secrets Manager (moto server) or a
0600 file and is never printed; the public key verifies what the API signs with it."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from stratus.adapters.cloudfront import CloudFrontUrlSigner, key_from_file, key_from_secret
from stratus.cli.main import main
from tests.support.cloudfront import verify_signed_url


def test_keygen_stores_the_private_key_in_secrets_manager(moto_endpoint, tmp_path, capsys):
    prefix = f"test-{uuid.uuid4().hex[:8]}/cloudfront/"
    public = tmp_path / "keys" / "k2026a.pem"
    code = main(
        [
            "cloudfront-keygen",
            "--name",
            "k2026a",
            "--secret-prefix",
            prefix,
            "--public-key-out",
            str(public),
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert "PRIVATE KEY" not in out + err  # never printed
    assert '"cloudfront_public_keys": {"k2026a": "' in err and '"cloudfront": true' in err
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048

    secret = f"{prefix}k2026a"
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    assert stored.startswith("-----BEGIN PRIVATE KEY-----")
    signer = CloudFrontUrlSigner("d1.cloudfront.net", "K1", key_from_secret(secret))
    verify_signed_url(signer("packages/a/a-1.0.tar.gz", "a-1.0.tar.gz"), public.read_bytes())

    # A key in use is never replaced: the same name again is refused, nothing changes.
    again = main(["cloudfront-keygen", "--name", "k2026a", "--secret-prefix", prefix])
    assert again == 1
    assert "rotate to a new name" in capsys.readouterr().err
    after = boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    assert after == stored
    boto3.client("secretsmanager").delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)


def test_keygen_for_local_use_writes_an_owner_only_file(tmp_path: Path, capsys) -> None:
    private = tmp_path / "cf-private.pem"
    assert main(["cloudfront-keygen", "--name", "local", "--private-key-out", str(private)]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("-----BEGIN PUBLIC KEY-----")  # printed: no --public-key-out
    assert private.stat().st_mode & 0o777 == 0o600
    signer = CloudFrontUrlSigner("d1.cloudfront.net", "K1", key_from_file(str(private)))
    verify_signed_url(signer("packages/a/a.whl", "a.whl"), out.encode())
    assert main(["cloudfront-keygen", "--name", "local", "--private-key-out", str(private)]) == 1


@pytest.mark.parametrize("name", ["", "a b", "../x", "x" * 65])
def test_keygen_refuses_bad_names(name: str, tmp_path: Path) -> None:
    command = ["cloudfront-keygen", "--name", name, "--private-key-out", str(tmp_path / "k")]
    assert main(command) == 2
    assert not (tmp_path / "k").exists()
