"""Deployment settings: CDK context values, each with a documented default.

Set them in ``cdk.json`` (``"context"``) or per command (``npx cdk deploy -c name=value``);
a platform team changes behaviour here, not in code. Values given with ``-c`` arrive as
strings and are converted to the default's type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from constructs import Node

from stratus.settings import as_bool

# CloudWatch Logs accepts only these retention periods (0 = never expire).
LOG_RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
_SECRET_WORDS = re.compile(
    r"password|secret|token|credential|private|signing_key|access_key", re.IGNORECASE
)
# Option names that match _SECRET_WORDS but hold no secret.
_NOT_SECRETS = frozenset({"auth_token_expire"})  # seconds a registration token stays valid
# Variables the stacks set themselves; an option must not override them.
_RESERVED_OPTIONS = frozenset(
    {
        "table_name",
        "bucket_name",
        "config",
        "auth",
        "auth_secret_id",
        "auth_kms_key_id",
        "auth_signing_key_secret",
        # CloudFront: the stacks set them from the cloudfront_* settings; never a key.
        "storage_cloud_front_domain",
        "storage_cloud_front_key_id",
        "storage_cloud_front_key_secret",
        "storage_cloud_front_key_file",
        "storage_cloud_front_key_string",
    }
)
ACCESS_BACKENDS = ("config", "dynamo", "aws_secrets_manager", "ldap")
_STAGE = re.compile(r"[a-z][a-z0-9-]{0,19}")
# CodeDeploy's predefined Lambda deployment configurations (LambdaDeploymentConfig names).
API_DEPLOYMENTS = (
    "canary_10_percent_5_minutes",
    "canary_10_percent_10_minutes",
    "canary_10_percent_15_minutes",
    "canary_10_percent_30_minutes",
    "linear_10_percent_every_1_minute",
    "linear_10_percent_every_2_minutes",
    "linear_10_percent_every_3_minutes",
    "linear_10_percent_every_10_minutes",
    "all_at_once",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_METRICS_NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/#:]{1,255}")
CLOUDFRONT_PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
# Lambda takes requests under 6 MiB; the body arrives base64-encoded (4/3) in a JSON event.
LAMBDA_MAX_UPLOAD_BYTES = 4_500_000
FALLBACK_MODES = ("none", "redirect", "cache")
# A KMS key ARN (not an alias: IAM statements name the key itself).
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")


@dataclass(frozen=True)
class DeploySettings:
    # --- names ---
    stack_prefix: str = "Stratus"  # stacks are <prefix>Storage, <prefix>Api, ...
    # A deployment stage ("staging", "production"...): stacks become <prefix><Stage>Storage,
    # ..., so one account holds several stages side by side; "" = no stage in the names.
    stage: str = ""
    # --- application options (pypicloud's names; STRATUS_<OPTION> in the API function) ---
    fallback: str = "none"  # none | redirect | cache (pypicloud's table; README: Fallback)
    allow_overwrite: bool = False  # let uploads replace an existing file
    default_read: str = "authenticated"  # groups that may read packages without an ACL entry
    default_write: str = ""  # groups that may upload packages without an ACL entry
    presign_expiry: int = 300  # seconds a presigned download URL stays valid
    options: dict[str, str] = field(default_factory=dict)  # further STRATUS_<OPTION> values
    # A pypicloud-style INI (users with password *hashes*, groups, package ACLs), bundled
    # into a small layer and passed as STRATUS_CONFIG; "" = no users (anonymous only).
    access_config_file: str = ""
    # --- access backend (STRATUS_AUTH of the API function) ---
    # "config": access_config_file, read-only. "dynamo": users, groups and permissions in
    # the index table, managed through the admin API. "aws_secrets_manager": one JSON user
    # database in a Secrets Manager secret the storage stack creates (retained), managed
    # through the admin API. "ldap": an LDAP directory, with the auth.ldap.* options in
    # access_config_file (the API function then also gets the ldap3 layer). API tokens live
    # in the index table whatever the backend.
    access_backend: str = "config"
    # KMS key ARN (key/..., not an alias) encrypting the secrets the storage stack creates:
    # the registration-token signing key, and the user database of aws_secrets_manager.
    # "" = the AWS managed key aws/secretsmanager.
    access_secret_kms_key_arn: str = ""
    # --- API ---
    api_memory_mb: int = 1024  # memory is also CPU: 1024 MB keeps cold starts short
    api_timeout_seconds: int = 29  # an HTTP API integration times out at 30 s
    api_throttle_rate: int = 200  # requests per second, steady state (stage default route)
    api_throttle_burst: int = 400
    # SnapStart: Lambda snapshots the initialized function (everything is built at import)
    # when a version is published and resumes new environments from it, instead of running
    # the init on each cold start. The API is always served through the alias "live".
    api_snapstart: bool = True
    # How CodeDeploy moves the alias "live" to a new version: one of API_DEPLOYMENTS
    # (canary = 10% first, the rest after the wait; linear = 10% more per step). It rolls
    # back by itself when the new version's errors or the API's 5xx alarm fire meanwhile.
    api_deployment: str = "canary_10_percent_5_minutes"
    # Concurrent executions reserved for (and capping) the API function; 0 = none, the API
    # shares the account's unreserved pool.
    api_reserved_concurrency: int = 0
    custom_domain: str = ""  # e.g. "pypi.example.com"; needs certificate_arn
    certificate_arn: str = ""  # ACM certificate for custom_domain, in the stack's region
    hosted_zone_id: str = ""  # optional: Route 53 zone in which to create the alias records
    hosted_zone_name: str = ""
    # --- sync (S3 events → SQS → Lambda) ---
    sync_memory_mb: int = 1024  # files uploaded with `aws s3 cp` are read whole to index them
    sync_timeout_seconds: int = 120
    sync_batch_size: int = 10
    sync_max_concurrency: int = 5  # concurrent sync invocations (2..1000)
    # Concurrent executions reserved for (and capping) the sync function, so a burst of S3
    # events cannot take the concurrency the API needs; at least sync_max_concurrency (or
    # 0 = none: an account still at the default limit of 10 cannot reserve any).
    sync_reserved_concurrency: int = 5
    sync_max_receive_count: int = 5  # attempts before a message goes to the dead-letter queue
    # --- reconcile ---
    reconcile_schedule: str = "rate(1 day)"  # EventBridge schedule expression; "" = by hand only
    reconcile_memory_mb: int = 1024
    reconcile_timeout_seconds: int = 900
    # --- storage and logs ---
    noncurrent_version_retention_days: int = 30  # old versions of overwritten/deleted files
    access_log_retention_days: int = 365  # S3 server access logs
    log_retention_days: int = 30  # Lambda and API access logs (a CloudWatch Logs value)
    audit_log_retention_days: int = 731  # the audit log group (a CloudWatch Logs value)
    storage_termination_protection: bool = True  # the stack holding the bucket and table
    # --- monitoring ---
    alarm_email: str = ""  # subscribed to the alarm topic when set
    api_5xx_alarm_threshold: int = 5  # 5xx answers per 5 minutes that raise the alarm
    # Telemetry of every function (Powertools): the CloudWatch namespace of the business
    # metrics, and the log level (one of LOG_LEVELS) of Powertools and of Lambda's filter.
    metrics_namespace: str = "Stratus"
    log_level: str = "INFO"
    # Alarm thresholds (infra/monitoring.py); each alarm notifies the alarm topic.
    api_p99_latency_alarm_ms: int = 3000  # API p99 latency (ms) over 5 minutes, 3 in a row
    # Concurrency "near the limit", in percent: of a function's reserved concurrency where
    # it has some, and of the account's (regional) concurrency quota for the others.
    concurrency_alarm_percent: int = 80
    # The account's regional concurrency quota (Service Quotas L-B99A9384; 1000 unless
    # raised or a new account's 10): ClaimedAccountConcurrency is alarmed against it.
    lambda_account_concurrency_limit: int = 1000
    sync_backlog_alarm_seconds: int = 900  # oldest S3 event waiting on the sync queue
    sync_dead_letter_age_alarm_seconds: int = 86400  # oldest dead letter left unhandled
    table_throttle_alarm_threshold: int = 1  # throttled index table requests per 5 minutes
    reconcile_drift_alarm_threshold: int = 1  # repairs (drift found) by reconcile runs in an hour
    # --- CloudFront: downloads through a CDN with signed URLs (infra/cdn.py) ---
    cloudfront: bool = False  # a distribution in front of the package bucket
    cloudfront_domain: str = ""  # e.g. "files.pypi.example.com"; needs the certificate
    cloudfront_certificate_arn: str = ""  # ACM certificate for cloudfront_domain, in us-east-1
    cloudfront_price_class: str = "PriceClass_100"  # or PriceClass_200, PriceClass_All
    # Public keys CloudFront checks signatures with: name → PEM file (relative to the
    # repository root; `stratus cloudfront-keygen` writes one). Two during a rotation.
    cloudfront_public_keys: dict[str, str] = field(default_factory=dict)
    cloudfront_signing_key: str = ""  # the name the API signs with ("" = the only one)
    # Secrets Manager secret <prefix><name> holds each key's private PEM (keygen stores it).
    cloudfront_key_secret_prefix: str = "stratus/cloudfront/"
    # --- upstream fallback (pypicloud's names; STRATUS_<OPTION> of the API and fill) ---
    always_show_upstream: bool = False  # list upstream files next to stored ones
    fallback_base_url: str = "https://pypi.org"  # the upstream (a read-only mirror)
    cache_update: str = "authenticated"  # groups that may fill the cache (fallback=cache)
    upstream_cache_seconds: int = 600  # upstream pages are revalidated after this long
    upstream_timeout: int = 10  # seconds to connect to / wait on the upstream
    private_projects: str = ""  # glob patterns of names that never come from the upstream
    origin_lock: bool = False  # first upload blocks the upstream / first fill blocks uploads
    # --- cache fill function (fallback = cache: fill queue → function → S3) ---
    fill_memory_mb: int = 512  # streams in 1 MB chunks and 8 MB parts: memory is not size
    fill_timeout_seconds: int = 900
    fill_ephemeral_storage_mb: int = 2048  # /tmp holds the file being filled (512..10240)
    fill_max_concurrency: int = 5  # concurrent fill invocations (2..1000)
    fill_max_receive_count: int = 3  # attempts before a fill job goes to its dead letters

    @classmethod
    def from_node(cls, node: Node) -> DeploySettings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = node.try_get_context(f.name)
            if raw is None:
                continue
            values[f.name] = _convert(f.name, raw, cls.__dataclass_fields__[f.name])
        settings = cls(**values)
        settings.validate()
        return settings

    @property
    def stack_names_prefix(self) -> str:
        """``stack_prefix`` plus the stage in title case: ``StratusStaging``."""
        return self.stack_prefix + "".join(p.title() for p in self.stage.split("-") if p)

    def validate(self) -> None:
        if self.stage and not _STAGE.fullmatch(self.stage):
            raise ValueError("stage: 1-20 lowercase letters, digits or '-', starting with a letter")
        if self.fallback not in FALLBACK_MODES:
            raise ValueError(f"fallback must be one of {', '.join(FALLBACK_MODES)}")
        if not re.fullmatch(r"https?://[^\s?#]+", self.fallback_base_url):
            raise ValueError("fallback_base_url must be an http(s) URL")
        if not 512 <= self.fill_ephemeral_storage_mb <= 10240:
            raise ValueError("fill_ephemeral_storage_mb must be within 512..10240")
        if not 2 <= self.fill_max_concurrency <= 1000:
            raise ValueError("fill_max_concurrency must be within 2..1000 (SQS event sources)")
        if not 1 <= self.fill_timeout_seconds <= 900:
            raise ValueError("fill_timeout_seconds: a Lambda function runs at most 900 s")
        for name in ("log_retention_days", "audit_log_retention_days"):
            if getattr(self, name) not in LOG_RETENTION_DAYS:
                raise ValueError(f"{name} must be one of {LOG_RETENTION_DAYS}")
        if bool(self.custom_domain) != bool(self.certificate_arn):
            raise ValueError("custom_domain and certificate_arn go together")
        if bool(self.hosted_zone_id) != bool(self.hosted_zone_name):
            raise ValueError("hosted_zone_id and hosted_zone_name go together")
        if self.hosted_zone_id and not self.custom_domain:
            raise ValueError("hosted_zone_id needs custom_domain")
        if not 1 <= self.api_timeout_seconds <= 30:
            raise ValueError("api_timeout_seconds: an HTTP API waits at most 30 s")
        if not 2 <= self.sync_max_concurrency <= 1000:
            raise ValueError("sync_max_concurrency must be within 2..1000 (SQS event sources)")
        if self.noncurrent_version_retention_days < 1:
            raise ValueError("noncurrent_version_retention_days must be at least 1")
        if self.access_backend not in ACCESS_BACKENDS:
            raise ValueError(f"access_backend must be one of {', '.join(ACCESS_BACKENDS)}")
        if self.access_backend == "ldap" and not self.access_config_file:
            raise ValueError("access_backend ldap needs access_config_file (auth.ldap.* options)")
        if self.api_deployment not in API_DEPLOYMENTS:
            raise ValueError(f"api_deployment must be one of {', '.join(API_DEPLOYMENTS)}")
        if self.api_reserved_concurrency < 0:
            raise ValueError("api_reserved_concurrency must be 0 (none) or more")
        if self.sync_reserved_concurrency and (
            self.sync_reserved_concurrency < self.sync_max_concurrency
        ):
            raise ValueError(
                "sync_reserved_concurrency must be 0 (none) or at least sync_max_concurrency: "
                "fewer would throttle the queue's own invocations"
            )
        if self.sync_reserved_concurrency < 0:
            raise ValueError("sync_reserved_concurrency must be 0 (none) or more")
        if self.access_secret_kms_key_arn and not _KMS_KEY_ARN.fullmatch(
            self.access_secret_kms_key_arn
        ):
            raise ValueError(
                "access_secret_kms_key_arn must be a KMS key ARN "
                "(arn:aws:kms:<region>:<account>:key/<key id>), not an alias or key id"
            )
        self.validate_cloudfront()
        self.validate_monitoring()
        for name in self.options:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"options: {name!r} is not an option name")
            if name in _RESERVED_OPTIONS:
                raise ValueError(
                    f"options: {name!r} is set by the stacks (see access_backend, "
                    "access_secret_kms_key_arn)"
                )
            if _SECRET_WORDS.search(name) and name not in _NOT_SECRETS:
                raise ValueError(
                    f"options: {name!r} looks like a secret; secrets never go into "
                    "environment variables (put password hashes in access_config_file)"
                )

    @property
    def cloudfront_signing_key_name(self) -> str:
        """The key the API signs with: ``cloudfront_signing_key`` or the only key."""
        if self.cloudfront_signing_key:
            return self.cloudfront_signing_key
        keys = list(self.cloudfront_public_keys)
        return keys[0] if len(keys) == 1 else ""

    def validate_cloudfront(self) -> None:
        if bool(self.cloudfront_domain) != bool(self.cloudfront_certificate_arn):
            raise ValueError("cloudfront_domain and cloudfront_certificate_arn go together")
        if self.cloudfront_certificate_arn and not self.cloudfront_certificate_arn.startswith(
            "arn:aws:acm:us-east-1:"
        ):
            raise ValueError("cloudfront_certificate_arn: CloudFront needs one in us-east-1")
        if self.cloudfront_price_class not in CLOUDFRONT_PRICE_CLASSES:
            raise ValueError(
                f"cloudfront_price_class must be one of {', '.join(CLOUDFRONT_PRICE_CLASSES)}"
            )
        for name in self.cloudfront_public_keys:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                raise ValueError(f"cloudfront_public_keys: {name!r} is not a key name")
        if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]*", self.cloudfront_key_secret_prefix):
            raise ValueError("cloudfront_key_secret_prefix: not a secret name prefix")
        if not self.cloudfront:
            return
        if not self.cloudfront_public_keys:
            raise ValueError(
                "cloudfront needs cloudfront_public_keys (run `stratus cloudfront-keygen`)"
            )
        if not self.cloudfront_signing_key_name:
            raise ValueError(
                "cloudfront_signing_key: name the key the API signs with (several keys are "
                "configured)"
            )
        if self.cloudfront_signing_key_name not in self.cloudfront_public_keys:
            raise ValueError("cloudfront_signing_key must name one of cloudfront_public_keys")

    def validate_monitoring(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if not _METRICS_NAMESPACE.fullmatch(self.metrics_namespace) or (
            self.metrics_namespace.startswith("AWS/")
        ):
            raise ValueError("metrics_namespace: 1-255 of A-Z a-z 0-9 . - _ / # : (not AWS/...)")
        if not 1 <= self.concurrency_alarm_percent <= 100:
            raise ValueError("concurrency_alarm_percent must be within 1..100")
        for name in (
            "api_5xx_alarm_threshold",
            "api_p99_latency_alarm_ms",
            "lambda_account_concurrency_limit",
            "sync_backlog_alarm_seconds",
            "sync_dead_letter_age_alarm_seconds",
            "table_throttle_alarm_threshold",
            "reconcile_drift_alarm_threshold",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def app_environment(self) -> dict[str, str]:
        """STRATUS_<OPTION> variables of the API function (not the table/bucket names)."""
        env = {
            "STRATUS_FALLBACK": self.fallback,
            "STRATUS_ALLOW_OVERWRITE": "true" if self.allow_overwrite else "false",
            "STRATUS_DEFAULT_READ": self.default_read,
            "STRATUS_DEFAULT_WRITE": self.default_write,
            "STRATUS_PRESIGN_EXPIRY": str(self.presign_expiry),
            "STRATUS_AUTH": self.access_backend,
            # Legacy uploads: just under what a Lambda request takes after base64, so a
            # larger twine upload is told about `stratus upload` (above that, API Gateway
            # answers its own 413).
            "STRATUS_MAX_UPLOAD_BYTES": str(LAMBDA_MAX_UPLOAD_BYTES),
            # A completing upload session is the function's until its timeout has passed.
            "STRATUS_UPLOAD_COMPLETION_LEASE": str(self.api_timeout_seconds + 5),
            **self.fallback_environment(),
        }
        for name, value in sorted(self.options.items()):
            env.setdefault(f"STRATUS_{name.upper()}", str(value))
        return env

    @property
    def fills_cache(self) -> bool:
        """Whether the fill queue and function exist (``fallback = cache``)."""
        return self.fallback == "cache"

    def fallback_environment(self) -> dict[str, str]:
        """The fallback's STRATUS_<OPTION> variables (API and fill function alike)."""
        if self.fallback == "none":
            return {}
        return {
            "STRATUS_ALWAYS_SHOW_UPSTREAM": "true" if self.always_show_upstream else "false",
            "STRATUS_FALLBACK_BASE_URL": self.fallback_base_url,
            "STRATUS_CACHE_UPDATE": self.cache_update,
            "STRATUS_UPSTREAM_CACHE_SECONDS": str(self.upstream_cache_seconds),
            "STRATUS_UPSTREAM_TIMEOUT": str(self.upstream_timeout),
            "STRATUS_PRIVATE_PROJECTS": self.private_projects,
            "STRATUS_ORIGIN_LOCK": "true" if self.origin_lock else "false",
        }


def _convert(name: str, raw: Any, f: Any) -> Any:
    kind = f.type
    try:
        if kind == "bool":
            return as_bool(raw, name)
        if kind == "int":
            return int(raw)
        if kind.startswith("dict"):
            value = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(value, dict):
                raise ValueError(raw)
            return {str(k): str(v) for k, v in value.items()}
        return str(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {name}: {raw!r} is not a valid {kind}") from None
