"""Options, named as pypicloud names them where one exists.

Locally they come from a pypicloud-style INI file (``pypi.<option>`` keys, any section);
in Lambda from ``STRATUS_<OPTION>`` environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields


def as_bool(value: object) -> bool:
    """An option's truth: ``true``/``1``/``yes``/``on`` (any case) for strings."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


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
    fallback: str = "none"  # only "none" is implemented so far
    credential_cache_seconds: int = 60
    max_upload_bytes: int = 100 * 1024 * 1024
    web_ui: bool = True  # the browser interface (/, /project/..., /manage/ ...)
    site_title: str = "Stratus"  # shown in the web UI's header and page titles
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
                kwargs[f.name] = as_bool(raw)  # type: ignore[arg-type]
            elif isinstance(default, int):
                kwargs[f.name] = int(raw)  # type: ignore[arg-type]
            elif isinstance(default, tuple):
                kwargs[f.name] = _as_list(raw)  # type: ignore[arg-type]
            else:
                kwargs[f.name] = str(raw)
        if kwargs.get("fallback", "none") != "none":
            raise ValueError("pypi.fallback: only 'none' is supported in this version")
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_ini(cls, options: Mapping[str, str]) -> Settings:
        """From flat INI keys: ``pypi.default_read`` → ``default_read``."""
        picked = {k[len("pypi.") :]: v for k, v in options.items() if k.startswith("pypi.")}
        return cls.from_mapping(picked)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """From ``STRATUS_<OPTION>`` variables: ``STRATUS_DEFAULT_READ`` → ``default_read``."""
        env = os.environ if environ is None else environ
        picked = {
            f.name: env[f"STRATUS_{f.name.upper()}"]
            for f in fields(cls)
            if f"STRATUS_{f.name.upper()}" in env
        }
        return cls.from_mapping(picked)
