#!/usr/bin/env bash
# Every CPU test: set-up (installs and builds what is missing), then the C++
# tests (ctest) and the Python tests (pytest). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-python3}

echo "[test] C++ tests (ctest)"
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 1800

echo "[test] Python tests (pytest)"
PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" LIGHTHOUSE_BUILD_DIR="$BUILD_DIR" \
  "$PYTHON" -m pytest -q tests/python
echo "[test] all passed"
