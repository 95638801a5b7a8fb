#!/usr/bin/env bash
# Issue 14 on one GPU (H200), after `bash scripts/gpu-check.sh build` (this
# script uses that build, $BUILD_DIR = build-gpu, and builds nothing):
#
#   1. the fused path's GPU tests (tests/gpu/test_fused_cuda.py: CUDA vs CPU
#      twin, poisoned outputs, determinism, the tolerance rule at the model's
#      shapes; tests/gpu/test_fused_train.py: `lighthouse bench train
#      --check-only`: fused AdamW and the fused model vs the unfused ones
#      within the rule, recompute plans and deterministic reruns
#      bit-identical)                                         about 1 min;
#   2. `lighthouse bench train` for paper-530m (context 98,304): Lighthouse
#      and dense, fused off and on, in one run (the before/after table):
#      tokens/s, MFU, peak memory, breakdown by category      about 2 min;
#   3. only with PAPER1M=1: paper-1m (1,048,576 tokens, every layer
#      Lighthouse, fused, the memory plan's checkpointing) for 2 timed steps
#      (random tokens: throughput and peak memory)            about 1.5 min.
#
#   OUT=/path/to/results bash scripts/gpu-perf.sh        # 1 + 2, about 3 min
#   PAPER1M=1 OUT=... bash scripts/gpu-perf.sh           # 1 + 2 + 3, about 4.5 min
#   BENCH_STEPS=2 (timed steps per configuration), SKIP_TESTS=1 (skip 1)
#
# Writes $OUT/bench-train-paper-530m.json (and -paper-1m.json), the logs
# under $OUT/logs and $OUT/exit_codes.txt (0 everywhere = success).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/lighthouse-gpu-perf}
BUILD_DIR=${BUILD_DIR:-build-gpu}
BENCH_STEPS=${BENCH_STEPS:-2}
mkdir -p "$OUT/logs"
log() { printf '[gpu-perf %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/logs/gpu-perf.log"; }
START=$(date +%s)
declare -A RC

LH=$ROOT/$BUILD_DIR/lighthouse
if [ ! -x "$LH" ]; then
  log "no $LH: run 'bash scripts/gpu-check.sh build' first"
  exit 1
fi
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  git rev-parse HEAD 2>/dev/null || echo "(no git)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
} > "$OUT/environment.txt"
export LIGHTHOUSE_LIBRARY=$ROOT/$BUILD_DIR/liblighthouse_ops.so LIGHTHOUSE_BIN=$LH
export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# step NAME CAP CMD...: runs CMD with a time cap, its output in logs/NAME.log.
step() {
  local name=$1 cap=$2
  shift 2
  local t
  t=$(date +%s)
  log "$name: $*"
  timeout --kill-after=20 "$cap" "$@" > "$OUT/logs/$name.log" 2>&1
  RC[$name]=$?
  log "$name: exit ${RC[$name]} after $(($(date +%s) - t)) s"
  tail -n "${TAIL:-25}" "$OUT/logs/$name.log" | tee -a "$OUT/logs/gpu-perf.log"
}

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  TAIL=10 step gpu-tests 240 python3 -m pytest -q -rA -p no:cacheprovider tests/gpu/test_fused_cuda.py \
    tests/gpu/test_fused_train.py
fi

# The checks already ran in step 1 (--no-check).
TAIL=45 step bench-train-530m 300 "$LH" bench train --preset paper-530m --attention both --fused both --no-check \
  --warmup 1 --steps "$BENCH_STEPS" --json "$OUT/bench-train-paper-530m.json"

if [ "${PAPER1M:-0}" = 1 ]; then
  TAIL=25 step bench-train-1m 240 "$LH" bench train --preset paper-1m --attention lighthouse --fused on --no-check \
    --warmup 0 --steps 2 --json "$OUT/bench-train-paper-1m.json"
fi

log "total $(($(date +%s) - START)) s"
for k in "${!RC[@]}"; do echo "$k ${RC[$k]}"; done | sort | tee "$OUT/exit_codes.txt"
