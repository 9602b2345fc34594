"""``stratus cloudfront-keygen``: a key pair for CloudFront signed download URLs.

The private key goes straight where the API reads it: the Secrets Manager secret
``<prefix><name>`` (the stacks' ``cloudfront_key_secret_prefix``), or for local use a
file readable by its owner only (``storage.cloud_front_key_file``). It is never printed.
The public key is written to a file (or printed) for ``cloudfront_public_keys`` in
``cdk.json``; CloudFront's key group holds it and checks signatures with it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

KEY_SIZE = 2048  # what CloudFront accepts for RSA
DEFAULT_SECRET_PREFIX = "stratus/cloudfront/"


def generate() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new RSA key pair."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; refuse to overwrite anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def store_in_secrets_manager(secret_name: str, private_pem: bytes) -> str:
    """Create the secret; refuse (``FileExistsError``) if it exists. Returns its ARN."""
    import boto3

    client = boto3.session.Session().client("secretsmanager")
    try:
        created = client.create_secret(
            Name=secret_name,
            Description="Stratus: private key signing CloudFront download URLs",
            SecretString=private_pem.decode(),
        )
    except client.exceptions.ResourceExistsException:
        raise FileExistsError(
            f"secret {secret_name!r} exists; a key in use is never replaced: rotate to a new "
            "name (README, CloudFront key rotation)"
        ) from None
    return str(created["ARN"])


def run(args: argparse.Namespace) -> int:
    name = args.name
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        print("stratus cloudfront-keygen: --name takes letters, digits, _ and -", file=sys.stderr)
        return 2
    private_pem, public_pem = generate()
    try:
        if args.private_key_out:
            _write_new(Path(args.private_key_out), private_pem, 0o600)
            where = f"file {args.private_key_out} (mode 600): storage.cloud_front_key_file"
        else:
            secret = args.secret_name or f"{args.secret_prefix}{name}"
            arn = store_in_secrets_manager(secret, private_pem)
            where = f"Secrets Manager secret {secret} ({arn})"
        if args.public_key_out:
            _write_new(Path(args.public_key_out), public_pem, 0o644)
    except FileExistsError as exc:
        print(f"stratus cloudfront-keygen: {exc}", file=sys.stderr)
        return 1
    if not args.public_key_out:
        sys.stdout.write(public_pem.decode())
    public_path = args.public_key_out or f"<the public key above, saved as keys/{name}.pem>"
    print(
        f"private key: {where}\n"
        f"public key:  {args.public_key_out or 'printed above'}\n\n"
        'For the stacks, in cdk.json\'s "context" (add to cloudfront_public_keys when '
        "rotating; sign with the new key once it is deployed):\n"
        f'  "cloudfront": true,\n'
        f'  "cloudfront_public_keys": {{"{name}": "{public_path}"}},\n'
        f'  "cloudfront_signing_key": "{name}"',
        file=sys.stderr,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "cloudfront-keygen",
        help="make a key pair for CloudFront signed URLs (private key to Secrets Manager)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("--name", required=True, help="key name, as in cloudfront_public_keys")
    cmd.add_argument(
        "--secret-prefix",
        default=DEFAULT_SECRET_PREFIX,
        help=f"the stacks' cloudfront_key_secret_prefix (default {DEFAULT_SECRET_PREFIX})",
    )
    cmd.add_argument("--secret-name", help="store the private key under this name instead")
    cmd.add_argument(
        "--private-key-out",
        help="local use: write the private key to this new file instead of Secrets Manager",
    )
    cmd.add_argument("--public-key-out", help="write the public key here (default: print it)")
    cmd.set_defaults(func=run)
