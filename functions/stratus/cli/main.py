"""The ``stratus`` command: one subcommand per task, each listed with one line in ``--help``."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ports import AuditLog


def _serve(args: argparse.Namespace) -> int:
    from ..web.app import create_app
    from ..wiring import services_local
    from .server import ServerLimits, run

    config = Path(args.config) if args.config else None
    if config is not None and not config.is_file():
        print(f"stratus serve: config file {config} not found", file=sys.stderr)
        return 2
    services = services_local(Path(args.data_dir), config)
    app = create_app(services, access_log=True)
    print(
        f"Stratus serving {Path(args.data_dir).resolve()} on http://{args.host}:{args.port}/simple/",
        flush=True,
    )
    # stratus.access (a line per request) and stratus.audit go to stdout.
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    limits = ServerLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        limit_concurrency=args.limit_concurrency,
    )
    run(app, args.host, args.port, log_level=args.log_level, limits=limits)
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from ..domain.passwords import hash_password

    if args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("stratus hash-password: passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("stratus hash-password: empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _access_backend(args: argparse.Namespace):
    """The access backend of a deployment: --aws (STRATUS_* env) or --config/--data-dir."""
    from ..wiring import build_access, options_from_env

    if args.aws:
        import os

        return build_access(
            options_from_env(os.environ), table_name=os.environ.get("STRATUS_TABLE_NAME")
        )
    from ..adapters.config_access import read_ini

    options = read_ini(args.config) if args.config else {}
    return build_access(options, data_dir=Path(args.data_dir))


def _export_acl(args: argparse.Namespace) -> int:
    from ..app.acl_transfer import dump, write_acl_file
    from .progress import from_args

    progress = from_args(args)
    write_acl_file(dump(_access_backend(args), progress.counter("exported")), args.output)
    return 0


def _import_acl(args: argparse.Namespace) -> int:
    from ..app.acl_transfer import load, read_acl_file
    from ..ports import MutableAccessBackend
    from .progress import from_args

    backend = _access_backend(args)
    if not isinstance(backend, MutableAccessBackend):
        print(
            "stratus import-acl: the access backend is read-only; set pypi.auth to "
            "sqlite, dynamo or aws_secrets_manager",
            file=sys.stderr,
        )
        return 2
    progress = from_args(args)
    try:
        data = read_acl_file(args.input)
        load(backend, data, progress.counter("imported"))
    except ValueError as exc:
        print(f"stratus import-acl: {exc}", file=sys.stderr)
        return 1
    progress.say(
        f"imported {len(data.get('users', []))} users, {len(data.get('groups', {}))} groups, "
        f"{len(data.get('pending_users', []))} pending users"
    )
    return 0


def _audit(args: argparse.Namespace) -> int:
    """Print the latest audit records, one JSON object per line (oldest first)."""
    import os
    import time

    log: AuditLog
    if args.aws:
        from ..adapters.cloudwatch_audit import CloudWatchAuditLog

        group = os.environ.get("STRATUS_AUDIT_LOG_GROUP")
        if not group:
            print(
                "stratus audit: set STRATUS_AUDIT_LOG_GROUP (output AuditLogGroup)", file=sys.stderr
            )
            return 2
        log = CloudWatchAuditLog(group)
    else:
        from ..adapters.file_audit import FileAuditLog

        log = FileAuditLog(Path(args.data_dir) / "audit.log", echo=False)
    since = time.time() - args.hours * 3600 if args.hours else None
    for event in log.recent(args.limit, since=since):
        print(event.to_json())
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    """Rebuild (or check) the index from storage alone: a reconcile run, with progress;
    with the DynamoDB access backend, also the permissions' listing index (a backfill)."""
    import json
    import os
    import time

    from ..app.reconcile import reconcile
    from .progress import from_args

    if args.aws:
        from ..wiring import services_from_env

        services = services_from_env(os.environ)
    else:
        from ..wiring import services_local

        services = services_local(Path(args.data_dir), Path(args.config) if args.config else None)
    started = time.monotonic()
    shown = from_args(args)

    def progress(project: str, report) -> None:
        shown.tick(
            lambda: (
                f"  {report.projects} projects, {report.objects} files, "
                f"{report.repairs} repairs (at {project})"
            )
        )

    shown.say("rebuilding the index from storage ...")
    report = reconcile(
        services.catalog, services.storage, dry_run=args.dry_run, deep=args.deep, progress=progress
    )
    elapsed = time.monotonic() - started
    shown.say(
        f"done in {elapsed:.1f} s: {report.projects} projects, {report.objects} files, "
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.removed)} removed, {len(report.skipped)} skipped"
        + (" (dry run: nothing changed)" if args.dry_run else "")
    )
    backfill = getattr(services.access, "backfill_acl_index", None)
    if backfill is not None and not args.dry_run:  # DynamoDB access: tables of older releases
        shown.say(f"access index: {backfill()} permission copies written")
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0


def _trusted_publishing(args: argparse.Namespace):
    """The TrustedPublishing use case of a deployment (--aws or --config/--data-dir)."""
    import os

    from ..app.trusted_publishing import IssuerKeyCache, OidcSettings, TrustedPublishing
    from ..wiring import services_from_env, services_local

    if args.aws:
        services = services_from_env(os.environ)
    else:
        services = services_local(Path(args.data_dir), Path(args.config) if args.config else None)
    assert services.publishers and services.replay_guard and services.minted_tokens
    assert services.jwks is not None
    return TrustedPublishing(
        OidcSettings.from_options(services.settings.extra),
        publishers=services.publishers,
        replay_guard=services.replay_guard,
        minted_tokens=services.minted_tokens,
        catalog=services.catalog,
        keys=IssuerKeyCache(services.jwks),
    )


def _publishers(args: argparse.Namespace) -> int:
    import getpass
    import json

    from ..domain.errors import StratusError

    tp = _trusted_publishing(args)
    try:
        if args.action == "list":
            shown = [p.public() for p in tp.list_publishers(args.project)]
        elif args.action == "delete":
            shown = [tp.delete_publisher(args.project, args.id).public()]
        else:
            data: dict[str, object] = {"issuer": args.issuer}
            for key in ("repository", "workflow", "environment", "repository_owner_id"):
                if getattr(args, key):
                    data[key] = getattr(args, key)
            if args.claim:
                data["claims"] = dict(c.partition("=")[::2] for c in args.claim)
            created_by = f"cli:{getpass.getuser()}"
            shown = [tp.add_publisher(args.project, data, created_by=created_by).public()]
    except (StratusError, ValueError) as exc:
        print(f"stratus publishers: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(shown, indent=2))
    return 0


def _create_dev_resources(_: argparse.Namespace) -> int:
    from .dev_resources import create_dev_resources

    for line in create_dev_resources():
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from .progress import add_arguments as progress_arguments

    parser = argparse.ArgumentParser(
        prog="stratus",
        description="Stratus: a private Python package index (local server, admin tools).",
    )
    parser.add_argument("--version", action="version", version=f"stratus {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the index locally (files on disk, SQLite index)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", default="./stratus-data", help="default: ./stratus-data")
    serve.add_argument("--config", help="pypicloud-style INI file: users, groups, pypi.* options")
    serve.add_argument("--log-level", default="info")
    from .server import ServerLimits

    defaults = ServerLimits()
    for option, kind, text in (
        ("header_timeout", float, "seconds a client has to send a request's headers"),
        ("body_timeout", float, "seconds without a byte of a request body before closing"),
        ("keep_alive_timeout", float, "idle seconds between requests on a connection"),
        ("limit_concurrency", int, "connections and requests at once; 503 past it"),
    ):
        serve.add_argument(
            "--" + option.replace("_", "-"),
            type=kind,
            default=getattr(defaults, option),
            help=f"{text} (default: %(default)s)",
        )
    serve.set_defaults(func=_serve)

    hp = sub.add_parser("hash-password", help="print an argon2id hash for a user.<name> line")
    hp.add_argument("--password", help="(default: prompt, or read one line from stdin)")
    hp.set_defaults(func=_hash_password)

    for name, helptext in (
        ("export-acl", "write users, groups and permissions in pypicloud's ppc-export format"),
        ("import-acl", "load a ppc-export / export-acl file into a mutable access backend"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--config", help="INI file naming the backend (pypi.auth, auth.*)")
        cmd.add_argument("--data-dir", default="./stratus-data", help="local mode's data dir")
        cmd.add_argument("--aws", action="store_true", help="use the STRATUS_* environment")
        progress_arguments(cmd)
        if name == "export-acl":
            cmd.add_argument("-o", "--output", help="file (.gz: gzipped); default stdout")
            cmd.set_defaults(func=_export_acl)
        else:
            cmd.add_argument("-i", "--input", help="file (gzipped or not); default stdin")
            cmd.set_defaults(func=_import_acl)

    rebuild = sub.add_parser(
        "rebuild", help="rebuild the index from the stored files alone (a reconcile run)"
    )
    rebuild.add_argument("--data-dir", default="./stratus-data", help="local mode's data dir")
    rebuild.add_argument("--config", help="INI file (pypi.* options)")
    rebuild.add_argument("--aws", action="store_true", help="the deployment of STRATUS_* env")
    rebuild.add_argument("--dry-run", action="store_true", help="report, change nothing")
    rebuild.add_argument("--deep", action="store_true", help="check every file's sha256")
    rebuild.add_argument("--json", action="store_true", help="print the full report as JSON")
    progress_arguments(rebuild)
    rebuild.set_defaults(func=_rebuild)

    audit = sub.add_parser("audit", help="show the latest audit log records (JSON lines)")
    audit.add_argument("--data-dir", default="./stratus-data", help="local mode's data dir")
    audit.add_argument("--aws", action="store_true", help="read STRATUS_AUDIT_LOG_GROUP")
    audit.add_argument("-n", "--limit", type=int, default=50, help="records (default 50)")
    audit.add_argument("--hours", type=float, default=0, help="only the last N hours")
    audit.set_defaults(func=_audit)

    pubs = sub.add_parser(
        "publishers", help="list, add or delete a project's trusted publishers (OIDC)"
    )
    pubs_sub = pubs.add_subparsers(dest="action", required=True)
    for action, helptext in (
        ("list", "show the project's publishers (JSON)"),
        ("add", "add a publisher (pending if the project has no files yet)"),
        ("delete", "remove a publisher by id"),
    ):
        cmd = pubs_sub.add_parser(action, help=helptext)
        cmd.add_argument("project")
        cmd.add_argument("--config", help="INI file (oidc.* settings, the backends)")
        cmd.add_argument("--data-dir", default="./stratus-data", help="local mode's data dir")
        cmd.add_argument("--aws", action="store_true", help="use the STRATUS_* environment")
        cmd.set_defaults(func=_publishers)
        if action == "delete":
            cmd.add_argument("id", help="the publisher's id (see list)")
        if action == "add":
            cmd.add_argument("--issuer", required=True, help="github, gitlab or a generic name")
            cmd.add_argument("--repository", help="GitHub owner/name, GitLab namespace/project")
            cmd.add_argument("--workflow", help="GitHub workflow file, GitLab CI file path")
            cmd.add_argument("--environment", help="deployment environment (optional)")
            cmd.add_argument("--repository-owner-id", help="GitHub's numeric owner id")
            cmd.add_argument(
                "--claim", action="append", help="generic issuers: NAME=VALUE (repeat)"
            )

    from . import cloudfront_keygen, fetch, migrate, upload

    upload.add_parser(sub)
    fetch.add_parser(sub)
    migrate.add_parser(sub)
    cloudfront_keygen.add_parser(sub)

    dev = sub.add_parser(
        "create-dev-resources",
        help="create the DynamoDB table and S3 bucket on an emulator (AWS_ENDPOINT_URL*)",
    )
    dev.set_defaults(func=_create_dev_resources)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .extras import install_hint, missing_extra

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ImportError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(
            f"stratus {args.command}: this needs the {extra!r} extra ({exc.name} is not "
            f"installed): {install_hint(extra)}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
