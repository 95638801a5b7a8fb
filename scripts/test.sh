#!/usr/bin/env bash
# Every CPU test: set-up (installs and builds what is missing, and installs
# the Python package into a fresh virtual environment), then the C++ tests
# (ctest) and the Python tests (pytest, against the installed package: not
# python/ on the path). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build}
VENV=${LIGHTHOUSE_VENV:-$BUILD_DIR/venv}
LIGHTHOUSE_VENV="$VENV" bash scripts/setup.sh

echo "[test] C++ tests (ctest)"
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 1800

echo "[test] Python tests (pytest, the package installed in $VENV)"
# PYTHONSAFEPATH: the current directory is not put on sys.path.
env -u LIGHTHOUSE_LIBRARY -u PYTHONPATH PYTHONSAFEPATH=1 LIGHTHOUSE_TEST_INSTALLED=1 \
  LIGHTHOUSE_BUILD_DIR="$BUILD_DIR" "$VENV/bin/python" -m pytest -q tests/python
echo "[test] all passed"
