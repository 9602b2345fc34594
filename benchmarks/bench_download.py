"""A large download from `stratus serve`, against pypiserver serving the same file.

One wheel of ~100 MB (a stored, incompressible member) is uploaded to `stratus serve`
with twine and put in a pypiserver package folder; then each server sends it N times, in
turns (so both see the same machine load), to a client on 127.0.0.1 that reads it in
1 MiB blocks. Prints the median time and throughput of each, and checks once that the
bytes received are the file (sha256).

    .venv/bin/python benchmarks/bench_download.py [--size-mb 100] [--rounds 7]

pypiserver is a benchmark-only tool: without it (``pip install pypiserver``) the
stratus figures are printed alone.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_local import AUTH, BIN, start_server, twine_upload  # noqa: E402
from tests.support.distributions import write_wheel_with_payload  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

BLOCK = 1024 * 1024


def download(port: int, path: str, headers: dict[str, str], digest: bool = False) -> tuple:
    """(seconds, bytes, sha256 hex or None) of one GET on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hasher = hashlib.sha256() if digest else None
    t = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {resp.read()[:200]!r}")
    size = 0
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    while n := resp.readinto(buffer):
        size += n
        if hasher is not None:
            hasher.update(view[:n])
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed, size, hasher.hexdigest() if hasher is not None else None


def start_pypiserver(folder: Path, port: int) -> subprocess.Popen | None:
    exe = BIN / "pypi-server"
    if not exe.exists():
        return None
    proc = subprocess.Popen(
        [str(exe), "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/simple/")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("pypiserver did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="payload, 10^6 bytes")
    parser.add_argument("--rounds", type=int, default=7, help="downloads per server")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-download-"))
    procs: list[subprocess.Popen] = []
    try:
        wheel = write_wheel_with_payload(
            work / "dist", "big-pkg", "1.0", args.size_mb * 10**6, seed=1
        )
        expected = hashlib.sha256(wheel.read_bytes()).hexdigest()
        size = wheel.stat().st_size

        port = free_port()
        proc, _ = start_server(work / "data", port)
        procs.append(proc)
        twine_upload(port, [wheel])
        servers = {
            "stratus serve": (
                port,
                f"/files/big-pkg/{quote(wheel.name)}",
                {"Authorization": AUTH},
            )
        }
        packages = work / "pypiserver"
        packages.mkdir()
        shutil.copy(wheel, packages / wheel.name)
        pypi_port = free_port()
        pypi = start_pypiserver(packages, pypi_port)
        if pypi is None:
            print("pypiserver is not installed (pip install pypiserver): stratus alone\n")
        else:
            procs.append(pypi)
            servers["pypiserver"] = (pypi_port, f"/packages/{quote(wheel.name)}", {})

        for name, (p, path, headers) in servers.items():  # check the bytes, warm the cache
            _, got, digest = download(p, path, headers, digest=True)
            if got != size or digest != expected:
                raise SystemExit(f"{name}: got {got} bytes, sha256 {digest}, not the file")
        times: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (p, path, headers) in servers.items():
                times[name].append(download(p, path, headers)[0])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    print(f"GET of one {size / 1e6:.1f} MB file on 127.0.0.1, median of {args.rounds}")
    print(f"{'server':<14} | {'median s':>8} | {'MB/s':>6} | {'min s':>6} | vs stratus")
    print("-" * 56)
    base = statistics.median(times["stratus serve"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<14} | {median:>8.3f} | {size / 1e6 / median:>6.0f} | {min(values):>6.3f} | "
            f"{median / base:.2f}x"
        )
    print(f"\n(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {time.ctime()})")


if __name__ == "__main__":
    main()
