"""Options, named as pypicloud names them where one exists.

Locally they come from a pypicloud-style INI file (``pypi.<option>`` keys, any section);
in Lambda from ``STRATUS_<OPTION>`` environment variables (``stratus.wiring`` reads both).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from .domain import fallback as fallback_rules

log = logging.getLogger(__name__)

# The words pypicloud's (pyramid's) ``asbool`` knows, and their negations.
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", ""})


def as_bool(value: object, name: str = "option") -> bool:
    """A boolean option: a bool, None (false) or one of the words above; else ValueError.

    The one parser of boolean options (settings, access backends, CDK context, events).
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{name}: {value!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _as_list(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return tuple(part for part in value.replace(",", " ").split() if part)


@dataclass(frozen=True)
class Settings:
    default_read: tuple[str, ...] = ("authenticated",)
    default_write: tuple[str, ...] = ()
    cache_update: tuple[str, ...] = ("authenticated",)
    allow_overwrite: bool = False
    realm: str = "pypi"
    package_max_age: int = 0
    presign_expiry: int = 300  # seconds a presigned download URL stays valid
    fallback: str = "none"  # none | redirect | cache (domain.fallback.Mode)
    credential_cache_seconds: int = 60
    max_upload_bytes: int = 100 * 1024 * 1024
    api_docs: bool = True  # GET /openapi.json and /docs
    web_ui: bool = True  # the browser interface (/, /project/..., /manage/ ...)
    site_title: str = "Stratus"  # shown in the web UI's header and page titles
    # --- upload sessions (``stratus upload``: bytes straight to storage) ---
    upload_session_ttl: int = 24 * 3600  # seconds a session lives (then it and its bytes go)
    upload_url_expiry: int = 3600  # seconds an upload URL stays valid (re-issued on demand)
    upload_multipart_threshold: int = 256 * 1024 * 1024  # larger files go in parts
    upload_part_size: int = 64 * 1024 * 1024  # S3 wants >= 5 MiB (all but the last part)
    upload_session_max_bytes: int = 50 * 1024**3  # the largest file a session takes
    upload_completion_lease: int = 600  # seconds a completion may run before another retries
    # Larger files complete in the background (a worker; the client polls the session).
    upload_async_complete_bytes: int = 1024**3
    upload_async_completion_lease: int = 960  # the worker's timeout (15 min) and a margin
    # --- upstream fallback (pypicloud's names; see domain.fallback and app.upstream) ---
    always_show_upstream: bool = False
    fallback_base_url: str = fallback_rules.DEFAULT_BASE_URL  # resolved, see from_mapping
    fallback_url: str = ""  # deprecated: the upstream's simple index (pypicloud)
    upstream_cache_seconds: int = 600  # an upstream page is revalidated after this long
    upstream_timeout: int = 10  # seconds to connect, and between bytes, to the upstream
    private_projects: tuple[str, ...] = ()  # glob patterns of names that never fall back
    origin_lock: bool = False  # the first origin (upload or cache fill) locks the other out
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Settings:
        """Build from ``{"default_read": "...", ...}`` (strings as in INI files)."""
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "extra" or f.name not in values:
                continue
            raw = values[f.name]
            default = f.default
            if isinstance(default, bool):
                kwargs[f.name] = as_bool(raw, f"pypi.{f.name}")
            elif isinstance(default, int):
                kwargs[f.name] = int(str(raw))
            elif isinstance(default, tuple):
                kwargs[f.name] = _as_list(raw)  # type: ignore[arg-type]
            else:
                kwargs[f.name] = str(raw)
        kwargs["fallback"] = fallback_rules.parse_mode(str(kwargs.get("fallback", "none"))).value
        if kwargs.get("fallback_url") and not kwargs.get("fallback_base_url"):
            log.warning("pypi.fallback_url is deprecated: use pypi.fallback_base_url")
        kwargs["fallback_base_url"] = fallback_rules.base_url(
            kwargs.get("fallback_base_url"),  # type: ignore[arg-type]
            kwargs.get("fallback_url"),  # type: ignore[arg-type]
        )
        kwargs["private_projects"] = fallback_rules.parse_patterns(
            kwargs.get("private_projects", ())  # type: ignore[arg-type]
        )
        settings = cls(**kwargs)  # type: ignore[arg-type]
        if settings.upstream_cache_seconds < 0 or settings.upstream_timeout < 1:
            raise ValueError("pypi.upstream_cache_seconds >= 0 and pypi.upstream_timeout >= 1")
        return settings


@dataclass(frozen=True)
class CloudFrontSettings:
    """pypicloud's ``storage.cloud_front_*`` options (§1.4.3), plus ``cloud_front_key_secret``
    (a Secrets Manager secret holding the private key's PEM: what the stacks use).

    In Lambda they come from ``STRATUS_STORAGE_CLOUD_FRONT_<X>`` variables (names only:
    the stacks never put a key there). Downloads redirect to the distribution when
    ``domain`` is set; to presigned S3 URLs otherwise.
    """

    domain: str = ""
    key_id: str = ""
    key_file: str = ""
    key_string: str = field(default="", repr=False)
    key_secret: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> CloudFrontSettings:
        def get(name: str) -> str:
            return str(options.get(f"storage.cloud_front_{name}", "")).strip()

        found = cls(
            domain=get("domain"),
            key_id=get("key_id"),
            key_file=get("key_file"),
            key_string=str(options.get("storage.cloud_front_key_string", "")),
            key_secret=get("key_secret"),
        )
        found.validate()
        return found

    @property
    def enabled(self) -> bool:
        return bool(self.domain)

    def validate(self) -> None:
        sources = [s for s in (self.key_file, self.key_string.strip(), self.key_secret) if s]
        if len(sources) > 1:
            raise ValueError(
                "storage.cloud_front_key_file, _key_string and _key_secret: set one at most"
            )
        if (sources or self.key_id) and not self.domain:
            raise ValueError("storage.cloud_front_key_*: set storage.cloud_front_domain too")
        if bool(sources) != bool(self.key_id):
            raise ValueError(
                "storage.cloud_front_key_id and a private key (cloud_front_key_file, "
                "cloud_front_key_string or cloud_front_key_secret) go together"
            )
