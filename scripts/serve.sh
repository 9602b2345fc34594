#!/usr/bin/env bash
# Set up and start the local index with the sample config (user alice / alice-secret).
# Extra arguments go to `stratus serve` (e.g. --port 9000 --data-dir /srv/stratus).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh serve
exec .venv/bin/stratus serve --config examples/stratus.ini "$@"
