#!/usr/bin/env bash
# The one GPU command: build on a GPU machine, run the GPU tests (with
# compute-sanitizer on a small run, and the trainer checks of
# scripts/gpu-trainer-check.sh, which need data/packed) and the op benchmark. Full logs and JSON
# go to $OUT (default /tmp/lighthouse-gpu); a short summary prints last.
#
#   bash scripts/gpu-check.sh [build|test|bench|all] [extra `lighthouse bench` args]
#
# Needs: nvcc, cmake, ninja, python3 with torch (CUDA) and pytest. Header-only
# dependencies missing there are taken from .deps/include (scripts/carry-deps.sh).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE=${1:-all}
shift || true
OUT=${OUT:-/tmp/lighthouse-gpu}
BUILD_DIR=${BUILD_DIR:-build-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
summary=()

if [[ $MODE == build || $MODE == all || ! -x $BUILD_DIR/lighthouse ]]; then
  { nvidia-smi; nvcc --version; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'; git log -1 --format='git HEAD here %H %cd (the tree sent may be newer)' 2>/dev/null
    # Each source file's hash, so that scripts/check-sent-tree.sh can say
    # which files of the tree run here differ from a local checkout.
    sums=$(bash scripts/check-sent-tree.sh --list)
    echo "source sha256 $(echo "$sums" | sha256sum | cut -c1-16)"
    echo "$sums" | sed 's/^/file /'; } >"$OUT/machine.txt" 2>&1
  start=$(date +%s)
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DLIGHTHOUSE_CUDA=ON \
    >"$OUT/build.log" 2>&1 && cmake --build "$BUILD_DIR" -j "$(nproc)" >>"$OUT/build.log" 2>&1
  rc=$?
  { c++ --version; ninja -C "$BUILD_DIR" -t commands | grep -m1 'sdpa.cpp'; } >"$OUT/toolchain.txt" 2>&1
  summary+=("build: rc=$rc in $(($(date +%s) - start)) s")
  if [[ $rc != 0 ]]; then
    tail -40 "$OUT/build.log"
    printf '%s\n' "${summary[@]}"
    exit 1
  fi
fi

export LIGHTHOUSE_LIBRARY=$PWD/$BUILD_DIR/liblighthouse_ops.so
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}

if [[ $MODE == test || $MODE == all ]]; then
  start=$(date +%s)
  python3 -m pytest -q -rA tests/gpu -p no:cacheprovider >"$OUT/gpu-tests.log" 2>&1
  rc=$?
  summary+=("gpu tests: rc=$rc in $(($(date +%s) - start)) s: $(tail -1 "$OUT/gpu-tests.log")")
  for tool in memcheck racecheck; do
    start=$(date +%s)
    backend=auto
    [[ $tool == racecheck ]] && backend=math  # cuDNN's own kernels trip racecheck
    timeout 240 compute-sanitizer --tool "$tool" --error-exitcode 3 python3 tests/gpu/sanitize_run.py $backend \
      >"$OUT/sanitizer-$tool.log" 2>&1
    summary+=("compute-sanitizer $tool: rc=$? in $(($(date +%s) - start)) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.log" | tail -1)")
  done
  grep -E "PASSED|FAILED|ERROR" "$OUT/gpu-tests.log" | cut -c1-160 | tail -40
  # The trainer: the run that crashed at exit, and exact resume (about a minute).
  start=$(date +%s)
  OUT=$OUT LH=$BUILD_DIR/lighthouse bash scripts/gpu-trainer-check.sh 2>&1 | tee "$OUT/trainer-check.log"
  summary+=("trainer check: rc=${PIPESTATUS[0]} in $(($(date +%s) - start)) s: $(grep -E 'check (PASS|FAIL)|resume check' "$OUT/trainer-check.log" | tr '\n' ' ')")
fi

if [[ $MODE == bench || $MODE == all ]]; then
  start=$(date +%s)
  "$BUILD_DIR/lighthouse" bench op --stages --json "$OUT/bench.json" "$@" >"$OUT/bench.log" 2>"$OUT/bench.err"
  rc=$?
  summary+=("bench: rc=$rc in $(($(date +%s) - start)) s")
  cat "$OUT/bench.log"
  [[ $rc != 0 ]] && tail -20 "$OUT/bench.err"
fi

echo
printf '%s\n' "${summary[@]}"
