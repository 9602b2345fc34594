#!/usr/bin/env python3
"""Build the Lambda dependency layer from the locked requirements.

    python layers/build.py            # build layers/build/python (skipped when up to date)
    python layers/build.py --force    # rebuild even if up to date
    python layers/build.py --lock     # re-resolve requirements.in into requirements.txt

The functions run on python3.12 / arm64 (Graviton), so pip fetches manylinux wheels for
that platform whatever machine runs this script (no Docker needed): binary wheels only,
every file checked against the hashes in the lock, no dependency resolution at build time
(the lock is complete). boto3, botocore and s3transfer and their own dependencies are
left out on purpose: the Lambda runtime provides them.

The output is git-ignored. ``build/STAMP`` records the sha256 of the lock it was built
from; the CDK app refuses to synthesize with a missing or stale layer.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS_IN = HERE / "requirements.in"
LOCK = HERE / "requirements.txt"
BUILD = HERE / "build"
TARGET = BUILD / "python"  # a layer's python/ folder lands on sys.path in Lambda
STAMP = BUILD / "STAMP"

PYTHON_VERSION = "3.12"
# Lambda python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux2014 and _2_28 wheels fit.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Provided by the Lambda runtime; never shipped in the layer.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six")


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def is_current() -> bool:
    return TARGET.is_dir() and STAMP.is_file() and STAMP.read_text().strip() == lock_digest()


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
    for name in RUNTIME_PROVIDED:
        cmd += ["--no-emit-package", name]
    subprocess.run(cmd, check=True, cwd=HERE.parent)


def build(force: bool = False) -> None:
    if is_current() and not force:
        print(f"layer up to date: {TARGET.relative_to(HERE.parent)}")
        return
    if BUILD.exists():
        shutil.rmtree(BUILD)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cmd += ["--target", str(TARGET), "--implementation", "cp"]
    cmd += ["--python-version", PYTHON_VERSION, "--only-binary=:all:"]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    # The lock is complete and hashed: no resolution, no surprise boto3 from a dependency.
    cmd += ["--no-deps", "--require-hashes", "--requirement", str(LOCK)]
    print("building layer:", " ".join(cmd[3:]))
    subprocess.run(cmd, check=True)
    for leaked in RUNTIME_PROVIDED:
        if (TARGET / leaked.replace("-", "_")).exists():
            sys.exit(f"{leaked} ended up in the layer; it must come from the Lambda runtime")
    # Nothing here runs as a script, and bytecode is rebuilt in Lambda's /tmp anyway.
    shutil.rmtree(TARGET / "bin", ignore_errors=True)
    for cache in list(TARGET.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    STAMP.write_text(lock_digest() + "\n")
    print(f"layer built: {TARGET.relative_to(HERE.parent)}")


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
