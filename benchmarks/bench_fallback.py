"""The upstream fallback, measured the way issue 8 states its targets.

Prints a table:

1. ``/simple/<p>/`` median latency of a warm cached upstream project (fallback = cache,
   the page from the page cache) vs a local project with the same number of files
   (target: at most 1.5x), at 200 and at 10,000 (botocore-sized) files;
2. upstream requests made by a second ``pip install`` of 20 packages through
   ``fallback = cache`` (target 0), next to those of the first;
3. peak memory of a 300 MB cache fill (tracemalloc peak and the process's max RSS,
   measured in a fresh process).

Everything runs on 127.0.0.1: ``stratus serve`` and the test upstream
(``tests/support/upstream_server.py``). Run:

    .venv/bin/python benchmarks/bench_fallback.py [--requests 300] [--fill-mb 300]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))
from tests.e2e.conftest import running_serve  # noqa: E402
from tests.support.distributions import wheel_bytes  # noqa: E402
from tests.support.upstream_server import UpstreamServer  # noqa: E402

BIN = Path(sys.executable).parent
ALICE = ("alice", "alice-secret")  # examples/stratus.ini
AUTH = "Basic YWxpY2U6YWxpY2Utc2VjcmV0"
JSON = "application/vnd.pypi.simple.v1+json"


def write_config(path: Path, upstream: str) -> Path:
    base = (ROOT / "examples" / "stratus.ini").read_text()
    path.write_text(
        base + f"\npypi.fallback = cache\npypi.fallback_base_url = {upstream}\n"
        "pypi.cache_update = authenticated\n"
    )
    return path


def page_latency(port: int, project: str, requests: int) -> float:
    """Median seconds of GET /simple/<project>/ (JSON) on one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        conn.request("GET", f"/simple/{project}/", headers={"Authorization": AUTH, "Accept": JSON})
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - t0)
        assert response.status == 200, response.status
    return statistics.median(times[len(times) // 10 :])  # first 10 %: warm-up


def store_local_project(data: Path, name: str, files: int) -> None:
    """``files`` wheels of ``name`` straight into the local catalog and storage."""
    from stratus.app.publish import Publisher
    from stratus.wiring import services_local

    services = services_local(data)
    publisher = Publisher(services.catalog, services.storage, allow_overwrite=False)
    for i in range(files):
        filename, blob = wheel_bytes(name, f"1.{i}.0")
        publisher.upload(
            name=name, version=f"1.{i}.0", filename=filename, data=blob, digests={}, uploader="a"
        )


def pip_install(index: str, packages: list[str], target: Path) -> None:
    env = {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_CONFIG_FILE": os.devnull,
    }
    env.pop("PIP_INDEX_URL", None)
    env.pop("PIP_EXTRA_INDEX_URL", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--target",
            str(target),
            "--index-url",
            index,
            *packages,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )


FILL_SCRIPT = """
import resource, sys, tracemalloc
from pathlib import Path
sys.path[:0] = [{root!r}, {functions!r}]
from stratus.domain.upstream import FillJob
from stratus.wiring import services_local
services = services_local(Path({data!r}), Path({config!r}))
fallback = services.fallback
file = fallback.pages.get("hugepkg").file({filename!r})
tracemalloc.start()
fallback.filler.fill(FillJob.for_file("hugepkg", file, "bench"))
_, peak = tracemalloc.get_traced_memory()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak, rss * 1024)
"""


def fill_memory(tmp: Path, upstream: UpstreamServer, config: Path, megabytes: int) -> tuple:
    hosted = upstream.add_huge_wheel("hugepkg", "1.0", megabytes * 1024 * 1024)
    script = FILL_SCRIPT.format(
        root=str(ROOT),
        functions=str(ROOT / "functions"),
        data=str(tmp / "fill-data"),
        config=str(config),
        filename=hosted.filename,
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout.split()
    seconds = time.perf_counter() - t0
    return hosted.size, int(out[0]), int(out[1]), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--fill-mb", type=int, default=300)
    parser.add_argument("--packages", type=int, default=20)
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with UpstreamServer.running(tmp / "upstream") as upstream:
            config = write_config(tmp / "stratus.ini", upstream.url)
            data = tmp / "data"

            # 1. warm cached upstream page vs local page, same number of files
            for files in (200, 10_000):
                local_name, cached_name = f"local-{files}", f"cached-{files}"
                if files <= 200:
                    store_local_project(data, local_name, files)
                    upstream.add_big_page(cached_name, files)
                else:  # 10,000 real uploads take long: list synthetic records instead
                    from stratus.domain.models import FileRecord
                    from stratus.wiring import services_local

                    catalog = services_local(data).catalog
                    dist = local_name.replace("-", "_")
                    for i in range(files):
                        catalog.add_file(
                            FileRecord(
                                local_name,
                                f"{dist}-1.{i}.0-py3-none-any.whl",
                                f"1.{i}.0",
                                "a" * 64,
                                1000,
                                1.7e9,
                                requires_python=">=3.8",
                                metadata_sha256="b" * 64,
                            )
                        )
                    upstream.add_big_page(cached_name, files)
            with running_serve(config, data, tmp / "serve.log") as url:
                port = int(url.rsplit(":", 1)[1])
                for files in (200, 10_000):
                    requests = args.requests if files <= 200 else max(20, args.requests // 10)
                    local = page_latency(port, f"local-{files}", requests)
                    before = upstream.count("/simple/")
                    cached = page_latency(port, f"cached-{files}", requests)
                    fetched = upstream.count("/simple/") - before
                    rows.append(
                        (
                            f"/simple/<p>/ median, {files} files: cached upstream vs local",
                            f"{cached * 1000:.2f} ms vs {local * 1000:.2f} ms = "
                            f"{cached / local:.2f}x ({fetched} upstream fetch)",
                            "<= 1.5x",
                        )
                    )

                # 2. a second pip install of 20 packages makes no upstream request
                names = [f"bench-dep-{i:02d}" for i in range(args.packages)]
                for name in names:
                    upstream.add_wheel(name, "1.0")
                    upstream.add_wheel(name, "1.1")
                index = f"http://{ALICE[0]}:{ALICE[1]}@127.0.0.1:{port}/simple/"
                first_before = upstream.count()
                pip_install(index, names, tmp / "target-1")
                first = upstream.count() - first_before
                second_before = upstream.count()
                pip_install(index, names, tmp / "target-2")
                second = upstream.count() - second_before
                rows.append(
                    (
                        f"upstream requests, pip install of {len(names)} packages",
                        f"first {first}, second {second}",
                        "second: 0",
                    )
                )

            # 3. memory of a large fill (a fresh process, local storage)
            size, peak, rss, seconds = fill_memory(tmp, upstream, config, args.fill_mb)
            rows.append(
                (
                    f"cache fill of a {size / 2**20:.0f} MB wheel: peak memory",
                    f"tracemalloc {peak / 2**20:.1f} MB, max RSS {rss / 2**20:.0f} MB, "
                    f"{seconds:.1f} s",
                    "not the file's size",
                )
            )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<58}  target")
    for name, result, target in rows:
        print(f"{name:<{width}}  {result:<58}  {target}")


if __name__ == "__main__":
    main()
