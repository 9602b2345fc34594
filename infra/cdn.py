"""CloudFront in front of the package bucket (context ``cloudfront``; off by default).

* Origin Access Control: CloudFront signs its requests to S3 (SigV4). The bucket stays
  private; its policy lets only this distribution (``AWS:SourceArn``) read, and only
  objects under ``packages/`` (never staged uploads).
* Signed URLs only: the default behaviour trusts one key group whose public keys come
  from ``cloudfront_public_keys`` (PEM files; name → path). The private keys never reach
  the template: each lives in the Secrets Manager secret
  ``<cloudfront_key_secret_prefix><name>`` that ``stratus cloudfront-keygen`` stores, and
  the API function reads the one of ``cloudfront_signing_key`` (see ``api_environment``).
  A rotation keeps two keys in the group for a while (README, "CloudFront").
* HTTPS only (viewers), HTTP/2 and 3, IPv6, caching optimized (query strings, which carry
  the signatures, are not part of the cache key), standard access logs to a bucket of
  their own (CloudFront's log delivery writes with ACLs, which the other buckets refuse),
  optional custom domain (``cloudfront_domain`` + ``cloudfront_certificate_arn`` in
  us-east-1) with TLS 1.2 at least, and a price class.

It is built inside the storage stack: the bucket policy names the distribution and the
distribution names the bucket, which across two stacks would be a dependency cycle.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stratus.domain.keys import PACKAGE_PREFIX

from .functions import REPO_ROOT, StratusFunction, ack
from .settings import DeploySettings

# CloudFront's own names (the context option) → CDK's enum.
PRICE_CLASSES = {
    "PriceClass_100": cloudfront.PriceClass.PRICE_CLASS_100,
    "PriceClass_200": cloudfront.PriceClass.PRICE_CLASS_200,
    "PriceClass_All": cloudfront.PriceClass.PRICE_CLASS_ALL,
}


def read_public_key(path: str) -> str:
    """The PEM of an RSA public key file (relative paths: from the repository root).

    Refuses anything else, a private key above all: it would end up in the template.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    source = Path(path)
    if not source.is_absolute():
        source = REPO_ROOT / source
    if not source.is_file():
        raise FileNotFoundError(f"cloudfront_public_keys: {source} does not exist")
    pem = source.read_bytes()
    if b"PRIVATE KEY" in pem:
        raise ValueError(
            f"cloudfront_public_keys: {source} holds a private key; give the public key "
            "(the private one belongs in Secrets Manager: stratus cloudfront-keygen)"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ValueError(f"cloudfront_public_keys: {source} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048:
        raise ValueError(f"cloudfront_public_keys: {source}: CloudFront takes RSA 2048 keys")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class PackageCdn(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        bucket: s3.Bucket,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.public_keys = {
            name: cloudfront.PublicKey(
                self,
                f"Key-{name}",
                encoded_key=read_public_key(path),
                comment=f"Stratus download signing key {name}",
            )
            for name, path in sorted(settings.cloudfront_public_keys.items())
        }
        self.key_group = cloudfront.KeyGroup(
            self,
            "Signers",
            items=list(self.public_keys.values()),
            comment="Stratus: keys whose signatures CloudFront accepts",
        )
        self.signing_key = self.public_keys[settings.cloudfront_signing_key_name]

        self.logs = s3.Bucket(
            self,
            "Logs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # CloudFront's standard logging delivers with an ACL grant (awslogsdelivery).
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="cloudfront-logs-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-cloudfront-logs",
                    expiration=Duration.days(settings.access_log_retention_days),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        origin_access = cloudfront.S3OriginAccessControl(
            self,
            "OriginAccess",
            description="Stratus: CloudFront reads package files with SigV4",
            signing=cloudfront.Signing.SIGV4_ALWAYS,
        )
        # The origin with its access control, but without CDK's bucket policy statement
        # (all objects): the one below is scoped to packages/.
        origin = origins.S3BucketOrigin.with_bucket_defaults(
            bucket, origin_access_control_id=origin_access.origin_access_control_id
        )
        domain = settings.cloudfront_domain
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Stratus package downloads (signed URLs only)",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                compress=False,  # wheels and sdists are compressed already
                trusted_key_groups=[self.key_group],
            ),
            price_class=PRICE_CLASSES[settings.cloudfront_price_class],
            domain_names=[domain] if domain else None,
            certificate=(
                acm.Certificate.from_certificate_arn(
                    self, "Certificate", settings.cloudfront_certificate_arn
                )
                if domain
                else None
            ),
            minimum_protocol_version=(
                cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if domain else None
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_ipv6=True,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontReadsPackageFiles",
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{PACKAGE_PREFIX}*")],
                conditions={"StringEquals": {"AWS:SourceArn": self.distribution.distribution_arn}},
            )
        )
        ack(
            self.distribution,
            "AwsSolutions-CFR1",
            "Packages are private and every URL is signed; where users are is not restricted",
        )
        ack(
            self.distribution,
            "AwsSolutions-CFR2",
            "Only signed, short-lived URLs are served; a WAF web ACL can be attached per site",
        )
        if not domain:
            ack(
                self.distribution,
                "AwsSolutions-CFR4",
                "The default *.cloudfront.net certificate allows no TLS minimum; set "
                "cloudfront_domain for TLS 1.2+",
            )

        CfnOutput(
            self,
            "DistributionDomainName",
            value=self.distribution.distribution_domain_name,
            description="CloudFront domain serving the package files (signed URLs)",
        )
        for name, key in self.public_keys.items():
            CfnOutput(
                self,
                f"PublicKeyId-{name}",
                value=key.public_key_id,
                description=f"CloudFront key id of public key {name}",
            )

    @property
    def download_domain(self) -> str:
        return self.settings.cloudfront_domain or self.distribution.distribution_domain_name

    def signing_key_secret_name(self) -> str:
        prefix = self.settings.cloudfront_key_secret_prefix
        return f"{prefix}{self.settings.cloudfront_signing_key_name}"

    def api_environment(self) -> dict[str, str]:
        """The API function's ``storage.cloud_front_*`` options: names, never a key."""
        return {
            "STRATUS_STORAGE_CLOUD_FRONT_DOMAIN": self.download_domain,
            "STRATUS_STORAGE_CLOUD_FRONT_KEY_ID": self.signing_key.public_key_id,
            "STRATUS_STORAGE_CLOUD_FRONT_KEY_SECRET": self.signing_key_secret_name(),
        }

    def allow_signing(self, fn: StratusFunction) -> None:
        """Let ``fn`` read the secret holding the signing key's private PEM (only that one).

        Secrets Manager appends ``-`` and six random characters to a secret's ARN.
        """
        arn = Stack.of(fn).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=f"{self.signing_key_secret_name()}-??????",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        fn.allow("ReadCloudFrontSigningKey", ["secretsmanager:GetSecretValue"], [arn])
