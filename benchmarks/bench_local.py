"""Speed of local mode (`stratus serve`), measured the way the issue's targets are stated.

Prints a table: project page (HTML, and JSON as pip asks) and ``/simple/`` median
latency, requests/s with 8 concurrent clients, twine upload of 240 small files, time from
process start to first answer, and the import time of the Lambda handler module (median
of 5). Run:

    .venv/bin/python benchmarks/bench_local.py [--requests 2000] [--rounds 3]
    # compare trees, in turns (each round runs every tree once), e.g. an older commit's:
    #   git archive COMMIT functions | tar -x -C /tmp/before
    .venv/bin/python benchmarks/bench_local.py --functions /tmp/before/functions \
        --functions functions

A tree runs with its ``functions/`` first on ``PYTHONPATH`` and this virtualenv's packages.
Figures are in benchmarks/download.md.
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
READER = "Basic Ym9iOmJvYi1zZWNyZXQ="  # bob:bob-secret, not an admin: /simple/ by his ACL
PROJECTS = 100  # projects on /simple/


def tree_env(tree: Path | None) -> dict[str, str]:
    """The environment that runs ``tree``'s code (None: the installed checkout's)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def start_server(data: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
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
        env=env,
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


# What pip sends (pip/_internal/index/collector.py): PEP 691 JSON first.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def page_latencies(
    port: int, path: str, n: int, auth: str = AUTH, accept: str | None = None
) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": auth} | ({"Accept": accept} if accept else {})
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        if accept:
            assert resp.getheader("Content-Type", "").startswith("application/vnd.pypi")
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


def measure(tree: Path | None, work: Path, args: argparse.Namespace) -> dict[str, float]:
    """One round of every measure on one tree, on a fresh data directory."""
    env = tree_env(tree)
    out: dict[str, float] = {}
    python = [sys.executable, "-c"]
    imports = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([*python, "import stratus.handlers.api"], check=True, env=env)
        imports.append(time.perf_counter() - t)
    baseline = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([*python, "pass"], check=True, env=env)
        baseline.append(time.perf_counter() - t)
    out["import stratus.handlers.api (median of 5, minus bare interpreter), ms"] = (
        statistics.median(imports) - statistics.median(baseline)
    ) * 1000

    port = free_port()
    proc, first = start_server(work / "data", port, env)
    out["stratus serve: start to first answer, s"] = first
    try:
        dist = work / "dist"
        for i in range(args.files):
            write(dist, wheel_bytes("bench-pkg", f"1.0.{i}"))
        t = time.perf_counter()
        twine_upload(port, sorted(dist.iterdir()))
        out[f"twine upload of {args.files} small files, s"] = time.perf_counter() - t
        page_latencies(port, "/simple/bench-pkg/", 50)  # warm up
        lat = page_latencies(port, "/simple/bench-pkg/", args.requests)
        out[f"project page ({args.files} files) median, 1 client, ms"] = (
            statistics.median(lat) * 1000
        )
        lat = page_latencies(port, "/simple/bench-pkg/", args.requests, accept=PIP_ACCEPT)
        out[f"project page ({args.files} files), JSON as pip asks, median, ms"] = (
            statistics.median(lat) * 1000
        )
        small = write(work / "dist2", wheel_bytes("tiny-pkg", "1.0"))
        twine_upload(port, [small])
        lat = page_latencies(port, "/simple/tiny-pkg/", args.requests)
        out["project page (1 file) median, 1 client, ms"] = statistics.median(lat) * 1000
        out["project page (1 file), 8 concurrent clients, req/s"] = throughput(
            port, "/simple/tiny-pkg/", 8, args.seconds
        )
        more = work / "dist3"
        for i in range(PROJECTS - 2):
            write(more, wheel_bytes(f"proj-{i:03d}", "1.0"))
        twine_upload(port, sorted(more.iterdir()))
        for who, auth in (("alice, admin", AUTH), ("bob, by his ACL", READER)):
            page_latencies(port, "/simple/", 50, auth)  # warm up
            lat = page_latencies(port, "/simple/", args.requests, auth)
            out[f"/simple/ ({PROJECTS} projects) median, {who}, ms"] = statistics.median(lat) * 1000
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=1, help="rounds (median shown)")
    parser.add_argument(
        "--functions",
        type=Path,
        action="append",
        metavar="DIR",
        help="run this functions/ folder's code instead (repeat to compare trees in turns)",
    )
    args = parser.parse_args()
    trees: list[Path | None] = [t.resolve() for t in args.functions] if args.functions else [None]
    results: dict[int, list[dict[str, float]]] = {i: [] for i in range(len(trees))}
    for _ in range(args.rounds):
        for i, tree in enumerate(trees):
            work = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
            try:
                results[i].append(measure(tree, work, args))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    names = [str(t.parent.name if t.name == "functions" else t) for t in trees if t] or ["this"]
    measures = list(results[0][0])
    width = max(len(m) for m in measures)
    print(f"{'measure'.ljust(width)} | " + " | ".join(n.rjust(24) for n in names))
    print("-" * width + "-|-" + "-|-".join("-" * 24 for _ in names))
    for m in measures:
        cells = []
        for i in range(len(trees)):
            values = [r[m] for r in results[i]]
            each = ", ".join(f"{v:.3g}" for v in values) if len(values) > 1 else ""
            cell = f"{statistics.median(values):.3g}" + (f" ({each})" if each else "")
            cells.append(cell.rjust(24))
        print(f"{m.ljust(width)} | " + " | ".join(cells))
    print(f"\n(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, ", end="")
    print(f"load {os.getloadavg()[0]:.1f}, {time.ctime()})")


if __name__ == "__main__":
    main()
