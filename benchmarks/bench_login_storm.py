"""Does a login storm slow down everyone else? (issue 10 item 6)

Starts `stratus serve` (config-file users with real argon2id hashes), then measures the
latency of one logged-in user's requests (``bob``: his credentials are cached, so his
requests pay no hash) on a project page:

1. alone;
2. while ``--storm-clients`` clients send logins that each cost a full argon2id
   verification: wrong passwords of known users and logins of unknown users (which pay
   the same dummy verification). Each storm connection comes from its own loopback
   address (127.0.0.2-254), so the per-address login throttle does not stop the storm.

in ``--rounds`` alternating rounds (so the machine's other load weighs on both alike).
Target: the storm raises bob's median and p95 latency by at most 2x. Prints a table:

    .venv/bin/python benchmarks/bench_login_storm.py [--seconds 16] [--storm-clients 16]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))
from stratus.domain.passwords import hash_password  # noqa: E402
from tests.e2e.conftest import running_serve  # noqa: E402
from tests.support.distributions import wheel_bytes  # noqa: E402

STORM_USERS = 40


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(path: Path) -> None:
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    users |= {f"storm{i}": secrets.token_hex(8) for i in range(STORM_USERS)}
    lines = ["[app:main]", "pypi.default_read = authenticated", "auth.admins = alice"]
    lines += [f"user.{name} = {hash_password(pw)}" for name, pw in users.items()]
    path.write_text("\n".join(lines) + "\n")


def upload(port: int) -> None:
    filename, data = wheel_bytes("storm-demo", "1.0")
    boundary = "benchboundary"
    fields = [(":action", "file_upload"), ("name", "storm-demo"), ("version", "1.0")]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/",
        body=body,
        headers={
            "Authorization": basic("alice", "alice-secret"),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status


def probe(port: int, seconds: float) -> list[float]:
    """bob's project-page latencies (seconds) over ``seconds``, one keep-alive client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": basic("bob", "bob-secret")}
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        conn.request("GET", "/simple/storm-demo/", headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        latencies.append(time.perf_counter() - t)
        time.sleep(0.01)  # a user, not a load generator
    return latencies


def storm(
    port: int, active: threading.Event, stop: threading.Event, counts: dict[int, int], sources
) -> None:
    """Logins that each cost one argon2id verification, while ``active``, until ``stop``."""
    while not stop.is_set():
        if not active.wait(0.1):
            continue
        source = next(sources)
        known = secrets.randbelow(2)
        user = f"storm{secrets.randbelow(STORM_USERS)}" if known else f"ghost{secrets.token_hex(4)}"
        try:
            conn = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=30, source_address=(source, 0)
            )
            conn.request("GET", "/simple/", headers={"Authorization": basic(user, "wrong")})
            response = conn.getresponse()
            response.read()
            conn.close()
        except OSError:
            continue
        counts[response.status] = counts.get(response.status, 0) + 1


def summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return statistics.median(ordered) * 1000, p95 * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=16.0, help="of probing, per phase")
    parser.add_argument("--storm-clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="quiet/storm rounds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stratus-storm-"))
    try:
        config = work / "stratus.ini"
        write_config(config)
        with running_serve(config, work / "data", work / "serve.log") as url:
            port = int(url.rsplit(":", 1)[1])
            upload(port)
            probe(port, 1.0)  # warm up (bob's credentials now cached)
            active, stop = threading.Event(), threading.Event()
            counts: dict[int, int] = {}
            sources = itertools.cycle(f"127.0.0.{i}" for i in range(2, 255))
            lock = threading.Lock()

            def next_source() -> str:
                with lock:
                    return next(sources)

            threads = [
                threading.Thread(
                    target=storm,
                    args=(port, active, stop, counts, iter(next_source, None)),
                    daemon=True,
                )
                for _ in range(args.storm_clients)
            ]
            for thread in threads:
                thread.start()
            # Alternate quiet and storm rounds: the machine's other load hits both alike.
            alone: list[float] = []
            during: list[float] = []
            storm_seconds = 0.0
            for _ in range(args.rounds):
                alone += probe(port, args.seconds / args.rounds)
                active.set()
                time.sleep(1.0)  # let the storm build up
                t = time.perf_counter()
                during += probe(port, args.seconds / args.rounds)
                storm_seconds += time.perf_counter() - t + 1.0
                active.clear()
                time.sleep(1.0)  # let it calm down
            stop.set()
            for thread in threads:
                thread.join(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    (m0, p0), (m1, p1) = summary(alone), summary(during)
    logins = sum(counts.values())
    rows = [
        ("bob alone", len(alone), f"{m0:.2f}", f"{p0:.2f}", "-"),
        (
            f"bob during storm ({args.storm_clients} clients)",
            len(during),
            f"{m1:.2f}",
            f"{p1:.2f}",
            f"{logins / storm_seconds:.1f}",
        ),
    ]
    header = ("phase", "requests", "median ms", "p95 ms", "storm logins/s")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    print(
        f"\nslow-down: median {m1 / m0:.2f}x, p95 {p1 / p0:.2f}x (target: at most 2x); "
        f"storm answers: {dict(sorted(counts.items()))}"
    )
    print(f"(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
