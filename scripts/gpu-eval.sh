#!/usr/bin/env bash
# The evaluation harness on one GPU, timed: the passkey test at contexts
# 4K-32K (dense, and the Lighthouse layers on for 8K-32K) and loss by
# position on a gpu-small checkpoint.
#
#   OUT=/path bash scripts/gpu-eval.sh [CHECKPOINT]
#
# CHECKPOINT defaults to runs/gpu-train/gpu-small/two-stage (what
# scripts/gpu-train.sh leaves). If it is missing, gpu-small is trained for
# EVAL_TRAIN_STEPS steps first (default 40, switch after 32; about a minute).
# Needs $BUILD_DIR/lighthouse (default build-gpu/, built by
# scripts/gpu-train.sh) and data/packed (carried).
#
# Writes $OUT/eval/{niah-dense,niah-lighthouse,loss}/ (JSON, PNG), their logs,
# and prints a table: what ran, its grid, wall-clock seconds, the result.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/runs/gpu-eval-out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
LH=$BUILD_DIR/lighthouse
CKPT=${1:-runs/gpu-train/gpu-small/two-stage}
TRIALS=${TRIALS:-20}
mkdir -p "$OUT/eval/logs"
log() { printf '[gpu-eval %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ ! -x "$LH" ]; then
  log "error: $LH not found: run scripts/gpu-train.sh first (it builds $BUILD_DIR), or build the lighthouse target there"
  exit 1
fi
if [ ! -d "$CKPT" ]; then
  steps=${EVAL_TRAIN_STEPS:-40}
  log "no checkpoint at $CKPT: training gpu-small for $steps steps"
  "$LH" train --preset gpu-small --no-baseline --steps "$steps" --stage2.start_step $((steps * 4 / 5)) \
    --run-dir runs/gpu-eval-train > "$OUT/eval/logs/train.log" 2>&1 || { tail -20 "$OUT/eval/logs/train.log"; exit 1; }
  CKPT=runs/gpu-eval-train/two-stage
fi

declare -a ROWS
timed() {  # name, grid, then the command
  local name=$1 grid=$2
  shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" > "$OUT/eval/logs/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs result
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  result=$(grep -E "NIAH mean accuracy|held-out loss" "$OUT/eval/logs/$name.log" | head -1 | cut -c1-90)
  [ $rc -eq 0 ] || result="FAILED (exit $rc): $(tail -1 "$OUT/eval/logs/$name.log")"
  ROWS+=("$(printf '%-16s %-34s %8s  %s' "$name" "$grid" "$secs" "$result")")
  log "$name: ${secs} s, exit $rc"
}

timed niah-dense "4K,8K,16K,32K x 11 x $TRIALS" \
  "$LH" eval niah --checkpoint "$CKPT" --attention dense --contexts 4096,8192,16384,32768 --trials "$TRIALS" \
  --out "$OUT/eval/niah-dense"
timed niah-lighthouse "8K,16K,32K x 11 x $TRIALS" \
  "$LH" eval niah --checkpoint "$CKPT" --attention lighthouse --contexts 8192,16384,32768 --trials "$TRIALS" \
  --out "$OUT/eval/niah-lighthouse"
timed loss "all val windows of 32K" \
  "$LH" eval loss --checkpoint "$CKPT" --attention dense --out "$OUT/eval/loss"

{
  echo "checkpoint: $CKPT ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
  printf '%-16s %-34s %8s  %s\n' "run" "grid (contexts x depths x trials)" "seconds" "result"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/eval/summary.txt"
