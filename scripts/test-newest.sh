#!/usr/bin/env bash
# Run the whole suite against the newest releases the index has (no lock), in a fresh virtual
# environment: how an upgrade is tried before scripts/lock.sh takes it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade --upgrade-strategy eager -e ".[dev]"
"$venv/bin/pip" list --format=freeze | grep -i -E '^(grpcio|protobuf|sqlalchemy|cryptography)' || true
"$venv/bin/python" -m pytest "$@"
