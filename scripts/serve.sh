#!/usr/bin/env bash
# Set up and start the local index with the sample config (user alice / alice-secret).
# Extra arguments go to `stratus serve` (e.g. --port 9000 --data-dir /srv/stratus).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh serve
cat <<'EOF2'
Sample users (examples/stratus.ini): alice / alice-secret (admin), bob / bob-secret (reader).
Stop the server with Ctrl-C; the index and files stay in ./stratus-data.
EOF2
exec .venv/bin/stratus serve --config examples/stratus.ini "$@"
