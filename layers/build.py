#!/usr/bin/env python3
"""Build the Lambda dependency layer from the locked requirements.

    python layers/build.py            # build layers/build/ (skipped when up to date)
    python layers/build.py --force    # rebuild even if up to date
    python layers/build.py --lock     # re-resolve requirements.in into requirements.txt

The functions run on python3.12 / arm64 (Graviton), so pip fetches manylinux wheels for
that platform whatever machine runs this script (no Docker needed): binary wheels only,
every file checked against the hashes in the lock, no dependency resolution at build time
(the lock is complete). The AWS SDK (boto3, botocore, s3transfer) is in the lock too,
although the python3.12 runtime has one: a layer comes before the runtime's own packages
on ``sys.path``, so the functions run the SDK version the lock names, with its service
models trimmed (below).

Two layers come out of the one lock:

* ``build/main/python``: what every function needs;
* ``build/ldap/python``: ``ldap3`` and what only it needs (found from the lock's ``# via``
  lines), attached to the API function only when the deployment uses LDAP.

Both ship bytecode compiled for the runtime's Python (3.12, so this step needs a Python
3.12 interpreter) as hash-based ``.pyc`` files that Python loads without checking the
source: the CDK zips assets with every timestamp set to 1980, which would make ordinary
timestamp-based ``.pyc`` files look stale, and a layer never changes once published.
Each ``.pyc`` names its source where Lambda mounts it (``/opt/python/...``), so
tracebacks show the right lines. The function code gets the same treatment at synth
(``infra/functions.py``).

Two things a cold start does not need are left out or trimmed:

* ``pydantic/v1``, pydantic's bundled copy of its first version. Nothing in Stratus uses
  it, but FastAPI probes every route's types for v1 models by importing it when it is
  there (~40 ms of every init); without it the probe answers "no" at once.
* botocore's data (``trim_botocore_data``). botocore parses the JSON model of every
  client a function makes, and ``endpoints.json`` (all of AWS, 1.2 MB) for the first one;
  and every botocore session (pynamodb makes its own) lists all ~450 service folders,
  twice, to learn which services exist: together about 75 ms of a cold start here. The
  layer's botocore keeps only the services the functions call (``LAMBDA_AWS_SERVICES``),
  their newest API version, their models without documentation strings, and an
  ``endpoints.json`` naming only them.

The output is git-ignored. ``build/STAMP`` records the lock (and this layout) it was built
from; the CDK app refuses to synthesize with a missing or stale layer.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS_IN = HERE / "requirements.in"
LOCK = HERE / "requirements.txt"
BUILD = HERE / "build"
STAMP = BUILD / "STAMP"
# A layer's python/ folder lands on sys.path in Lambda, mounted under /opt.
MAIN = BUILD / "main"
LDAP = BUILD / "ldap"
LAMBDA_LAYER_PATH = "/opt/python"
LAMBDA_TASK_ROOT = "/var/task"  # where the function code lands
# Packages that live in an extra layer, with what only they need: {layer folder: roots}.
EXTRA_LAYERS = {LDAP: ("ldap3",)}
# Bump when the layout or the bytecode changes, so an older build counts as stale.
LAYOUT = "main+ldap, unchecked-hash pyc for cp312, no pydantic.v1, trimmed AWS SDK, v4"

PYTHON_VERSION = "3.12"
# Lambda python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux2014 and _2_28 wheels fit.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Only tests and the CDK app use these; a layer holding one of them is a packaging mistake.
NEVER_IN_A_LAYER = ("pytest", "moto", "aws_cdk", "constructs", "jsii", "cdk_nag", "cfnlint")
# Shipped by a dependency but never imported by Stratus, and costly to have around (above).
PRUNED = ("pydantic/v1",)
PRUNED_MODULES = tuple(path.replace("/", ".") for path in PRUNED)
# The AWS services the functions' clients call (adapters/aws_client.py and pynamodb's):
# the only ones the layer's botocore knows.
LAMBDA_AWS_SERVICES = ("dynamodb", "logs", "s3", "secretsmanager", "sqs")


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes() + LAYOUT.encode()).hexdigest()


def is_current() -> bool:
    return (
        (MAIN / "python").is_dir()
        and STAMP.is_file()
        and STAMP.read_text().strip() == lock_digest()
    )


# --- the lock, split into layers ------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_blocks(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{package: (its block of the lock, what it is there for)} from uv's output.

    "What it is there for" is the ``# via`` list: package names, or ``-r <file>`` for a
    direct requirement.
    """
    blocks: dict[str, tuple[str, frozenset[str]]] = {}
    for block in re.split(r"^(?=[A-Za-z0-9])", text, flags=re.MULTILINE):
        match = re.match(r"([A-Za-z0-9_.\-]+)==", block)
        if not match:
            continue
        reasons: list[str] = []
        lines = iter(block.splitlines())
        for line in lines:
            if line.strip().startswith("# via"):
                reasons += line.strip().removeprefix("# via").split()  # "# via name"
                for more in lines:  # "# via" then one "#   name" line each
                    if not re.match(r"\s+#\s{3}\S", more):
                        break
                    reasons.append(more.strip().lstrip("#").strip())
                break
        blocks[_canonical(match.group(1))] = (block, frozenset(map(_canonical, reasons)))
    return blocks


def extra_layer_packages(blocks: dict[str, tuple[str, frozenset[str]]], roots) -> set[str]:
    """``roots`` and every locked package that is there only for them."""
    members = {_canonical(r) for r in roots}
    grew = True
    while grew:
        grew = False
        for name, (_, reasons) in blocks.items():
            if name not in members and reasons and reasons <= members:
                members.add(name)
                grew = True
    return members


def split_lock() -> dict[Path, str]:
    """{layer folder: the part of the lock it installs}."""
    blocks = lock_blocks(LOCK.read_text())
    parts: dict[Path, str] = {}
    taken: set[str] = set()
    for folder, roots in EXTRA_LAYERS.items():
        members = extra_layer_packages(blocks, roots)
        parts[folder] = "".join(blocks[name][0] for name in sorted(members))
        taken |= members
    parts[MAIN] = "".join(block for name, (block, _) in blocks.items() if name not in taken)
    return parts


# --- bytecode for the Lambda runtime's Python -------------------------------------------


def lambda_python() -> str:
    """A Python 3.12 interpreter: bytecode only loads on the minor version that made it."""
    if sys.version_info[:2] == tuple(map(int, PYTHON_VERSION.split("."))):
        return sys.executable
    found = shutil.which(f"python{PYTHON_VERSION}")
    if found is None:
        sys.exit(
            f"Compiling bytecode for the Lambda runtime needs Python {PYTHON_VERSION}: run "
            f"this with python{PYTHON_VERSION}, or put python{PYTHON_VERSION} on PATH."
        )
    return found


def compile_for_lambda(tree: Path, lambda_path: str) -> None:
    """Compile every ``.py`` under ``tree`` into ``__pycache__`` for the Lambda runtime.

    Unchecked hash-based pycs: valid whatever the file times (CDK zips with 1980 dates),
    never re-validated against the source (layers and function code are immutable).
    ``lambda_path`` is where ``tree`` is mounted in Lambda; tracebacks name files there.
    """
    subprocess.run(
        [
            lambda_python(),
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            lambda_path,
            str(tree),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


# --- botocore's service models, trimmed ------------------------------------------------


def _read_model(stem: Path) -> dict:
    """A botocore data file, plain (``name.json``) or compressed (``name.json.gz``)."""
    plain, packed = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".json.gz")
    if plain.is_file():
        return json.loads(plain.read_bytes())
    return json.loads(gzip.decompress(packed.read_bytes()))


def _without_docs(node: object) -> object:
    if isinstance(node, dict):
        return {
            key: _without_docs(value)
            for key, value in node.items()
            if not (key in ("documentation", "documentationUrl") and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_docs(value) for value in node]
    return node


def trim_botocore_data(data: Path, services: tuple[str, ...] = LAMBDA_AWS_SERVICES) -> Path:
    """Trim a botocore ``data`` folder, in place, to ``services``.

    Other services' folders go, and so do older API versions and the examples (read only
    for help texts). The kept ``service-2`` models lose their operations' and shapes'
    documentation, which is their bulk and which botocore reads only for help texts
    (``.get("documentation", "")``); rule sets, paginators, waiters and the top-level
    files (partitions, retry and default configuration) stay whole. ``endpoints.json``
    keeps only these services.
    """
    missing = [service for service in services if not (data / service).is_dir()]
    if missing:
        raise SystemExit(f"botocore has no model for {', '.join(missing)}")
    for folder in [p for p in data.iterdir() if p.is_dir()]:
        if folder.name not in services:
            shutil.rmtree(folder)
            continue
        *older, newest = sorted(p for p in folder.iterdir() if p.is_dir())
        for version in older:
            shutil.rmtree(version)
        model = _read_model(newest / "service-2")
        for part in ("operations", "shapes"):
            model[part] = _without_docs(model[part])
        for stale in (*newest.glob("service-2.json*"), *newest.glob("examples-1.json*")):
            stale.unlink()
        (newest / "service-2.json").write_text(json.dumps(model, separators=(",", ":")))
    endpoints = _read_model(data / "endpoints")
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: value for name, value in partition["services"].items() if name in services
        }
    for stale in data.glob("endpoints.json*"):
        stale.unlink()
    (data / "endpoints.json").write_text(json.dumps(endpoints, separators=(",", ":")))
    return data


def relock() -> None:
    """Resolve requirements.in for the Lambda's Python and platform, with hashes."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        sys.exit("uv is needed to relock (pip install uv); building needs only pip.")
    cmd = [
        uv,
        "pip",
        "compile",
        "layers/requirements.in",
        "--output-file",
        "layers/requirements.txt",
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        "aarch64-manylinux_2_28",
        "--generate-hashes",
        "--quiet",
    ]
    subprocess.run(cmd, check=True, cwd=HERE.parent)


def install(requirements: str, target: Path) -> None:
    """pip-install one part of the lock into ``target`` (a layer's python/ folder)."""
    with tempfile.TemporaryDirectory(prefix="stratus-layer-") as tmp:
        part = Path(tmp) / "requirements.txt"
        part.write_text(requirements)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        cmd += ["--target", str(target), "--implementation", "cp"]
        cmd += ["--python-version", PYTHON_VERSION, "--only-binary=:all:"]
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        # The lock is complete and hashed: no resolution, no surprise boto3 from a dependency.
        cmd += ["--no-deps", "--require-hashes", "--requirement", str(part)]
        print("building layer:", target.relative_to(HERE.parent))
        subprocess.run(cmd, check=True)
    for leaked in NEVER_IN_A_LAYER:
        if (target / leaked.replace("-", "_")).exists():
            sys.exit(f"{leaked} ended up in {target}; it must not be in a Lambda layer")
    for pruned in PRUNED:
        shutil.rmtree(target / pruned, ignore_errors=True)
    # Nothing here runs as a script; bytecode is compiled below for the runtime's Python.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    compile_for_lambda(target, LAMBDA_LAYER_PATH)


def build(force: bool = False) -> None:
    if is_current() and not force:
        print(f"layers up to date: {BUILD.relative_to(HERE.parent)}")
        return
    lambda_python()  # fail before downloading anything
    if BUILD.exists():
        shutil.rmtree(BUILD)
    for folder, requirements in split_lock().items():
        install(requirements, folder / "python")
    trim_botocore_data(MAIN / "python" / "botocore" / "data")
    STAMP.write_text(lock_digest() + "\n")
    print(f"layers built: {BUILD.relative_to(HERE.parent)} (main, ldap)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", action="store_true", help="re-resolve requirements.txt")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    if args.lock:
        relock()
        print(f"locked: {LOCK.relative_to(HERE.parent)}")
        return
    build(force=args.force)


if __name__ == "__main__":
    main()
