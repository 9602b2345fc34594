"""Speed of the web UI's pages, in process, on local adapters (SQLite catalog, files).

The target (issue 11): the project page of a project with 500 versions renders in under
20 ms. Measured two ways: the page's work alone (``browse.project_view`` + the template)
and the whole HTTP request through the ASGI app (FastAPI's TestClient, a signed-in
session), after a warm-up. Prints a table of median and 95th percentile wall time and
the median CPU time of the process (wall times on a busy machine mostly measure the
other jobs). Run:

    .venv/bin/python benchmarks/bench_ui.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))

from passlib.hash import sha256_crypt  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from stratus.adapters.local_storage import LocalStorage  # noqa: E402
from stratus.adapters.sqlite_access import SqliteAccess  # noqa: E402
from stratus.adapters.sqlite_catalog import SqliteCatalog  # noqa: E402
from stratus.app import browse  # noqa: E402
from stratus.app.publish import Publisher  # noqa: E402
from stratus.app.services import Services  # noqa: E402
from stratus.domain.models import FileRecord, Identity  # noqa: E402
from stratus.settings import Settings  # noqa: E402
from stratus.web.app import create_app  # noqa: E402
from tests.support.distributions import wheel_bytes  # noqa: E402

README = ("# Big project\n\n" + "Some *text* and `code`.\n\n" * 200) + (
    "```python\nimport big\nbig.run()\n```\n" * 20
)


def seed(services: Services, versions: int, projects: int) -> None:
    """``versions`` releases of "big" (a wheel and an sdist each), the newest uploaded for
    real (core metadata and rendered README stored), and ``projects`` small projects."""
    catalog = services.catalog
    for i in range(versions - 1):
        for filename, kind in (
            (f"big-1.{i}-py3-none-any.whl", "bdist_wheel"),
            (f"big-1.{i}.tar.gz", "sdist"),
        ):
            catalog.add_file(
                FileRecord(
                    project="big",
                    filename=filename,
                    version=f"1.{i}",
                    sha256=f"{i:064x}",
                    size=10_000 + i,
                    upload_time=1_700_000_000.0 + i * 3600,
                    display_name="Big",
                    packagetype=kind,
                    requires_python=">=3.9",
                    summary="A project with many releases",
                    yanked="broken" if i % 50 == 0 else None,
                )
            )
    latest = wheel_bytes(
        "Big",
        f"1.{versions - 1}",
        summary="A project with many releases",
        requires_dist=tuple(f"dep{n}>=1.0" for n in range(20)),
        headers=(
            "Description-Content-Type: text/markdown",
            *(f"Classifier: Programming Language :: Python :: 3.{n}" for n in range(9, 14)),
            "Project-URL: Source, https://git.example/big",
        ),
        description=README,
    )
    Publisher(catalog, services.storage, allow_overwrite=False).upload(
        name="Big",
        version=f"1.{versions - 1}",
        filename=latest[0],
        data=latest[1],
        digests={},
        uploader="bench",
    )
    for n in range(projects):
        catalog.add_file(
            FileRecord(
                project=f"lib{n}",
                filename=f"lib{n}-1.0.tar.gz",
                version="1.0",
                sha256="0" * 64,
                size=1000,
                upload_time=1_600_000_000.0 + n,
                display_name=f"lib{n}",
                summary=f"Library number {n}",
            )
        )


def measure(func: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Median and p95 wall time, and median CPU time of this process, in ms.

    CPU time leaves out the waits for a core that a busy machine imposes (the wall
    times of a shared CI machine mostly measure its other jobs)."""
    for _ in range(5):
        func()  # warm-up: templates compiled, caches filled
    wall, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        func()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    wall.sort()
    return statistics.median(wall), wall[int(len(wall) * 0.95) - 1], statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--projects", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        access = SqliteAccess(data / "access.sqlite3")
        access.create_user("dev", sha256_crypt.using(rounds=1000).hash("dev-password"))
        services = Services(
            SqliteCatalog(data / "index.sqlite3"),
            LocalStorage(data / "files"),
            access,
            Settings(default_read=("authenticated",)),
            tokens=access,
            signing_key="bench-signing-key",
        )
        seed(services, args.versions, args.projects)
        app = create_app(services)
        client = TestClient(app)
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        signed_in = client.post(
            "/login",
            data={"username": "dev", "password": "dev-password", "csrf_token": token},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        ctx = app.state.ctx
        who = Identity("dev")

        def page_work() -> None:
            from stratus.web.ui.templating import environment

            view = browse.project_view(
                services.catalog, services.storage, ctx.policy, who, "big", None
            )
            environment().get_template("project.html").render(
                site_title="Stratus", who=who, csrf="x", url=lambda p: p,
                static=lambda n: n, query="", active="", messages=[], index_url="/simple/",
                upload_url="/", view=view, install_command="pip install big", may_manage=False,
            )  # fmt: skip

        def get(path: str) -> Callable[[], object]:
            def run() -> None:
                answer = client.get(path)
                assert answer.status_code == 200, (path, answer.status_code)

            return run

        files = 2 * args.versions - 1
        rows = [
            (f"project page work, {args.versions} versions ({files} files)", page_work),
            (f"GET /project/big/ ({args.versions} versions)", get("/project/big/")),
            ("GET /project/big/1.10/ (an old release)", get("/project/big/1.10/")),
            (f"GET / ({args.projects + 1} projects, page 1)", get("/")),
            ("GET /search?q=lib99", get("/search?q=lib99")),
            ("GET /static/favicon.svg (the client's own cost)", get("/static/favicon.svg")),
        ]
        width = max(len(name) for name, _ in rows)
        print(f"{'page'.ljust(width)} | median ms | p95 ms | CPU ms (median)")
        print(f"{'-' * width}-|-----------|--------|----------------")
        for name, func in rows:
            median, p95, cpu = measure(func, args.repeat)
            print(f"{name.ljust(width)} | {median:9.2f} | {p95:6.2f} | {cpu:15.2f}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"\n(target: project page < 20 ms; {os.cpu_count()} cores, load average "
            f"{load:.1f}, Python {sys.version.split()[0]}, {args.repeat} runs each)"
        )


if __name__ == "__main__":
    main()
