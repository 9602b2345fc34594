"""``stratus migrate`` (``app.migrate.Migration``): files per second from a local data dir
to another one and to S3 + DynamoDB (moto server and DynamoDB Local, the test launchers),
one file at a time and several at once, then the re-run that finds everything there.

    .venv/bin/python benchmarks/bench_migrate.py [--files 200] [--kib 64] [--parallel 1 4]

The emulators answer from this machine, so the S3 figures show the cost of the requests
the migration makes (per file: a catalog read, heads, a lease, up to three puts, the
catalog write), not AWS's latency; on AWS ``--parallel`` matters more.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))
from benchmarks.bench_coldstart import emulators  # noqa: E402
from tests.support.distributions import wheel_bytes  # noqa: E402


def source(data: Path, files: int, kib: int) -> None:
    from stratus.app.publish import Publisher
    from stratus.wiring import services_local

    services = services_local(data)
    publisher = Publisher(services.catalog, services.storage, allow_overwrite=False)
    for n in range(files):
        name = f"bench-{n % 20}"
        filename, payload = wheel_bytes(
            name, f"1.{n}", module_body=f"DATA = {os.urandom(kib * 512).hex()!r}\n"
        )
        publisher.upload(
            name=name, version=f"1.{n}", filename=filename, data=payload, digests={}, uploader="b"
        )


def timed(src, dst, parallel: int) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    from stratus.app.migrate import Migration, Outcome

    started = time.perf_counter()
    report = Migration(src, dst).run(parallel=parallel)
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{report.count(o)} {o.value}" for o in Outcome if report.count(o))
    return elapsed, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--kib", type=int, default=64, help="about this many KiB per wheel")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    from stratus.adapters.dynamo_catalog import DynamoCatalog
    from stratus.adapters.s3_storage import S3Storage
    from stratus.app.migrate import Side
    from stratus.wiring import services_local

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source(work / "src", args.files, args.kib)
        built = services_local(work / "src")
        src = Side(built.catalog, built.storage)
        rows = []
        with emulators(work) as env:
            import boto3

            from stratus.adapters.table_schema import create_table_kwargs

            for parallel in args.parallel:
                table = f"{env['STRATUS_TABLE_NAME']}-{parallel}"
                bucket = f"{env['STRATUS_BUCKET_NAME']}-{parallel}"
                boto3.client("dynamodb").create_table(**create_table_kwargs(table))
                boto3.client("s3").create_bucket(Bucket=bucket)
                aws = Side(DynamoCatalog(table), S3Storage(bucket))
                local_dst = services_local(work / f"dst-{parallel}")
                local = Side(local_dst.catalog, local_dst.storage)
                for target, dst in (("local → local", local), ("local → S3+DynamoDB", aws)):
                    for run in ("first run", "re-run"):
                        elapsed, counts = timed(src, dst, parallel)
                        rows.append((target, parallel, run, elapsed, args.files / elapsed, counts))
    print(f"{args.files} wheels of about {args.kib} KiB\n")
    print("| copy | parallel | run | seconds | files/s | outcome |")
    print("|---|---:|---|---:|---:|---|")
    for target, parallel, run, elapsed, rate, counts in rows:
        print(f"| {target} | {parallel} | {run} | {elapsed:.2f} | {rate:.0f} | {counts} |")


if __name__ == "__main__":
    main()
