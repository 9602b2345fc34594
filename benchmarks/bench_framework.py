"""Per-request cost in process, without a network: what the framework costs alone, and
what the local app's project page costs.

1. The same trivial route (``GET /simple/{project}/``, an empty answer) in bare Starlette
   and in FastAPI: without parameters, with a path and a query parameter, and with those
   and two dependencies (the shape of Stratus' install routes).
2. ``GET /simple/<p>/`` through the local app (``stratus serve``'s, SQLite and files,
   examples/stratus.ini, alice's cached credentials) with 1 and 240 files, for each
   ``functions/`` tree named (in turns), e.g. an older commit's:
   ``git archive COMMIT functions | tar -x -C /tmp/before``.

Each figure is the median of 5 rounds, in µs per request. Run:

    .venv/bin/python benchmarks/bench_framework.py [--functions DIR ...] [--requests 3000]

A tree is measured in a child process of its own (``--child``). Figures are in
benchmarks/download.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

ROOT = Path(__file__).resolve().parents[1]
AUTH = b"Basic " + base64.b64encode(b"alice:alice-secret")  # examples/stratus.ini


async def call(app: Any, method: str, path: str, headers=(), body: bytes = b"") -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"authorization", AUTH), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = {}

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status["code"] = message["status"]

    await app(scope, receive, send)
    return status["code"]


async def per_request(run: Callable[[], Awaitable[int]], n: int) -> float:
    for _ in range(min(n, 300)):
        assert await run() == 200
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await run()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


async def context(request: Request) -> int:
    return 1


async def caller(request: Request) -> int:
    return 1


def framework_apps() -> dict[str, Any]:
    """The trivial route in each framework setting. (Module-level names only in the
    annotations: with ``from __future__ import annotations`` FastAPI resolves them there.)"""
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def plain(request):
        return Response(b"")

    apps: dict[str, Any] = {"Starlette": Starlette(routes=[Route("/simple/{project}/", plain)])}

    bare = FastAPI()

    @bare.get("/simple/{project}/")
    async def no_parameters(request: Request) -> Response:
        return Response(b"")

    params = FastAPI()

    @params.get("/simple/{project}/")
    async def with_parameters(request: Request, project: str, format: str | None = None):
        return Response(b"")

    deps = FastAPI()

    @deps.get("/simple/{project}/")
    async def with_dependencies(
        request: Request,
        ctx: Annotated[int, Depends(context)],
        who: Annotated[int, Depends(caller)],
        project: str,
        format: str | None = None,
    ) -> Response:
        return Response(b"")

    apps["FastAPI, no parameters"] = bare
    apps["FastAPI, path + query parameter"] = params
    apps["FastAPI, those + 2 dependencies"] = deps
    return apps


def upload_body(version: str) -> tuple[bytes, bytes]:
    from tests.support.distributions import wheel_bytes

    name, data = wheel_bytes("bench-pkg", version)
    boundary = "benchboundary"
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": "bench-pkg",
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{name}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}".encode(), b"".join(parts)


async def project_pages(n: int) -> dict[str, float]:
    """The child's work: the local app's project page with 1 and 240 files."""
    from stratus.web.app import create_app
    from stratus.wiring import services_local

    work = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
    app = create_app(services_local(work, ROOT / "examples" / "stratus.ini"))
    out = {}
    uploaded = 0
    for files in (1, 240):
        while uploaded < files:
            ctype, body = upload_body(f"1.0.{uploaded}")
            headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
            assert await call(app, "POST", "/", headers, body) == 200
            uploaded += 1
        count = n if files == 1 else max(n // 20, 50)
        out[f"project page, {files} file(s)"] = await per_request(
            lambda: call(app, "GET", "/simple/bench-pkg/"), count
        )
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(asyncio.run(project_pages(int(sys.argv[2])))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--functions",
        type=Path,
        action="append",
        metavar="DIR",
        help="a functions/ folder to measure (repeat to compare; default: this checkout's)",
    )
    args = parser.parse_args()

    print(f"{'route alone':40} | µs per request")
    for name, app in framework_apps().items():
        figure = asyncio.run(per_request(lambda app=app: call(app, "GET", "/simple/x/"), 5000))
        print(f"{name:40} | {figure:8.1f}")

    trees = [t.resolve() for t in args.functions or [ROOT / "functions"]]
    results = {}
    for tree in trees:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(ROOT)]))
        child = [sys.executable, __file__, "--child", str(args.requests)]
        done = subprocess.run(child, env=env, capture_output=True, text=True, check=True)
        results[tree] = json.loads(done.stdout.strip().splitlines()[-1])
    names = [t.parent.name if t.name == "functions" else str(t) for t in trees]
    print(f"\n{'the local app, in process':40} | " + " | ".join(f"{n:>14}" for n in names))
    for measure in results[trees[0]]:
        cells = " | ".join(f"{results[t][measure]:14.1f}" for t in trees)
        print(f"{measure:40} | {cells}")
    print(f"\n(µs per request, median of 5 rounds; {os.cpu_count()} cores, Python ", end="")
    print(f"{sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, {time.ctime()})")


if __name__ == "__main__":
    main()
