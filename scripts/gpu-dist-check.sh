#!/usr/bin/env bash
# Issue 12 on ONE GPU (no second GPU needed), about 1-2 minutes after the build:
#
#   1. build `lighthouse` with CUDA (build-gpu, shared with gpu-train.sh) and
#      check that the NCCL process-group code compiled in (configure prints
#      "lighthouse: NCCL process groups");
#   2. gpu-small, 30 Lighthouse steps at 32K context, as one plain process;
#   3. the same under torchrun with one process: the world is an NCCL group
#      of one rank (gradient buckets all-reduced over NCCL, counts over Gloo),
#      GPU chosen from LOCAL_RANK;
#   4. prints each run's median tokens/s (steps 2-30) and final losses.
#
#   OUT=/path/to/results bash scripts/gpu-dist-check.sh
#
# Success: both runs exit 0, the torchrun run's tokens/s is within a few
# percent of the plain run's, and the plain run's is what main gives on this
# GPU (H200 calibration, coordination.md: gpu-small Lighthouse ~318k
# tokens/s). The final losses agree to about 1e-3 (bf16, non-deterministic
# kernels; the one-rank all-reduce itself changes nothing).
# Expects what gpu-train.sh expects (data/packed carried, .deps/include).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/runs/gpu-dist-check/out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
RUNS=${RUNS:-$ROOT/runs/gpu-dist-check}
STEPS=${STEPS:-30}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT/logs" "$RUNS"
log() { printf '[gpu-dist-check %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/logs/gpu-dist-check.log"; }
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
[ -f data/packed/manifest.json ] || { log "error: data/packed/manifest.json missing (carry data/packed)"; exit 1; }

DEPS=()
if [ -d "$ROOT/.deps/include" ]; then
  DEPS=(-DLIGHTHOUSE_EXTRA_INCLUDE="$ROOT/.deps/include" -DCMAKE_PREFIX_PATH="$ROOT/.deps"
        "-DCMAKE_CXX_FLAGS=-isystem $ROOT/.deps/include")
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
log "configure $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLIGHTHOUSE_CUDA=ON -DBUILD_TESTING=OFF \
  "${DEPS[@]}" > "$OUT/logs/configure.log" 2>&1 || { tail -30 "$OUT/logs/configure.log"; log "error: configure failed"; exit 1; }
grep -q "lighthouse: NCCL process groups" "$OUT/logs/configure.log" \
  || { grep -i "nccl\|gloo" "$OUT/logs/configure.log"; log "FAIL: NCCL process groups not configured"; exit 1; }
log "build (-j $JOBS)"
cmake --build "$BUILD_DIR" --target lighthouse -j "$JOBS" > "$OUT/logs/build.log" 2>&1 \
  || { grep -E "error" "$OUT/logs/build.log" | head -30; log "FAIL: build"; exit 1; }
LH="$BUILD_DIR/lighthouse"

ARGS=(train --preset gpu-small --no-baseline --train.steps "$STEPS" --stage2.start_step 0 --eval.every 0
      --eval.batches 2 --checkpoint.every 0)
status=0
log "plain process"
"$LH" "${ARGS[@]}" --run-dir "$RUNS/plain" > "$OUT/logs/plain.log" 2>&1 || { log "FAIL: plain run"; status=1; }
log "torchrun, one process (NCCL world of one rank)"
python3 -m torch.distributed.run --standalone --nproc-per-node 1 --no-python "$LH" "${ARGS[@]}" \
  --run-dir "$RUNS/torchrun1" > "$OUT/logs/torchrun1.log" 2>&1 || { log "FAIL: torchrun run"; status=1; }

python3 - "$RUNS" <<'EOF' | tee -a "$OUT/logs/gpu-dist-check.log"
import json, statistics, sys
for name in ("plain", "torchrun1"):
    try:
        m = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/lighthouse/metrics.jsonl")]
        v = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/lighthouse/val.jsonl")]
    except OSError as e:
        print(f"{name}: no metrics ({e})")
        continue
    tps = statistics.median(r["tokens_per_s"] for r in m[1:])
    print(f"{name:10s} steps {len(m)}  median tokens/s {tps:,.0f}  last loss {m[-1]['loss']:.4f}  "
          f"final val {v[-1]['val_loss']:.4f}")
EOF
cp "$RUNS"/*/lighthouse/*.jsonl "$OUT/" 2>/dev/null || true
log "done (status $status); logs in $OUT/logs"
exit $status
