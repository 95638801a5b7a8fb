#!/usr/bin/env bash
# The trainer on one GPU (H100 80GB or H200), end to end, in about 9 minutes:
#
#   1. build `lighthouse` against this machine's torch (CUDA on, no tests);
#   2. gpu-small: the two-stage recipe and its dense baseline (32K context),
#      each capped at GPU_SMALL_SECONDS of wall time;
#   3. paper-530m at context 98,304 for PAPER_STEPS steps with Lighthouse
#      and with dense attention: tokens/s and peak memory;
#   4. a summary table, printed last.
#
#   OUT=/path/to/results bash scripts/gpu-train.sh
#   GPU_SMALL_SECONDS=200 PAPER_STEPS=6 OUT=... bash scripts/gpu-train.sh   # longer runs
#
# Time budget (defaults): build ~2-3 min; gpu-small 2 x 75 s of training plus
# set-up, evaluation and checkpoints; paper-530m 2 x (up to 60 s, 3 steps)
# plus a 3 GB checkpoint each. The gpu-small two-stage run switches after
# the preset's stage2.start_fraction (0.8) of GPU_SMALL_STEPS steps (160 of
# 200; GPU_SMALL_SWITCH=N sets the step) only if it gets there within GPU_SMALL_SECONDS
# (the summary marks time-limited runs with *).
#
# Expects a bare machine without network: the repository (a copy of the
# working tree), the packed corpus in data/packed (git-ignored, carried),
# header-only dependencies (CLI11, toml++, nlohmann-json) in .deps/include
# unless installed, nvcc (CUDA 13) and torch 2.11 with CUDA in python3.
# Writes logs, metrics (metrics.jsonl, val.jsonl), configs and
# comparison.json of every run under $OUT (checkpoints stay in runs/gpu-train/,
# they are large). Each run's exit status is recorded; one failing run does
# not stop the others.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/runs/gpu-train-out}
BUILD_DIR=${BUILD_DIR:-build-gpu}
RUNS=${RUNS:-$ROOT/runs/gpu-train}
GPU_SMALL_STEPS=${GPU_SMALL_STEPS:-200}
GPU_SMALL_SWITCH=${GPU_SMALL_SWITCH:--1}  # -1: the preset fraction
GPU_SMALL_SECONDS=${GPU_SMALL_SECONDS:-75}
PAPER_STEPS=${PAPER_STEPS:-3}
PAPER_SECONDS=${PAPER_SECONDS:-60}
mkdir -p "$OUT/logs" "$RUNS"
log() { printf '[gpu-train %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/logs/gpu-train.log"; }
START=$(date +%s)

# --- environment ---------------------------------------------------------
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  git rev-parse HEAD 2>/dev/null || echo "(no git)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
} > "$OUT/environment.txt"
log "environment: $(tr '\n' ' ' < "$OUT/environment.txt")"
if [ ! -f data/packed/manifest.json ]; then
  log "error: data/packed/manifest.json missing: pack the corpus elsewhere (lighthouse data --out data/packed) and carry data/packed"
  exit 1
fi

# --- build ---------------------------------------------------------------
# scripts/gpu-check.sh build: the same flags as every GPU script, so they
# share $BUILD_DIR without rebuilding it for each other.
log "build $BUILD_DIR (scripts/gpu-check.sh build)"
if ! OUT="$OUT/logs/build" BUILD_DIR="$BUILD_DIR" bash scripts/gpu-check.sh build > "$OUT/logs/build-summary.log" 2>&1; then
  tail -30 "$OUT/logs/build-summary.log"; log "error: build failed (logs/build/build.log)"; exit 1
fi
LH="$BUILD_DIR/lighthouse"
log "built in $(( $(date +%s) - START )) s"

# --- runs ----------------------------------------------------------------
declare -A RC
# run NAME CAP ARGS...: one `lighthouse train` (killed after CAP seconds if
# train.max_seconds did not stop it), its log and results into $OUT/NAME.
run() {
  local name=$1 cap=$2; shift 2
  local t0=$(date +%s)
  rm -rf "$RUNS/$name"
  log "$name: lighthouse train $*"
  timeout --kill-after=20 "$cap" "$LH" train --run-dir "$RUNS/$name" "$@" > "$OUT/logs/$name.log" 2>&1
  RC[$name]=$?
  mkdir -p "$OUT/$name"
  (cd "$RUNS/$name" 2>/dev/null && find . \( -name '*.jsonl' -o -name '*.json' -o -name 'config.toml' \) \
     -not -path '*/checkpoints/*' -exec cp --parents {} "$OUT/$name/" \;)
  log "$name: exit ${RC[$name]} after $(( $(date +%s) - t0 )) s; last lines:"
  tail -12 "$OUT/logs/$name.log" | tee -a "$OUT/logs/gpu-train.log"
}

# gpu-small: two-stage + dense baseline (one command), each run time-capped.
run gpu-small $((2 * GPU_SMALL_SECONDS + 150)) --preset gpu-small --steps "$GPU_SMALL_STEPS" --stage2.start_step "$GPU_SMALL_SWITCH" \
  --train.max_seconds "$GPU_SMALL_SECONDS" --eval.every 50 --log.every 20

# paper-530m at 98,304 tokens: a few optimizer steps of one sequence each.
PAPER=(--preset paper-530m --steps "$PAPER_STEPS" --stage2.start_step 0 --train.grad_accum 1 --no-baseline
       --train.max_seconds "$PAPER_SECONDS" --eval.batches 1 --checkpoint.every 0 --log.every 1)
run paper-530m-lighthouse $((PAPER_SECONDS + 120)) "${PAPER[@]}" --attention lighthouse
run paper-530m-dense $((PAPER_SECONDS + 120)) "${PAPER[@]}" --attention dense

# --- summary (last) --------------------------------------------------------
log "total $(( $(date +%s) - START )) s"
for k in "${!RC[@]}"; do echo "$k ${RC[$k]}"; done > "$OUT/exit_codes.txt"
python3 - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
codes = dict(l.split() for l in open(os.path.join(out, "exit_codes.txt")))
env = open(os.path.join(out, "environment.txt")).read().splitlines()
print(f"\nLighthouse trainer on {env[2] if len(env) > 2 else '?'} ({env[0] if env else ''}, commit {env[1][:12] if len(env) > 1 else '?'})")
head = f"{'run':<24} {'attention':<20} {'steps':>6} {'tok/s st.1':>11} {'tok/s st.2':>11} {'peak GiB':>9} {'val loss':>9} {'wall':>7} {'exit':>5}"
print(head)
print("-" * len(head))
def row(name, r, code):
    gib = r["peak_memory_bytes"] / 2**30
    s2 = f"{r['stage2_tokens_per_s']:.0f}" if r["stage2_tokens_per_s"] > 0 else "-"
    lim = "*" if r.get("time_limited") else ""
    print(f"{name:<24} {r['attention']:<20} {str(r['steps']) + lim:>6} {r['stage1_tokens_per_s']:>11.0f} {s2:>11} "
          f"{gib:>9.2f} {r['final_val_loss']:>9.4f} {r['wall_seconds']:>6.0f}s {code:>5}")
for name in ["gpu-small", "paper-530m-lighthouse", "paper-530m-dense"]:
    path = os.path.join(out, name, "comparison.json")
    code = codes.get(name, "?")
    if not os.path.exists(path):
        print(f"{name:<24} {'(no result: see logs/' + name + '.log)':<50} {code:>5}")
        continue
    c = json.load(open(path))
    row(name + ("/" + c["main"]["label"] if "baseline" in c else ""), c["main"], code)
    if "baseline" in c:
        row(name + "/dense", c["baseline"], code)
    sw = c.get("switch")
    if sw:
        rec = f"recovered after {sw['steps_to_recover']} steps" if sw["steps_to_recover"] > 0 else "not recovered"
        print(f"{'':<24} switch after step {sw['after_step']}: val loss {sw['val_loss_lighthouse']:.4f} -> "
              f"{sw['val_loss_dense']:.4f} dense ({sw['val_jump']:+.4f}); train jump vs baseline "
              f"{sw['train_jump']:+.4f}, {rec}")
print("* = stopped by train.max_seconds. tok/s: mean over the stage's steps after the first.")
EOF
