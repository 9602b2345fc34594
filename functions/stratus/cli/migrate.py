"""``stratus migrate OLD NEW``: copy every file and its index entry to another deployment,
pypicloud's ``ppc-migrate old_config.ini new_config.ini`` (``app.migrate`` does the work).

Each side is a local data dir (the folder of ``stratus serve --data-dir``) or an INI file
whose options name the storage and the catalog, with pypicloud's option names:

- ``pypi.storage = file`` (the default) and ``storage.dir = <data dir>``: files on disk
  and the SQLite index, as ``stratus serve`` keeps them;
- ``pypi.storage = s3``, ``storage.bucket = <bucket>`` (``storage.region_name``
  optional), ``pypi.db = dynamo`` and ``db.table_name = <table>``: a deployment's bucket
  and table. boto3 finds the credentials (and ``AWS_ENDPOINT_URL_*``) as usual.

Both are built by ``wiring`` (``services_local`` / ``services_from_env``), as ``stratus
serve`` and the Lambda functions build theirs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app.services import Services

# pypicloud's dotted class names of pypi.storage and pypi.db, so its config files work.
STORAGE_KINDS = {
    "file": "file",
    "files": "file",
    "pypicloud.storage.files.filestorage": "file",
    "pypicloud.storage.filestorage": "file",
    "s3": "s3",
    "pypicloud.storage.s3.s3storage": "s3",
    "pypicloud.storage.s3storage": "s3",
}
CATALOG_OF_STORAGE = {"file": "sqlite", "s3": "dynamo"}
DB_KINDS = {
    "sqlite": "sqlite",
    "sql": "sqlite",
    "pypicloud.cache.sql.sqlcache": "sqlite",
    "pypicloud.cache.sqlcache": "sqlite",
    "dynamo": "dynamo",
    "pypicloud.cache.dynamo.dynamocache": "dynamo",
    "pypicloud.cache.dynamocache": "dynamo",
}
CONFIG_SUFFIXES = (".ini", ".cfg", ".conf")
DEFAULT_PARALLEL = 4  # files copied at once


class SideError(ValueError):
    """A side of the migration that names no deployment Stratus can build."""


def services_for(spec: str, *, source: bool = False) -> Services:
    """The services of one side: a data dir, or an INI file naming storage and catalog.
    A destination's data dir may be new; a source's must exist."""
    from ..wiring import services_local

    path = Path(spec)
    if source and not path.exists():
        raise SideError(f"{spec}: no such config file or data dir")
    if path.is_dir() or (not path.exists() and path.suffix not in CONFIG_SUFFIXES):
        return services_local(path)
    if not path.is_file():
        raise SideError(f"{spec}: no such config file or data dir")
    from ..adapters.config_access import read_ini

    options = read_ini(path)
    storage = options.get("pypi.storage", "file").strip().lower()
    kind = STORAGE_KINDS.get(storage)
    if kind is None:
        raise SideError(f"{spec}: pypi.storage = {storage!r}; Stratus stores to file or s3")
    db = DB_KINDS.get(options.get("pypi.db", "").strip().lower() or CATALOG_OF_STORAGE[kind])
    if db != CATALOG_OF_STORAGE[kind]:
        raise SideError(
            f"{spec}: pypi.db = {options.get('pypi.db')!r}; Stratus keeps the index of "
            f"{kind} storage in {CATALOG_OF_STORAGE[kind]}"
        )
    if kind == "file":
        data_dir = options.get("storage.dir")
        if not data_dir:
            raise SideError(f"{spec}: storage.dir (the data dir) is missing")
        if source and not Path(data_dir).is_dir():
            raise SideError(f"{spec}: storage.dir {data_dir} is not a directory")
        return services_local(Path(data_dir), path)
    from ..wiring import services_from_env

    missing = [o for o in ("storage.bucket", "db.table_name") if not options.get(o)]
    if missing:
        raise SideError(f"{spec}: {' and '.join(missing)} missing")
    env = {
        "STRATUS_CONFIG": str(path),
        "STRATUS_BUCKET_NAME": options["storage.bucket"],
        "STRATUS_TABLE_NAME": options["db.table_name"],
    }
    region = options.get("storage.region_name") or os.environ.get("AWS_REGION")
    if region:
        env["STRATUS_BUCKET_REGION"] = region
    return services_from_env(env)


def run(args: argparse.Namespace) -> int:
    from ..app.migrate import Migration, Outcome, Side
    from .progress import from_args

    try:
        old, new = services_for(args.old, source=True), services_for(args.new)
    except (SideError, ValueError, RuntimeError) as exc:
        print(f"stratus migrate: {exc}", file=sys.stderr)
        return 2
    progress = from_args(args)

    def each(record, outcome: Outcome, reason: str) -> None:
        name = f"{record.project}/{record.filename}"
        if outcome is Outcome.PLANNED:
            print(f"would copy {name} ({record.size} bytes)", flush=True)
        elif outcome in (Outcome.CONFLICT, Outcome.FAILED):
            print(f"{outcome.value}: {name}: {reason}", file=sys.stderr, flush=True)

    migration = Migration(
        Side(old.catalog, old.storage),
        Side(new.catalog, new.storage),
        overwrite=args.overwrite,
        dry_run=args.dry_run,
    )
    report = migration.run(progress=progress.counter("migrated"), each=each, parallel=args.parallel)
    counts = ", ".join(
        f"{report.count(o)} {o.value}"
        for o in (
            (Outcome.PLANNED, Outcome.SKIPPED, Outcome.CONFLICT, Outcome.FAILED)
            if args.dry_run
            else (Outcome.COPIED, Outcome.SKIPPED, Outcome.CONFLICT, Outcome.FAILED)
        )
    )
    summary = f"{report.total} files: {counts}" + (" (dry run: nothing changed)" * args.dry_run)
    print(summary, flush=True)
    return 0 if report.ok else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .progress import add_arguments as progress_arguments

    cmd = sub.add_parser(
        "migrate",
        help="copy every file and index entry to another storage/index (pypicloud's ppc-migrate)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("old", metavar="OLD", help="the source: a data dir or an INI file")
    cmd.add_argument("new", metavar="NEW", help="the destination: a data dir or an INI file")
    cmd.add_argument("--dry-run", action="store_true", help="list what would be copied")
    cmd.add_argument(
        "--overwrite", action="store_true", help="replace a different file of the same name"
    )
    cmd.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        help=f"files copied at once (default {DEFAULT_PARALLEL})",
    )
    progress_arguments(cmd)
    cmd.set_defaults(func=run)
