#!/usr/bin/env bash
# Issue 14 on one GPU (H200), in about 5 minutes once built:
#
#   1. build `lighthouse` and the op library (incremental when $BUILD_DIR exists);
#   2. the fused kernels' GPU tests (CUDA vs CPU twin bit for bit, poisoned
#      outputs, determinism, the tolerance rule at the model's shapes) and the
#      trainer-level checks (`lighthouse bench train --check-only`: fused AdamW
#      and the fused model vs the unfused ones within the rule, deterministic
#      reruns bit-identical);
#   3. `lighthouse bench train` for paper-530m, Lighthouse and dense, fused off
#      and on, in one run: tokens/s, MFU, peak memory, breakdown by category;
#   4. paper-1m (1,048,576 tokens, every layer Lighthouse) for a few training
#      steps: tokens/s, peak memory, the first losses, the checkpoint plan.
#
#   OUT=/path/to/results bash scripts/gpu-perf.sh
#   PAPER1M_STEPS=3 BENCH_STEPS=2 ... (defaults shown below)
#
# Needs what scripts/gpu-train.sh needs: nvcc (CUDA 13), torch 2.11 with CUDA,
# pytest, header-only deps (or .deps/include), and data/packed for step 4.
# Every step's exit status is recorded; a failing step does not stop the others.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/runs/gpu-perf-out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
BENCH_STEPS=${BENCH_STEPS:-2}
PAPER1M_STEPS=${PAPER1M_STEPS:-3}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT/logs"
log() { printf '[gpu-perf %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/logs/gpu-perf.log"; }
START=$(date +%s)
declare -A RC

if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  git rev-parse HEAD 2>/dev/null || echo "(no git)"
  echo "source sha256 $(git ls-files -co --exclude-standard csrc tests scripts configs CMakeLists.txt 2>/dev/null | sort | xargs sha256sum | sha256sum | cut -c1-16)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
} > "$OUT/environment.txt"
log "environment: $(tr '\n' ' ' < "$OUT/environment.txt")"

# --- 1. build ---------------------------------------------------------------
DEPS=()
[ -d "$ROOT/.deps/include" ] && DEPS=("-DCMAKE_CXX_FLAGS=-isystem $ROOT/.deps/include")
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
t0=$(date +%s)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLIGHTHOUSE_CUDA=ON -DBUILD_TESTING=OFF \
    "${DEPS[@]}" > "$OUT/logs/configure.log" 2>&1 || { tail -30 "$OUT/logs/configure.log"; log "configure failed"; exit 1; }
fi
if ! cmake --build "$BUILD_DIR" --target lighthouse lighthouse_ops -j "$JOBS" > "$OUT/logs/build.log" 2>&1; then
  grep -E "error" "$OUT/logs/build.log" | head -30; log "build failed (logs/build.log)"; exit 1
fi
LH="$BUILD_DIR/lighthouse"
log "built in $(( $(date +%s) - t0 )) s"
export LIGHTHOUSE_LIBRARY=$ROOT/$BUILD_DIR/liblighthouse_ops.so LIGHTHOUSE_BIN=$ROOT/$LH
export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# step NAME CAP CMD...: runs CMD with a time cap, its output in logs/NAME.log.
step() {
  local name=$1 cap=$2; shift 2
  local t=$(date +%s)
  log "$name: $*"
  timeout --kill-after=20 "$cap" "$@" > "$OUT/logs/$name.log" 2>&1
  RC[$name]=$?
  log "$name: exit ${RC[$name]} after $(( $(date +%s) - t )) s"
  tail -n "${TAIL:-25}" "$OUT/logs/$name.log" | tee -a "$OUT/logs/gpu-perf.log"
}

# --- 2. GPU tests -------------------------------------------------------------
TAIL=8 step gpu-tests 300 python3 -m pytest -q -rA -p no:cacheprovider tests/gpu/test_fused_cuda.py tests/gpu/test_fused_train.py

# --- 3. paper-530m: Lighthouse and dense, fused off and on ------------------------
TAIL=60 step bench-train-530m 420 "$LH" bench train --preset paper-530m --attention both --fused both \
  --warmup 1 --steps "$BENCH_STEPS" --json "$OUT/bench-train-paper-530m.json"

# --- 4. paper-1m: a few training steps ------------------------------------------
if [ -f data/packed/manifest.json ]; then
  rm -rf runs/gpu-perf-paper-1m
  TAIL=30 step paper-1m 600 "$LH" train --preset paper-1m --run-dir runs/gpu-perf-paper-1m --steps "$PAPER1M_STEPS" \
    --train.grad_accum 1 --train.fused true --eval.batches 1 --checkpoint.every 0 --log.every 1 --no-baseline
  mkdir -p "$OUT/paper-1m"
  (cd runs/gpu-perf-paper-1m 2>/dev/null && find . \( -name '*.jsonl' -o -name '*.json' -o -name 'config.toml' \) \
     -not -path '*/checkpoints/*' -exec cp --parents {} "$OUT/paper-1m/" \;)
else
  log "paper-1m: skipped (data/packed/manifest.json missing: carry data/packed)"
  RC[paper-1m]=skipped
fi

log "total $(( $(date +%s) - START )) s"
for k in "${!RC[@]}"; do echo "$k ${RC[$k]}"; done | sort | tee "$OUT/exit_codes.txt"
