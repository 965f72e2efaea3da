#!/usr/bin/env bash
# Install if needed, then run the default test suite (extra pytest arguments are passed through,
# e.g. `bash scripts/test.sh -m slow` for the long checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
