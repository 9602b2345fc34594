"""Cold start of the API Lambda, measured on this machine against the emulators.

For each scenario, N fresh Python processes each play one Lambda execution environment:

* **init**: ``import stratus.handlers.api`` (what Lambda runs in its init phase, and what
  SnapStart snapshots);
* **first**: the first ``handler(event, context)`` call, ``GET /simple/<p>/``;
* **warm**: the median of the following calls in the same process.

The handler is the real one (Mangum around the web app) with the environment the API stack
sets, on DynamoDB Local and a moto server (the ``tests/support`` launchers). The events are
the API Gateway HTTP API (payload 2.0) events that ``tests/support/apigw.py`` makes from a
real HTTP request. The child process imports nothing but the standard modules Python loads
at start before timing the handler import, so nothing is pre-imported for it.

Scenarios: ``pip (basic auth)`` is what pip sends (the first request verifies one argon2id
password; later ones hit the per-container credential cache); ``anonymous`` reads a
project readable by everyone (no password check at all); ``no bytecode`` is the
authenticated case with every ``.pyc`` ignored and none written, as a Lambda asset without
``__pycache__`` and with ``PYTHONDONTWRITEBYTECODE`` behaves.

    .venv/bin/python benchmarks/bench_coldstart.py [--processes 7] [--warm 200]
    .venv/bin/python benchmarks/bench_coldstart.py --importtime 25   # heaviest imports
    .venv/bin/python benchmarks/bench_coldstart.py --breakdown       # init step by step
    # cProfile the init, the first request or all warm ones (of the first scenario named):
    .venv/bin/python benchmarks/bench_coldstart.py --scenarios anon --profile 40 \
        --profile-phase warm --warm 1000 --profile-sort tottime [--profile-dump FILE]

By default the child runs in the main Lambda layer's layout (``--layouts layer``: no
``pydantic.v1``, a botocore that knows only the functions' services, see
``layers/build.py`` and ``tests/support/layer_layout.py``); ``--layouts venv`` runs it on
this machine's virtualenv as it is, and ``--layouts layer,venv`` runs both in turns.

Figures are in benchmarks/coldstart.md.
"""

from __future__ import annotations

import os
import sys
import time

PROJECT = "bench-pkg"
FILES = 20  # files in the project page


def child() -> None:
    """One execution environment: time the init, the first and the warm requests.

    Wall-clock and CPU time (``process_time``) of this process: on a loaded machine the
    CPU figures stay comparable when the wall-clock ones do not.
    """
    import json

    handler_path, event_path = sys.argv[2:4]
    module_name, _, attr = handler_path.rpartition(".")
    phase = os.environ.get("BENCH_PROFILE_PHASE", "first")
    profile = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profile = cProfile.Profile()

    def profiling(this: str) -> None:
        if profile is not None and this == phase:
            profile.enable()

    def profiled(this: str) -> None:
        if profile is not None and this == phase:
            import pstats

            profile.disable()
            stats = pstats.Stats(profile, stream=sys.stderr)
            stats.sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative"))
            stats.print_stats(int(os.environ["BENCH_PROFILE"]))
            if os.environ.get("BENCH_PROFILE_DUMP"):  # for pstats / snakeviz
                stats.dump_stats(os.environ["BENCH_PROFILE_DUMP"])

    c0, t0 = time.process_time(), time.perf_counter()
    profiling("init")
    module = __import__(module_name, fromlist=[attr])
    handler = getattr(module, attr)
    profiled("init")
    c1, t1 = time.process_time(), time.perf_counter()

    # after the timed init: the repository's test helpers (standard library only)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.support.lambda_environment import lambda_context

    with open(event_path) as fh:
        event = json.load(fh)
    context = lambda_context()
    c2, t2 = time.process_time(), time.perf_counter()
    profiling("first")
    response = handler(event, context)
    profiled("first")
    c3, t3 = time.process_time(), time.perf_counter()
    if response.get("statusCode") != 200:
        raise SystemExit(f"first request answered {response.get('statusCode')}: {response}")
    warm = []
    profiling("warm")
    for _ in range(int(os.environ["BENCH_WARM"])):
        t = time.perf_counter()
        response = handler(event, context)
        warm.append(time.perf_counter() - t)
        if response.get("statusCode") != 200:
            raise SystemExit(f"warm request answered {response.get('statusCode')}")
    profiled("warm")
    warm.sort()
    print(
        json.dumps(
            {
                "init": t1 - t0,
                "first": t3 - t2,
                "init_cpu": c1 - c0,
                "first_cpu": c3 - c2,
                "warm": warm[len(warm) // 2] if warm else 0.0,
                "modules": len(sys.modules),
            }
        )
    )


def child_breakdown() -> None:
    """The API handler's init in its steps (as ``handlers/api.py`` builds), CPU ms each."""
    import gc
    import json

    gc.disable()  # as handlers/api.py does for its init
    steps = []
    clock = time.process_time()

    def step(name: str) -> None:
        nonlocal clock
        now = time.process_time()
        steps.append((name, now - clock))
        clock = now

    import aws_lambda_powertools.logging  # noqa: F401
    import mangum

    import stratus.handlers.telemetry  # noqa: F401

    step("import Powertools logger, Metrics (Tracer if tracing); Mangum")
    import fastapi  # noqa: F401

    step("import FastAPI (pydantic, Starlette)")
    from stratus.web.app import create_app

    step("import the web modules (FastAPI builds the routes)")
    import pynamodb.models  # noqa: F401

    step("import pynamodb (botocore)")
    from stratus.wiring import services_from_env

    services = services_from_env()
    step("services (settings, adapters; fetch the signing key)")
    services.catalog.connect()
    services.tokens.connect()
    step("DynamoDB: pynamodb models, transactions client")
    services.storage.connect()
    step("S3 client")
    services.access.connect()
    step("access backend (config: password hashing)")
    # as handlers/api.build does for an on-demand init (the benchmark's): rare routes deferred
    app = create_app(services, defer_rare_routes=True)
    mangum.Mangum(app, lifespan="off", api_gateway_base_path="/")
    step("create the app, Mangum")
    print(json.dumps(steps))


def child_seed() -> None:
    """The seeding, in the tree ``PYTHONPATH`` names (each tree writes its own keys; the
    same files again are overwritten, so trees with one layout can share the data)."""
    from stratus.app.publish import Publisher
    from stratus.wiring import services_from_env
    from tests.support.distributions import wheel_bytes

    services = services_from_env()
    publisher = Publisher(services.catalog, services.storage, allow_overwrite=True)
    for i in range(FILES):
        filename, data = wheel_bytes(PROJECT, f"1.0.{i}")
        publisher.upload(
            name=PROJECT,
            version=f"1.0.{i}",
            filename=filename,
            data=data,
            digests={},
            uploader="alice",
        )


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child()
    raise SystemExit(0)
if __name__ == "__main__" and sys.argv[1:2] == ["--child-breakdown"]:
    child_breakdown()
    raise SystemExit(0)
if __name__ == "__main__" and sys.argv[1:2] == ["--child-seed"]:
    child_seed()
    raise SystemExit(0)

# --- the parent: emulators, data, events, fresh processes, table ----------------------------

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
for _path in (ROOT, FUNCTIONS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

HANDLER = "stratus.handlers.api.handler"
SAMPLE_CONFIG = ROOT / "examples" / "stratus.ini"
ALICE = "Basic YWxpY2U6YWxpY2Utc2VjcmV0"  # alice:alice-secret (examples/stratus.ini)
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextlib.contextmanager
def emulators(work: Path) -> Iterator[dict[str, str]]:
    """DynamoDB Local and moto with a table and a bucket; yields the function's env vars."""
    import boto3

    from stratus.adapters.table_schema import create_table_kwargs
    from tests.support.dynamodb_local import running_dynamodb_local
    from tests.support.moto_server import ENDPOINT_VARS, running_moto_server

    os.environ.update(FAKE_AWS)  # never a real account
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)
    (work / "ddb").mkdir()
    (work / "moto").mkdir()
    with running_dynamodb_local(work / "ddb") as ddb, running_moto_server(work / "moto") as moto:
        env = {
            **FAKE_AWS,
            "AWS_ENDPOINT_URL_DYNAMODB": ddb,
            **dict.fromkeys(ENDPOINT_VARS, moto),
            "STRATUS_TABLE_NAME": f"stratus-bench-{uuid.uuid4().hex[:8]}",
            "STRATUS_BUCKET_NAME": f"stratus-bench-{uuid.uuid4().hex[:8]}",
        }
        os.environ.update(env)
        boto3.client("dynamodb").create_table(**create_table_kwargs(env["STRATUS_TABLE_NAME"]))
        boto3.client("s3").create_bucket(Bucket=env["STRATUS_BUCKET_NAME"])
        # as the API stack does: the init fetches the registration-token signing key
        secret = boto3.client("secretsmanager").create_secret(
            Name=f"stratus-bench-{uuid.uuid4().hex[:8]}", SecretString=uuid.uuid4().hex
        )
        env["STRATUS_AUTH_SIGNING_KEY_SECRET"] = secret["ARN"]
        yield env


def seed(env: dict[str, str], functions: Path) -> None:
    """One project of FILES wheels, published by the ``functions`` tree's own use case (in
    a child process that imports that tree): an older tree reads only what it wrote."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    environment = {
        **keep,
        **env,
        "PYTHONPATH": os.pathsep.join((str(functions), str(ROOT))),
        "STRATUS_CONFIG": str(SAMPLE_CONFIG),
    }
    subprocess.run([sys.executable, __file__, "--child-seed"], env=environment, check=True)


def run_child(
    env: dict[str, str],
    event_file: Path,
    *,
    warm: int,
    profile: int = 0,
    phase: str = "first",
    sort: str = "cumulative",
    dump: Path | None = None,
) -> dict:
    env = {**env, "BENCH_WARM": str(warm)}
    if profile:
        env.update(BENCH_PROFILE=str(profile), BENCH_PROFILE_PHASE=phase, BENCH_PROFILE_SORT=sort)
        if dump is not None:
            env["BENCH_PROFILE_DUMP"] = str(dump.resolve())
    result = subprocess.run(
        [sys.executable, __file__, "--child", HANDLER, str(event_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child failed:\n{result.stdout}\n{result.stderr}")
    if profile:
        print(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


LAYOUT_DIR = Path(tempfile.gettempdir()) / "stratus-coldstart-layout"


def child_env(
    env: dict[str, str], config: Path, functions: Path = FUNCTIONS, layout: str = "layer"
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    environment = {
        **keep,
        **env,
        "PYTHONPATH": str(functions),
        "STRATUS_CONFIG": str(config),
        # what the API stack sets besides the names (infra/settings.py app_environment)
        "STRATUS_AUTH": "config",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_LAMBDA_FUNCTION_NAME": "stratus-api",
        # No X-Ray here: without Lambda's trace header and daemon the SDK only logs
        # "segment not found" per call, which is not what it costs in Lambda.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    if layout == "layer":
        from tests.support.layer_layout import deployed_env

        return deployed_env(environment, LAYOUT_DIR)
    return environment


def import_times(env: dict[str, str], args: list[str]) -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) for each module ``python -X importtime`` reports."""
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)  # caches
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
            rows.append((int(cumulative_us), int(self_us), name.rstrip()))
    return rows


def importtime(env: dict[str, str], event_file: Path, top: int) -> None:
    """The heaviest modules imported by the handler's init and first request."""
    at_start = {name.strip() for _, _, name in import_times(env, ["-c", "pass"])}
    child = [__file__, "--child", HANDLER, str(event_file)]
    rows = [
        row
        for row in import_times({**env, "BENCH_WARM": "0"}, child)
        if row[2].strip() not in at_start
    ]
    total = sum(self_us for _, self_us, _ in rows)
    print(f"python -X importtime, handler init + first request: {len(rows)} modules, ", end="")
    print(f"{total / 1000:.0f} ms")
    print(f"{'cumulative ms':>13} | {'self ms':>7} | module")
    for cumulative, self_us, name in sorted(rows, reverse=True)[:top]:
        print(f"{cumulative / 1000:>13.1f} | {self_us / 1000:>7.1f} | {name}")


def breakdown(env: dict[str, str], processes: int) -> None:
    runs = []
    for _ in range(processes + 1):  # the first one writes the bytecode caches
        result = subprocess.run(
            [sys.executable, __file__, "--child-breakdown"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    runs = runs[1:]
    print(f"API handler init, step by step: CPU ms, median of {processes} fresh processes")
    total = 0.0
    for i, (name, _) in enumerate(runs[0]):
        value = 1000 * statistics.median(run[i][1] for run in runs)
        total += value
        print(f"{value:8.0f}  {name}")
    print(f"{total:8.0f}  in all")


def main() -> None:
    from tests.support.apigw import captured_event

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=7, help="fresh processes per scenario")
    parser.add_argument("--warm", type=int, default=200, help="warm requests per process")
    parser.add_argument("--importtime", type=int, metavar="N", help="show the N heaviest imports")
    parser.add_argument(
        "--profile", type=int, metavar="N", help="cProfile one phase: top N functions"
    )
    parser.add_argument(
        "--profile-phase",
        choices=("init", "first", "warm"),
        default="first",
        help="what --profile measures: the init, the first request or all warm ones",
    )
    parser.add_argument(
        "--profile-sort", default="cumulative", help="pstats sort key (cumulative, tottime)"
    )
    parser.add_argument(
        "--profile-dump", type=Path, metavar="FILE", help="also save the profile (pstats)"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="CPU time of each step of the init"
    )
    parser.add_argument(
        "--functions",
        type=Path,
        action="append",
        metavar="DIR",
        help="run the handler from this functions/ folder instead (repeat to compare trees, "
        "run in turns so they share the machine's load), e.g. an older commit's: "
        "git archive COMMIT functions | tar -x -C /tmp/before",
    )
    parser.add_argument(
        "--scenarios", default="auth,anon,nopyc", help="comma-separated: auth, anon, nopyc"
    )
    parser.add_argument(
        "--layouts",
        default="layer",
        help="comma-separated: layer (as the Lambda layer ships), venv (this virtualenv)",
    )
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    if not set(layouts) <= {"layer", "venv"}:
        parser.error("--layouts takes layer, venv")
    trees = [path.resolve() for path in args.functions or [FUNCTIONS]]
    combos = [(tree, layout) for tree in trees for layout in layouts]

    with tempfile.TemporaryDirectory(prefix="stratus-coldstart-") as tmp:
        work = Path(tmp)
        anonymous_config = work / "anonymous.ini"
        anonymous_config.write_text(
            SAMPLE_CONFIG.read_text().replace(
                "pypi.default_read =\n    authenticated", "pypi.default_read =\n    everyone"
            )
        )
        with emulators(work) as env:
            for tree in trees:
                seed(env, tree)
            page = f"/simple/{PROJECT}/"
            pip = {"User-Agent": "pip/25.0"}
            events = {
                "auth": captured_event("GET", page, {**pip, "Authorization": ALICE}),
                "anon": captured_event("GET", page, pip),
            }
            files = {}
            for name, event in events.items():
                files[name] = work / f"{name}.json"
                files[name].write_text(json.dumps(event))
            if args.importtime:
                importtime(
                    child_env(env, SAMPLE_CONFIG, trees[0], layouts[0]),
                    files["auth"],
                    args.importtime,
                )
                return
            if args.breakdown:
                breakdown(child_env(env, SAMPLE_CONFIG, trees[0], layouts[0]), args.processes)
                return
            if args.profile:
                # the first scenario named: anonymous or with a password
                anonymous = args.scenarios.split(",")[0] == "anon"
                config = anonymous_config if anonymous else SAMPLE_CONFIG
                environment = child_env(env, config, trees[0], layouts[0])
                event = files["anon" if anonymous else "auth"]
                run_child(environment, event, warm=0)  # write caches
                run_child(
                    environment,
                    event,
                    warm=args.warm if args.profile_phase == "warm" else 0,
                    profile=args.profile,
                    phase=args.profile_phase,
                    sort=args.profile_sort,
                    dump=args.profile_dump,
                )
                return
            no_pycache = {
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(work / "no-pycache"),
            }
            scenarios = {
                "auth": ("pip (basic auth)", SAMPLE_CONFIG, "auth", {}),
                "anon": ("anonymous", anonymous_config, "anon", {}),
                "nopyc": ("no bytecode", SAMPLE_CONFIG, "auth", no_pycache),
            }
            rows = []
            for key in args.scenarios.split(","):
                label, config, event, more_env = scenarios[key]
                environments = [
                    {**child_env(env, config, tree, layout), **more_env} for tree, layout in combos
                ]
                for environment in environments:
                    run_child(environment, files[event], warm=5)  # write caches
                runs: list[list[dict]] = [[] for _ in combos]
                for _ in range(args.processes):
                    for i, environment in enumerate(environments):
                        runs[i].append(run_child(environment, files[event], warm=args.warm))
                for (tree, layout), combo_runs in zip(combos, runs, strict=True):
                    tags = [tree.parent.name] if len(trees) > 1 else []
                    tags += [layout] if len(layouts) > 1 else []
                    name = f"{label} [{', '.join(tags)}]" if tags else label
                    rows.append((name, combo_runs))
    report(rows, args)


def report(rows: list[tuple[str, list[dict]]], args: argparse.Namespace) -> None:
    def ms(key: str, runs: list[dict]) -> float:
        return 1000 * statistics.median(r[key] for r in runs)

    print(
        f"GET /simple/{PROJECT}/ ({FILES} files) through {HANDLER}; median of "
        f"{args.processes} fresh processes, warm = median of {args.warm}; ms, CPU ms in ()"
    )
    width = max(len(label) for label, _ in rows)
    header = (
        f"{'scenario':<{width}} | {'init':>11} | {'first request':>13} | {'init+first':>11} | "
        f"{'first/init':>10} | {'warm':>5} | modules"
    )
    print(header)
    print("-" * len(header))
    for label, runs in rows:
        for r in runs:
            r["total"], r["total_cpu"] = r["init"] + r["first"], r["init_cpu"] + r["first_cpu"]
        init, first = ms("init", runs), ms("first", runs)
        print(
            f"{label:<{width}} | {init:>4.0f} ({ms('init_cpu', runs):>4.0f}) | "
            f"{first:>6.0f} ({ms('first_cpu', runs):>4.0f}) | "
            f"{ms('total', runs):>4.0f} ({ms('total_cpu', runs):>4.0f}) | "
            f"{first / init:>10.0%} | {ms('warm', runs):>5.2f} | {max(r['modules'] for r in runs)}"
        )
    print(f"\n(machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {time.ctime()})")


if __name__ == "__main__":
    main()
