#!/usr/bin/env bash
# Set up and run the whole test suite (unit, contract, integration, e2e, infra).
# Extra arguments go to pytest (e.g. -k simple, -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
.venv/bin/ruff check functions infra tests layers benchmarks
.venv/bin/mypy  # the type checker, Python 3.12 (pyproject.toml [tool.mypy])
exec .venv/bin/pytest -n 2 --dist loadfile "$@"
