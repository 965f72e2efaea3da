#!/usr/bin/env bash
# Install into ./.venv (if needed) and run the demo on real data; results in ./demo_output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/seisflows-eara demo --output demo_output "$@"
