#!/usr/bin/env bash
# Refresh requirements/dev.lock: the exact releases the README's test command and CI install.
#
# Run it deliberately (after scripts/test-newest.sh has passed), review the diff, commit it with
# the code it was tested with. The lock pins every package the `dev` extra pulls in, so a patch
# release upstream changes nothing until someone chooses to take it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e ".[dev]"
{
    echo "# The development and test environment, exactly (pip install -c requirements/dev.lock -e \".[dev]\")."
    echo "# Made by scripts/lock.sh with $("$venv/bin/python" --version) on $(date -u +%Y-%m-%d); refresh it on purpose."
    "$venv/bin/pip" freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel)=='
} > requirements/dev.lock
echo "requirements/dev.lock: $(grep -c '==' requirements/dev.lock) packages pinned"
