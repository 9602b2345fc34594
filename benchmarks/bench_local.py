"""Speed of local mode (`stratus serve`), measured the way the issue's targets are stated.

Prints a table: project page median latency, requests/s with 8 concurrent clients,
twine upload of 240 small files, time from process start to first answer, and the
import time of the Lambda handler module (median of 5). Run:

    .venv/bin/python benchmarks/bench_local.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.distributions import wheel_bytes, write  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

BIN = Path(sys.executable).parent
AUTH = "Basic YWxpY2U6YWxpY2Utc2VjcmV0"  # alice:alice-secret (examples/stratus.ini)


def start_server(data: Path, port: int) -> tuple[subprocess.Popen, float]:
    """Start `stratus serve`; return the process and seconds until its first 200 answer."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(BIN / "stratus"),
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--config",
            str(ROOT / "examples" / "stratus.ini"),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.002)


def twine_upload(port: int, files: list[Path]) -> None:
    subprocess.run(
        [
            str(BIN / "twine"),
            "upload",
            "--repository-url",
            f"http://127.0.0.1:{port}/",
            "-u",
            "alice",
            "-p",
            "alice-secret",
            "--disable-progress-bar",
            *map(str, files),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def page_latencies(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": AUTH})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        out.append(time.perf_counter() - t)
    return out


def _client(args: tuple[int, str, float]) -> int:
    port, path, seconds = args
    conn = http.client.HTTPConnection("127.0.0.1", port)
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        conn.request("GET", path, headers={"Authorization": AUTH})
        resp = conn.getresponse()
        resp.read()
        done += resp.status == 200
    return done


def throughput(port: int, path: str, clients: int, seconds: float) -> float:
    with multiprocessing.Pool(clients) as pool:
        counts = pool.map(_client, [(port, path, seconds)] * clients)
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--files", type=int, default=240)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
    rows: list[tuple[str, str]] = []
    try:
        imports = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import stratus.handlers.api"], check=True)
            imports.append(time.perf_counter() - t)
        baseline = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            baseline.append(time.perf_counter() - t)
        rows.append(
            (
                "import stratus.handlers.api (median of 5, minus bare interpreter)",
                f"{(statistics.median(imports) - statistics.median(baseline)) * 1000:.0f} ms",
            )
        )

        port = free_port()
        proc, first = start_server(work / "data", port)
        rows.append(("stratus serve: start to first answer", f"{first:.3f} s"))
        try:
            dist = work / "dist"
            for i in range(args.files):
                write(dist, wheel_bytes("bench-pkg", f"1.0.{i}"))
            t = time.perf_counter()
            twine_upload(port, sorted(dist.iterdir()))
            rows.append(
                (f"twine upload of {args.files} small files", f"{time.perf_counter() - t:.2f} s")
            )
            page_latencies(port, "/simple/bench-pkg/", 50)  # warm up
            lat = page_latencies(port, "/simple/bench-pkg/", args.requests)
            rows.append(
                (
                    f"project page ({args.files} files) median, 1 client",
                    f"{statistics.median(lat) * 1000:.2f} ms",
                )
            )
            small = write(work / "dist2", wheel_bytes("tiny-pkg", "1.0"))
            twine_upload(port, [small])
            lat = page_latencies(port, "/simple/tiny-pkg/", args.requests)
            rows.append(
                (
                    "project page (1 file) median, 1 client",
                    f"{statistics.median(lat) * 1000:.2f} ms",
                )
            )
            rps = throughput(port, "/simple/tiny-pkg/", 8, args.seconds)
            rows.append(("project page (1 file), 8 concurrent clients", f"{rps:.0f} req/s"))
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)} | result")
    print(f"{'-' * width}-|-------")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
    print(f"\n(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
