"""Upload sessions on the S3 emulator: throughput against a direct put, and the memory
that completing a session takes.

Prints two tables:

1. Throughput of one file (default 200 MB) to the moto server: ``aws s3 cp``-style
   (boto3's ``upload_file``: 8 MB parts, 10 threads), one presigned PUT, and
   ``stratus upload`` through the app (upload session: one presigned PUT whose SHA-256
   the emulator checks, or parts in parallel), end to end (hashing the file, creating the
   session, sending, completing: the check in place, then for a one-PUT session, which
   S3 stores at the file's final key, the removal of its pending tag, for a multipart
   one the server-side copy out of ``uploads/``), with its
   phases: hashing, sending (what ``aws s3 cp`` does) and completing. Target: the session
   path at 0.8 times the direct put or better.
2. The Python heap peak (tracemalloc) of ``complete`` for 50 MB and 200 MB files: one-PUT
   sessions (S3 checked the SHA-256 on the way in), multipart ones (S3 computes it in a
   copy), and multipart ones whose SHA-256 is streamed here (objects past S3's 5 GiB copy
   limit, lowered for the run). Target: independent of the file's size.

Run (it starts its own moto server; nothing else is needed):

    .venv/bin/python benchmarks/bench_upload_sessions.py [--mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "functions"):
    sys.path.insert(0, str(path))

from tests.support.distributions import write_wheel_with_payload  # noqa: E402
from tests.support.processes import free_port, stop  # noqa: E402

MIB = 1024 * 1024


def start_moto(workdir: Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "moto-port"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "moto_server.py"), str(port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not port_file.exists():
        if process.poll() is not None:
            sys.exit("moto server did not start")
        time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port_file.read_text()}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
    )
    import boto3

    client = boto3.client("s3")
    for _ in range(200):
        try:
            client.list_buckets()
            break
        except Exception:
            time.sleep(0.05)
    return process, endpoint


def new_bucket() -> str:
    import boto3

    name = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def services_on(bucket: str, data: Path, **settings: str):  # type: ignore[no-untyped-def]
    """The app's services: S3 on the emulator for the bytes (what is measured), SQLite
    for the index and the sessions (a few small records per upload)."""
    from stratus.adapters.config_access import ConfigAccess, read_ini
    from stratus.adapters.s3_storage import S3Storage
    from stratus.adapters.sqlite_catalog import SqliteCatalog
    from stratus.adapters.sqlite_upload_sessions import SqliteUploadSessions
    from stratus.app.services import Services
    from stratus.settings import Settings

    options = read_ini(ROOT / "examples" / "stratus.ini")
    return Services(
        catalog=SqliteCatalog(data / "index.sqlite3"),
        storage=S3Storage(bucket),
        access=ConfigAccess.from_options(options),
        settings=Settings.from_mapping({"default_write": "", **settings}),
        upload_sessions=SqliteUploadSessions(data / "uploads.sqlite3"),
    )


class AppServer:
    """The app under uvicorn in a thread of this process."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        from stratus.web.app import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(services), host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join()


def timed(call) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def direct_cp(path: Path, bucket: str) -> float:
    import boto3

    client = boto3.client("s3")
    return timed(lambda: client.upload_file(str(path), bucket, f"direct/{uuid.uuid4().hex}"))


def direct_presigned_put(path: Path, bucket: str) -> float:
    import boto3
    import urllib3

    url = boto3.client("s3").generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": f"direct/{uuid.uuid4().hex}"}
    )
    pool = urllib3.PoolManager(blocksize=MIB)

    def put() -> None:
        with open(path, "rb") as fh:
            response = pool.request(
                "PUT", url, body=fh, headers={"Content-Length": str(path.stat().st_size)}
            )
        assert response.status == 200, response.data[:200]

    return timed(put)


def stratus_upload(path: Path, workdir: Path, **settings: str) -> dict[str, float]:
    """Seconds of the whole command and of its phases: ``hash`` (the client reads the
    file for its sha256 and metadata), ``send`` (the bytes to storage: what ``aws s3 cp``
    does), ``complete`` (the index checks the object in place; then a one-PUT session's
    object, already at its final key, is untagged; a multipart one's is copied into
    ``packages/``: server-side copies, which the emulator does in Python)."""
    from stratus.cli import upload as client

    data = Path(tempfile.mkdtemp(dir=workdir))
    phases = {"send": 0.0, "complete": 0.0}
    with AppServer(services_on(new_bucket(), data, **settings)) as url:
        uploader = client.Uploader(
            client.Http(
                client.Repository(url, "alice", "alice-secret"), parallel=client.DEFAULT_PARALLEL
            ),
            state_dir=data / "state",
            progress=False,
            poll_seconds=0.05,
        )
        for phase, method in (("send", "_send"), ("complete", "_complete")):
            real = getattr(uploader, method)

            def measured(*args, _real=real, _phase=phase, **kwargs):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    phases[_phase] += time.perf_counter() - start

            setattr(uploader, method, measured)
        total = timed(lambda: uploader.upload(path))
    hashing = timed(lambda: client.describe(path))
    return {"total": total, "hash": hashing, **phases}


def completion_peak(
    path: Path, workdir: Path, *, stream: bool = False, **settings: str
) -> tuple[float, float]:
    """(peak heap MB, seconds) of ``complete`` alone, the bytes already in the bucket.

    ``stream``: as for an object past S3's 5 GiB copy limit (lowered here), whose SHA-256
    the store cannot compute: completion reads it in ranges."""
    from stratus.app.publish import Publisher
    from stratus.app.upload_sessions import UploadSessionService
    from stratus.cli.upload import FileSlice
    from stratus.domain.models import Identity

    data = Path(tempfile.mkdtemp(dir=workdir))
    services = services_on(new_bucket(), data, **settings)
    if stream:
        services.storage.single_copy_limit = 0
    publisher = Publisher(services.catalog, services.storage, allow_overwrite=False)
    service = UploadSessionService(
        services.upload_sessions,  # type: ignore[arg-type]
        services.storage,
        services.catalog,
        publisher,
        services.settings,
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    session = service.create(
        uploader="alice",
        name="bench-wheel",
        version="1.0",
        filename=path.name,
        size=path.stat().st_size,
        sha256=digest,
    )
    import urllib3

    pool = urllib3.PoolManager(blocksize=MIB)
    for number, target in service.targets(session):
        offset = (number - 1) * session.part_size if number else 0
        length = min(session.part_size, session.size - offset) if number else session.size
        body = FileSlice(path, offset, length, lambda n: None)
        response = pool.request(
            "PUT", target.url, body=body, headers={**target.headers, "Content-Length": str(length)}
        )
        body.close()
        assert response.status == 200, response.data[:200]
    tracemalloc.start()
    start = time.perf_counter()
    done = service.complete(session.session_id, Identity("alice"))
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert done.status == "published"
    return peak / MIB, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="file size for the throughput")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        workdir = Path(tmp)
        moto, _ = start_moto(workdir)
        try:
            files = {
                mb: write_wheel_with_payload(workdir / f"w{mb}", "bench-wheel", "1.0", mb * MIB)
                for mb in sorted({50, 200, args.mb})
            }
            big = files[args.mb]
            size_mb = big.stat().st_size / MIB
            bucket = new_bucket()
            direct = {
                "aws s3 cp style (boto3 upload_file)": lambda: direct_cp(big, bucket),
                "one presigned PUT": lambda: direct_presigned_put(big, bucket),
            }
            sessions = {
                "stratus upload: session, one PUT": lambda: stratus_upload(big, workdir),
                "stratus upload: session, 16 MiB parts x8": lambda: stratus_upload(
                    big,
                    workdir,
                    upload_multipart_threshold=str(16 * MIB),
                    upload_part_size=str(16 * MIB),
                ),
            }
            medians: dict[str, dict[str, float]] = {}
            for name, run in direct.items():
                medians[name] = {"total": statistics.median(run() for _ in range(args.repeat))}
            for name, run in sessions.items():
                runs = [run() for _ in range(args.repeat)]
                medians[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            reference = medians["aws s3 cp style (boto3 upload_file)"]["total"]
            title = f"Throughput, {size_mb:.0f} MiB wheel to the moto server"
            print(f"\n{title} (median of {args.repeat}; phases of the session rows)")
            print(
                f"{'path':41} {'seconds':>7} {'MiB/s':>6} {'vs cp':>6} "
                f"{'hash':>5} {'send':>5} {'send vs cp':>10} {'complete':>8}"
            )
            for name, got in medians.items():
                seconds = got["total"]
                line = (
                    f"{name:41} {seconds:7.2f} {size_mb / seconds:6.1f} {reference / seconds:5.2f}x"
                )
                if "send" in got:
                    line += (
                        f" {got['hash']:5.2f} {got['send']:5.2f}"
                        f" {reference / got['send']:9.2f}x {got['complete']:8.2f}"
                    )
                print(line)

            print("\nMemory of completing a session (Python heap peak, tracemalloc)")
            print(f"{'session':34} {'file MiB':>9} {'peak MiB':>9} {'seconds':>8}")
            parts = {
                "upload_multipart_threshold": str(16 * MIB),
                "upload_part_size": str(16 * MIB),
            }
            for label, settings, stream in (
                ("one PUT (checksum checked by S3)", {}, False),
                ("multipart (checksum by S3 copy)", parts, False),
                ("multipart (sha256 streamed here)", parts, True),
            ):
                for mb in (50, 200):
                    peak, seconds = completion_peak(files[mb], workdir, stream=stream, **settings)
                    size = files[mb].stat().st_size / MIB
                    print(f"{label:34} {size:9.0f} {peak:9.1f} {seconds:8.2f}")
        finally:
            stop(moto)


if __name__ == "__main__":
    main()
