"""CloudFront signed download URLs: signatures checked with the public key, expiry, options."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stratus.adapters.cloudfront import CloudFrontUrlSigner, cloudfront_host, key_from_file
from stratus.adapters.s3_storage import S3Storage
from stratus.settings import CloudFrontSettings
from stratus.wiring import download_signer, options_from_env
from tests.support.cloudfront import KeyPair, make_key_pair, verify_signed_url

NOW = 1_900_000_000.0
KEY = "packages/demo-pkg/demo_pkg-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return make_key_pair()


def signer(keys: KeyPair, **kwargs: object) -> CloudFrontUrlSigner:
    return CloudFrontUrlSigner(
        "https://d111abcdef8.cloudfront.net/",
        "K2JCJMDEHXQW5F",
        lambda: keys.private_pem,
        clock=lambda: NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def test_urls_carry_a_canned_policy_signature(keys: KeyPair) -> None:
    url = signer(keys)(KEY, "demo_pkg-1.0-py3-none-any.whl")
    signed = verify_signed_url(url, keys.public_pem)
    assert signed.resource == f"https://d111abcdef8.cloudfront.net/{KEY}"
    assert signed.key_pair_id == "K2JCJMDEHXQW5F"
    assert signed.expires == NOW + 300  # the default, as presign_expiry


def test_another_key_does_not_verify(keys: KeyPair) -> None:
    url = signer(keys)(KEY, "x.whl")
    with pytest.raises(InvalidSignature):
        verify_signed_url(url, make_key_pair().public_pem)
    tampered = url.replace("demo_pkg-1.0", "demo_pkg-2.0")
    with pytest.raises(InvalidSignature):
        verify_signed_url(tampered, keys.public_pem)


def test_expiry_is_honoured(keys: KeyPair) -> None:
    now = [NOW]
    short = CloudFrontUrlSigner(
        "d1.cloudfront.net", "K1", lambda: keys.private_pem, expiry=120, clock=lambda: now[0]
    )
    assert verify_signed_url(short(KEY, "f"), keys.public_pem).expires == NOW + 120
    now[0] += 1000  # a later download gets a later expiry, never a stale URL
    assert verify_signed_url(short(KEY, "f"), keys.public_pem).expires == NOW + 1120


def test_keys_with_odd_characters_are_quoted_and_still_verify(keys: KeyPair) -> None:
    key = "packages/déjà/déjà vu+1.0.tar.gz"
    url = signer(keys)(key, "déjà vu+1.0.tar.gz")
    assert "/packages/d%C3%A9j%C3%A0/d%C3%A9j%C3%A0%20vu%2B1.0.tar.gz?" in url
    verify_signed_url(url, keys.public_pem)


def test_the_private_key_is_loaded_once(keys: KeyPair) -> None:
    loads: list[int] = []

    def load() -> bytes:
        loads.append(1)
        return keys.private_pem

    once = CloudFrontUrlSigner("d1.cloudfront.net", "K1", load)
    for _ in range(5):
        once(KEY, "f")
    assert loads == [1]


def test_without_a_key_id_urls_are_plain() -> None:
    assert CloudFrontUrlSigner("pkgs.example.com")(KEY, "f") == f"https://pkgs.example.com/{KEY}"


def test_only_rsa_pem_keys(keys: KeyPair) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for pem, message in ((ec_pem, "RSA"), (b"not a key", "PEM"), (keys.public_pem, "PEM")):
        bad = CloudFrontUrlSigner("d1.cloudfront.net", "K1", lambda pem=pem: pem)
        with pytest.raises(ValueError, match=message) as caught:
            bad(KEY, "f")
        assert "BEGIN" not in str(caught.value)  # no key material in the message


@pytest.mark.parametrize(
    ("domain", "host"),
    [
        ("d1.cloudfront.net", "d1.cloudfront.net"),
        ("https://d1.cloudfront.net", "d1.cloudfront.net"),
        ("https://pkgs.example.com/", "pkgs.example.com"),
    ],
)
def test_host_names(domain: str, host: str) -> None:
    assert cloudfront_host(domain) == host


@pytest.mark.parametrize("domain", ["", "https://", "d1.cloudfront.net/path", "a?b"])
def test_bad_domains(domain: str) -> None:
    with pytest.raises(ValueError):
        cloudfront_host(domain)


def test_s3_downloads_use_the_signer(keys: KeyPair) -> None:
    storage = S3Storage("bucket", url_signer=signer(keys))
    target = storage.download(KEY, "demo_pkg-1.0-py3-none-any.whl")
    assert target.url is not None and target.path is None
    verify_signed_url(target.url, keys.public_pem)


# --- options --------------------------------------------------------------------------------


def test_pypicloud_options_build_the_signer(keys: KeyPair, tmp_path: Path) -> None:
    pem = tmp_path / "cf.pem"
    pem.write_bytes(keys.private_pem)
    for source in (
        {"storage.cloud_front_key_file": str(pem)},
        {"storage.cloud_front_key_string": keys.private_pem.decode()},
    ):
        options = {
            "storage.cloud_front_domain": "https://d1.cloudfront.net",
            "storage.cloud_front_key_id": "K9",
            **source,
        }
        built = download_signer(options, expiry=60)
        assert built is not None
        signed = verify_signed_url(built(KEY, "f"), keys.public_pem)
        assert signed.key_pair_id == "K9"
    assert download_signer({}, expiry=60) is None


@pytest.mark.parametrize(
    "options",
    [
        {"storage.cloud_front_key_id": "K1", "storage.cloud_front_key_file": "x"},  # no domain
        {"storage.cloud_front_domain": "d", "storage.cloud_front_key_id": "K1"},  # no key
        {"storage.cloud_front_domain": "d", "storage.cloud_front_key_file": "x"},  # no key id
        {
            "storage.cloud_front_domain": "d",
            "storage.cloud_front_key_id": "K1",
            "storage.cloud_front_key_file": "x",
            "storage.cloud_front_key_secret": "y",
        },
    ],
)
def test_incomplete_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        CloudFrontSettings.from_options(options)


def test_settings_hide_the_key_string() -> None:
    found = CloudFrontSettings.from_options(
        {
            "storage.cloud_front_domain": "d",
            "storage.cloud_front_key_id": "K1",
            "storage.cloud_front_key_string": "-----BEGIN PRIVATE KEY-----",
        }
    )
    assert "PRIVATE" not in repr(found)


def test_lambda_environment_names_a_secret_never_a_key() -> None:
    options = options_from_env(
        {
            "STRATUS_STORAGE_CLOUD_FRONT_DOMAIN": "d1.cloudfront.net",
            "STRATUS_STORAGE_CLOUD_FRONT_KEY_ID": "K1",
            "STRATUS_STORAGE_CLOUD_FRONT_KEY_SECRET": "stratus/cloudfront/k1",
        }
    )
    assert options["storage.cloud_front_key_secret"] == "stratus/cloudfront/k1"
    with pytest.raises(RuntimeError, match="never goes into an environment variable"):
        options_from_env({"STRATUS_STORAGE_CLOUD_FRONT_KEY_STRING": "-----BEGIN"})


def test_key_file_loader_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(b"pem")
    assert key_from_file(str(tmp_path / "k.pem"))() == b"pem"
