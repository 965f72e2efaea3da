#!/usr/bin/env bash
# Two virtual environments (Python 3.11), idempotent (a second call only re-installs the package):
#   .venv      seisflows_eara with the SeisFlows 2.3.1 stack from PyPI (extra `sf2`) and the test extra
#   .venv-sf3  SeisFlows 3.5.6 (the wheel in ../shared/vendor, built from GitHub main) + seisflows_eara;
#              tests/test_seisflows3.py drives its `seisflows`. SEISFLOWS3=0 skips it (the demo needs
#              only .venv); a missing wheel skips it with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# mpich: PyPI's MPI wheel (mpiexec in .venv/bin, the library mpi4py loads) so the slice-parallel
# direction tests run under MPI on a machine without a system MPI; on a cluster use the site's MPI
.venv/bin/python -m pip install -q -e ".[test,sf2,mpi]" "mpich>=4"

WHEEL=../shared/vendor/seisflows-3.5.6-py3-none-any.whl
if [ "${SEISFLOWS3:-1}" = 0 ]; then
  exit 0
elif [ ! -f "$WHEEL" ]; then
  echo "setup_env.sh: $WHEEL not found; .venv-sf3 (SeisFlows 3.x) not created, its tests will skip" >&2
  exit 0
fi
if [ ! -x .venv-sf3/bin/python ]; then
  "$PY" -m venv .venv-sf3
  .venv-sf3/bin/python -m pip install -q --upgrade pip
fi
# one resolution: the wheel's SeisFlows satisfies our `seisflows>=2.3.1,<3.6`, so nothing is downgraded
.venv-sf3/bin/python -m pip install -q "$WHEEL" -e ".[test]"
