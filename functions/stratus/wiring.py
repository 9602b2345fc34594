"""Build the adapters for a deployment: AWS (from environment variables) or local (a folder).

Handlers and the CLI call these; nothing else chooses adapters. The access backend is
chosen by ``pypi.auth`` as in pypicloud: ``config`` (default), ``sql``/``sqlite``,
``dynamo``, ``aws_secrets_manager``, ``remote`` or ``ldap``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .app.services import Services
from .ports import AuditLog, DirectoryBackend, MutableAccessBackend, TokenStore
from .settings import CloudFrontSettings, Settings

__all__ = [
    "Services",
    "backend_kind",
    "build_access",
    "connect",
    "new_environment",
    "services_from_env",
    "services_local",
    "signing_key",
]

if TYPE_CHECKING:
    from .adapters.sqs_queue import SqsSenders
    from .app.upstream import FallbackServices
    from .ports import FillLocks, FillQueue, OriginStore, PageCache, UpstreamIndex

ACCESS_BACKENDS = ("config", "sql", "sqlite", "dynamo", "aws_secrets_manager", "remote", "ldap")
# pypicloud's dotted class names for pypi.auth, so its config files work unchanged.
PYPICLOUD_NAMES = {
    "pypicloud.access.configaccessbackend": "config",
    "pypicloud.access.sql.sqlaccessbackend": "sql",
    "pypicloud.access.aws_secrets_manager.awssecretsmanageraccessbackend": "aws_secrets_manager",
    "pypicloud.access.remoteaccessbackend": "remote",
    "pypicloud.access.ldap_.ldapaccessbackend": "ldap",
}


def backend_kind(auth: str) -> str:
    """The backend ``pypi.auth`` names: ours, or pypicloud's dotted class name for it."""
    kind = auth.strip().lower()
    return PYPICLOUD_NAMES.get(kind, kind)


def build_access(
    options: Mapping[str, str], *, data_dir: Path | None = None, table_name: str | None = None
) -> DirectoryBackend:
    kind = backend_kind(options.get("pypi.auth", "config"))
    if kind == "config":
        from .adapters.config_access import ConfigAccess

        return ConfigAccess.from_options(options)
    if kind in ("sql", "sqlite"):
        from .adapters.sqlite_access import SqliteAccess

        path = options.get("auth.db.path") or (data_dir / "access.sqlite3" if data_dir else None)
        if path is None:
            raise ValueError("pypi.auth = sqlite needs auth.db.path (or local mode's data dir)")
        return SqliteAccess(path)
    if kind == "dynamo":
        from .adapters.dynamo_access import DynamoAccess

        if not table_name:
            raise ValueError("pypi.auth = dynamo needs STRATUS_TABLE_NAME")
        return DynamoAccess(table_name)
    if kind == "aws_secrets_manager":
        from .adapters.secrets_access import SecretsManagerAccess

        return SecretsManagerAccess.from_options(options)
    if kind == "remote":
        from .adapters.remote_access import RemoteAccess

        return RemoteAccess.from_options(options)
    if kind == "ldap":
        from .adapters.ldap_access import LdapAccess

        return LdapAccess.from_options(options)
    raise ValueError(
        f"pypi.auth: unknown backend {kind!r}; choose one of {', '.join(ACCESS_BACKENDS)}"
    )


def _settings(options: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> Settings:
    picked = {k[len("pypi.") :]: v for k, v in options.items() if k.startswith("pypi.")}
    picked.update(overrides or {})
    return replace(Settings.from_mapping(picked), extra=dict(options))


def options_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """INI-style options of a Lambda: the ``STRATUS_CONFIG`` file, then the environment.

    ``STRATUS_AUTH`` → ``pypi.auth``; ``STRATUS_AUTH_<X>`` → ``auth.<x>`` (non-secret
    settings only, such as ``STRATUS_AUTH_SECRET_ID``); ``STRATUS_OIDC_<X>`` → ``oidc.<x>``;
    ``STRATUS_STORAGE_<X>`` → ``storage.<x>`` (such as ``STRATUS_STORAGE_CLOUD_FRONT_DOMAIN``).
    """
    options: dict[str, str] = {}
    if env.get("STRATUS_CONFIG"):
        from .adapters.config_access import read_ini

        options.update(read_ini(env["STRATUS_CONFIG"]))
    if env.get("STRATUS_AUTH"):
        options["pypi.auth"] = env["STRATUS_AUTH"]
    for key, value in env.items():
        if key.startswith("STRATUS_AUTH_"):
            options["auth." + key[len("STRATUS_AUTH_") :].lower()] = value
        elif key.startswith("STRATUS_OIDC_"):
            options["oidc." + key[len("STRATUS_OIDC_") :].lower()] = value
        elif key.startswith("STRATUS_STORAGE_"):
            if key == "STRATUS_STORAGE_CLOUD_FRONT_KEY_STRING":
                raise RuntimeError(
                    "STRATUS_STORAGE_CLOUD_FRONT_KEY_STRING: a private key never goes into an "
                    "environment variable; name a secret in "
                    "STRATUS_STORAGE_CLOUD_FRONT_KEY_SECRET instead"
                )
            options["storage." + key[len("STRATUS_STORAGE_") :].lower()] = value
    return options


def download_signer(options: Mapping[str, str], expiry: int) -> Any:
    """The CloudFront URL signer the ``storage.cloud_front_*`` options describe, or None."""
    cloudfront = CloudFrontSettings.from_options(options)
    if not cloudfront.enabled:
        return None
    from .adapters.cloudfront import CloudFrontUrlSigner, key_from_file, key_from_secret

    if cloudfront.key_secret:
        load = key_from_secret(cloudfront.key_secret)
    elif cloudfront.key_file:
        load = key_from_file(cloudfront.key_file)
    elif cloudfront.key_string.strip():
        pem = cloudfront.key_string.encode()
        load = lambda: pem  # noqa: E731
    else:
        load = None
    return CloudFrontUrlSigner(cloudfront.domain, cloudfront.key_id or None, load, expiry=expiry)


def services_from_env(environ: Mapping[str, str] | None = None) -> Services:
    """The AWS deployment: ``STRATUS_TABLE_NAME``, ``STRATUS_BUCKET_NAME``, ``STRATUS_CONFIG``.

    Options come from ``STRATUS_<OPTION>`` variables over the config file's ``pypi.*``.
    """
    env = os.environ if environ is None else environ
    missing = [v for v in ("STRATUS_TABLE_NAME", "STRATUS_BUCKET_NAME") if not env.get(v)]
    if missing:
        raise RuntimeError(f"missing environment variable(s): {', '.join(missing)}")
    from .adapters.dynamo_catalog import DynamoCatalog
    from .adapters.dynamo_publishers import DynamoPublishers
    from .adapters.dynamo_upload_sessions import DynamoUploadSessions
    from .adapters.http_jwks import HttpJwksSource
    from .adapters.s3_storage import S3Storage

    table = env["STRATUS_TABLE_NAME"]
    options = options_from_env(env)
    overrides = {
        k[len("STRATUS_") :].lower(): v
        for k, v in env.items()
        if k.startswith("STRATUS_")
        and not k.startswith(("STRATUS_AUTH", "STRATUS_OIDC_", "STRATUS_STORAGE_"))
    }
    settings = _settings(options, overrides)
    access = build_access(options, table_name=table)
    tokens: TokenStore | None = access if isinstance(access, MutableAccessBackend) else None
    if tokens is None:
        from .adapters.dynamo_access import DynamoAccess

        tokens = DynamoAccess(table)
    from .adapters.dynamo_runs import DynamoReconcileRuns
    from .adapters.emf_metrics import EmfCounter
    from .adapters.sqs_queue import SqsSenders

    runs = DynamoReconcileRuns(table)
    senders = SqsSenders()  # one SQS client for all the queues below
    rebuild = None
    if env.get("STRATUS_RECONCILE_QUEUE_URL"):
        from .app.rebuild import QueueRunner

        rebuild = QueueRunner(runs, senders(env["STRATUS_RECONCILE_QUEUE_URL"]))
    completions = None
    if env.get("STRATUS_UPLOAD_COMPLETION_QUEUE_URL"):  # large uploads complete in a worker
        from .app.upload_completion import QueueCompletions

        completions = QueueCompletions(senders(env["STRATUS_UPLOAD_COMPLETION_QUEUE_URL"]))
    oidc_state = DynamoPublishers(table)
    storage = S3Storage(
        env["STRATUS_BUCKET_NAME"],
        presign_expiry=settings.presign_expiry,
        region=env.get("STRATUS_BUCKET_REGION") or env.get("AWS_REGION") or None,
        url_signer=download_signer(options, settings.presign_expiry),
    )
    services = Services(
        catalog=DynamoCatalog(table),
        storage=storage,
        access=access,
        settings=settings,
        tokens=tokens,
        signing_key=signing_key(options),
        audit=_cloudwatch_audit(env),
        metrics=EmfCounter(),
        reconcile_runs=runs,
        rebuild=rebuild,
        publishers=oidc_state,
        replay_guard=oidc_state,
        minted_tokens=oidc_state,
        jwks=HttpJwksSource(),
        upload_sessions=DynamoUploadSessions(table),
        upload_completions=completions,
    )
    services.fallback = fallback_from_env(services, env, senders=senders)
    return services


def _cloudwatch_audit(env: Mapping[str, str]) -> AuditLog | None:
    """The audit log group named by ``STRATUS_AUDIT_LOG_GROUP`` (the API stack sets it)."""
    group = env.get("STRATUS_AUDIT_LOG_GROUP")
    if not group:
        return None
    from .adapters.cloudwatch_audit import CloudWatchAuditLog

    return CloudWatchAuditLog(group)


def services_local(data_dir: Path, config: Path | None = None) -> Services:
    """Local mode: ``<data_dir>/index.sqlite3``, ``<data_dir>/files`` (and ``access.sqlite3``)."""
    from .adapters.config_access import read_ini
    from .adapters.file_audit import FileAuditLog
    from .adapters.http_jwks import HttpJwksSource
    from .adapters.local_storage import LocalStorage
    from .adapters.sqlite_access import SqliteAccess
    from .adapters.sqlite_catalog import SqliteCatalog
    from .adapters.sqlite_publishers import SqlitePublishers
    from .adapters.sqlite_runs import SqliteReconcileRuns
    from .adapters.sqlite_upload_sessions import SqliteUploadSessions
    from .app.rebuild import ThreadRunner
    from .app.upload_completion import ThreadCompletions

    data_dir.mkdir(parents=True, exist_ok=True)
    options = read_ini(config) if config is not None else {}
    access = build_access(options, data_dir=data_dir)
    catalog = SqliteCatalog(data_dir / "index.sqlite3")
    storage = LocalStorage(data_dir / "files")
    runs = SqliteReconcileRuns(data_dir / "index.sqlite3")
    oidc_state = SqlitePublishers(data_dir / "oidc.sqlite3")
    tokens: TokenStore | None = access if isinstance(access, MutableAccessBackend) else None
    services = Services(
        catalog=catalog,
        storage=storage,
        access=access,
        settings=_settings(options),
        tokens=tokens or SqliteAccess(data_dir / "access.sqlite3"),
        signing_key=signing_key(options),
        audit=FileAuditLog(data_dir / "audit.log"),
        reconcile_runs=runs,
        rebuild=ThreadRunner(catalog, storage, runs),
        publishers=oidc_state,
        replay_guard=oidc_state,
        minted_tokens=oidc_state,
        jwks=HttpJwksSource(),
        upload_sessions=SqliteUploadSessions(data_dir / "uploads.sqlite3"),
        upload_completions=ThreadCompletions(),
    )
    services.fallback = fallback_local(services, data_dir)
    return services


def signing_key(options: Mapping[str, str]) -> str | None:
    """``auth.signing_key``, or the SecretString of the secret named by
    ``auth.signing_key_secret`` (env ``STRATUS_AUTH_SIGNING_KEY_SECRET``).

    Called once when the services are built (Lambda init), never per request.
    """
    if options.get("auth.signing_key"):
        return options["auth.signing_key"]
    secret_id = options.get("auth.signing_key_secret")
    if not secret_id:
        return None
    from .adapters.aws_client import new_client

    client = new_client("secretsmanager")
    try:
        return client.get_secret_value(SecretId=secret_id)["SecretString"]
    finally:
        client.close()  # a Lambda init: leave no connection open in the snapshot


def _adapters(services: Services) -> list[object]:
    """The adapter objects of ``services`` (each once), as found in its fields."""
    found: dict[int, object] = {}
    for field in fields(services):
        value = getattr(services, field.name)
        if value is not None and not isinstance(value, str | Settings):
            found.setdefault(id(value), value)
    return list(found.values())


def _call_each(services: Services, method_name: str) -> None:
    for adapter in _adapters(services):
        method = getattr(adapter, method_name, None)
        if callable(method):
            method()


def connect(services: Services) -> None:
    """Make every AWS client the adapters need now, sending no request, and load the
    password hashing if logins are checked against stored hashes.

    For a Lambda init: the clients (botocore's service models, pynamodb's models) and the
    hashing (passlib, argon2) are then ready before the first request, and in the SnapStart
    snapshot; no connection is open. A deployment whose logins are checked elsewhere (LDAP,
    a remote server) or that has no users never loads the hashing.
    """
    _call_each(services, "connect")
    if isinstance(services.access, MutableAccessBackend):  # sqlite, dynamo, secrets manager
        from .domain import passwords

        passwords.context()


def new_environment(services: Services) -> None:
    """After a SnapStart restore: what must differ per execution environment, anew.

    The AWS clients' pooled connections are closed (a connection from the snapshot would
    be another environment's; the clients stay and reconnect), and the audit log forgets
    its stream (each environment writes its own).
    """
    _call_each(services, "close_connections")
    _call_each(services, "reset")


# --- upstream fallback ----------------------------------------------------------------------


def build_fallback(
    services: Services,
    *,
    page_cache: PageCache,
    origin_store: OriginStore,
    locks: FillLocks | None = None,
    queue: FillQueue | None = None,
    temp_dir: Path | None = None,
    upstream: UpstreamIndex | None = None,
) -> FallbackServices:
    """The fallback on a deployment's adapters (``pypi.fallback`` and friends)."""
    from .adapters.http_upstream import HttpUpstream
    from .app.fill import Filler
    from .app.origins import OriginPolicy
    from .app.publish import Publisher
    from .app.upstream import Fallback, FallbackServices, UpstreamPages
    from .domain import fallback

    settings = services.settings
    origins = OriginPolicy(
        origin_store,
        services.catalog,
        private_patterns=settings.private_projects,
        origin_lock=settings.origin_lock,
    )
    if fallback.parse_mode(settings.fallback) is fallback.Mode.NONE:
        return FallbackServices(Fallback(settings, services.catalog, origins, None), origins)
    upstream = upstream or HttpUpstream(
        settings.fallback_base_url, timeout=settings.upstream_timeout
    )
    pages = UpstreamPages(
        upstream,
        page_cache,
        ttl_seconds=settings.upstream_cache_seconds,
        metrics=services.metrics,
    )
    filler = Filler(
        upstream,
        Publisher(services.catalog, services.storage, allow_overwrite=False),
        origins,
        mirror=fallback.mirror_name(settings.fallback_base_url),
        temp_dir=temp_dir,
        locks=locks,
        queue=queue,
        metrics=services.metrics,
    )
    return FallbackServices(
        Fallback(settings, services.catalog, origins, pages), origins, pages, filler
    )


def fallback_local(services: Services, data_dir: Path) -> FallbackServices:
    """Local mode: pages in ``<data_dir>/upstream.sqlite3``, origin controls in the index
    file; fills stream in the request (no queue, no locks)."""
    from .adapters.sqlite_origins import SqliteOrigins
    from .adapters.sqlite_page_cache import SqlitePageCache
    from .domain.fallback import mirror_name

    mirror = mirror_name(services.settings.fallback_base_url)
    return build_fallback(
        services,
        page_cache=SqlitePageCache(data_dir / "upstream.sqlite3", mirror=mirror),
        origin_store=SqliteOrigins(data_dir / "index.sqlite3"),
    )


def fallback_from_env(
    services: Services,
    environ: Mapping[str, str] | None = None,
    *,
    senders: SqsSenders | None = None,
) -> FallbackServices:
    """AWS: pages, origin controls and fill locks in the index table; fills go to the
    queue ``STRATUS_FILL_QUEUE_URL`` (when set; inline otherwise)."""
    from .adapters.dynamo_origins import DynamoOrigins
    from .adapters.dynamo_page_cache import DynamoFillLocks, DynamoPageCache
    from .adapters.sqs_queue import SqsSenders
    from .domain.fallback import mirror_name

    env = os.environ if environ is None else environ
    table = env["STRATUS_TABLE_NAME"]
    queue_url = env.get("STRATUS_FILL_QUEUE_URL")
    return build_fallback(
        services,
        page_cache=DynamoPageCache(table, mirror=mirror_name(services.settings.fallback_base_url)),
        origin_store=DynamoOrigins(table),
        locks=DynamoFillLocks(table),
        queue=(senders or SqsSenders())(queue_url) if queue_url else None,
    )
