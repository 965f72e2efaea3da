#!/usr/bin/env bash
# Create ./.venv (Python 3.11) and install seisflows_eara with its pinned dependencies and test extra.
# Idempotent: a second call only re-installs the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e ".[test]"
