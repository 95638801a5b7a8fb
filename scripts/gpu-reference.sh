#!/usr/bin/env bash
# Lighthouse against the paper's reference implementation on a GPU machine
# (after scripts/fetch-reference.sh here, carrying `.deps` there): builds if
# needed, runs benchmarks/reference_bench.py, then `lighthouse bench op` on
# the same N with dense cuDNN for the absolute numbers. Writes
# $OUT/reference.json, $OUT/bench-reference-ns.json and the logs.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/lighthouse-gpu}
BUILD_DIR=${BUILD_DIR:-build-gpu}
mkdir -p "$OUT"
[[ -x $BUILD_DIR/lighthouse ]] || bash scripts/gpu-check.sh build >/dev/null || { tail -30 "$OUT/build.log"; exit 1; }
export LIGHTHOUSE_LIBRARY=$PWD/$BUILD_DIR/liblighthouse_ops.so PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
python3 benchmarks/reference_bench.py --json "$OUT/reference.json" 2>&1 | grep -v -i "warn" | tee "$OUT/reference.log"
"$BUILD_DIR/lighthouse" bench op --seq-lens 32768 65536 131072 262144 524288 --top-k 2048 4096 4096 4096 4096 \
  --dense cudnn --json "$OUT/bench-reference-ns.json" 2>"$OUT/bench-reference-ns.err" | tee "$OUT/bench-reference-ns.log"
