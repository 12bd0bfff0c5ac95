#!/usr/bin/env bash
# Sets up a virtual environment with everything the tests need (workstation extras included) and
# runs the whole test suite. Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# torch first, pinned: 2.13.0 is the CPU build; an unpinned torch pulls several GB of CUDA wheels.
"$VENV/bin/pip" install -q torch==2.13.0
# EXTRAS: the extras to install (CI adds pool, which brings Ray Serve for tests/pool).
"$VENV/bin/pip" install -q -e ".[${EXTRAS:-codegen,dev,tflite}]"
exec "$VENV/bin/python" -m pytest "$@"
