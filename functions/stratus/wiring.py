"""Build the adapters for a deployment: AWS (from environment variables) or local (a folder).

Handlers and the CLI call these; nothing else chooses adapters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .ports import AccessBackend, Catalog, Storage
from .settings import Settings


@dataclass
class Services:
    catalog: Catalog
    storage: Storage
    access: AccessBackend
    settings: Settings


def services_from_env(environ: Mapping[str, str] | None = None) -> Services:
    """The AWS deployment: ``STRATUS_TABLE_NAME``, ``STRATUS_BUCKET_NAME``, ``STRATUS_CONFIG``.

    Options come from ``STRATUS_<OPTION>`` variables; the config file supplies users,
    groups and package permissions (and options not set in the environment).
    """
    env = os.environ if environ is None else environ
    missing = [v for v in ("STRATUS_TABLE_NAME", "STRATUS_BUCKET_NAME") if not env.get(v)]
    if missing:
        raise RuntimeError(f"missing environment variable(s): {', '.join(missing)}")
    from .adapters.config_access import ConfigAccess
    from .adapters.dynamo_catalog import DynamoCatalog
    from .adapters.s3_storage import S3Storage

    options: dict[str, str] = {}
    access = ConfigAccess.from_options({})
    if env.get("STRATUS_CONFIG"):
        access, options = ConfigAccess.from_file(env["STRATUS_CONFIG"])
    merged = {k[len("pypi.") :]: v for k, v in options.items() if k.startswith("pypi.")}
    merged.update(
        {k[len("STRATUS_") :].lower(): v for k, v in env.items() if k.startswith("STRATUS_")}
    )
    settings = Settings.from_mapping(merged)
    return Services(
        catalog=DynamoCatalog(env["STRATUS_TABLE_NAME"]),
        storage=S3Storage(env["STRATUS_BUCKET_NAME"], presign_expiry=settings.presign_expiry),
        access=access,
        settings=settings,
    )


def services_local(data_dir: Path, config: Path | None = None) -> Services:
    """Local mode: ``<data_dir>/index.sqlite3`` and ``<data_dir>/files``."""
    from .adapters.config_access import ConfigAccess
    from .adapters.local_storage import LocalStorage
    from .adapters.sqlite_catalog import SqliteCatalog

    data_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, str] = {}
    access = ConfigAccess.from_options({})
    if config is not None:
        access, options = ConfigAccess.from_file(config)
    return Services(
        catalog=SqliteCatalog(data_dir / "index.sqlite3"),
        storage=LocalStorage(data_dir / "files"),
        access=access,
        settings=Settings.from_ini(options),
    )
