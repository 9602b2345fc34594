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
    }
)
ACCESS_BACKENDS = ("config", "dynamo", "aws_secrets_manager")
_STAGE = re.compile(r"[a-z][a-z0-9-]{0,19}")
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
    # through the admin API. API tokens live in the index table whatever the backend.
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
    custom_domain: str = ""  # e.g. "pypi.example.com"; needs certificate_arn
    certificate_arn: str = ""  # ACM certificate for custom_domain, in the stack's region
    hosted_zone_id: str = ""  # optional: Route 53 zone in which to create the alias records
    hosted_zone_name: str = ""
    # --- sync (S3 events → SQS → Lambda) ---
    sync_memory_mb: int = 1024  # files uploaded with `aws s3 cp` are read whole to index them
    sync_timeout_seconds: int = 120
    sync_batch_size: int = 10
    sync_max_concurrency: int = 5  # concurrent sync invocations (2..1000)
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
        if self.access_secret_kms_key_arn and not _KMS_KEY_ARN.fullmatch(
            self.access_secret_kms_key_arn
        ):
            raise ValueError(
                "access_secret_kms_key_arn must be a KMS key ARN "
                "(arn:aws:kms:<region>:<account>:key/<key id>), not an alias or key id"
            )
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

    def app_environment(self) -> dict[str, str]:
        """STRATUS_<OPTION> variables of the API function (not the table/bucket names)."""
        env = {
            "STRATUS_FALLBACK": self.fallback,
            "STRATUS_ALLOW_OVERWRITE": "true" if self.allow_overwrite else "false",
            "STRATUS_DEFAULT_READ": self.default_read,
            "STRATUS_DEFAULT_WRITE": self.default_write,
            "STRATUS_PRESIGN_EXPIRY": str(self.presign_expiry),
            "STRATUS_AUTH": self.access_backend,
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
