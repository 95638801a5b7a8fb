#!/usr/bin/env bash
# Times the token gather's launch choices (csrc/kernels/cuda/gather.cu,
# LIGHTHOUSE_TOKEN_GATHER) on issue 14's two untuned shapes and one tuned one,
# each variant in its own process: `lighthouse bench op --stages --no-dense`.
# The stages it moves are scatter (forward) and gather_bwd (backward). A
# variant is a list of VAR=value settings. For the kernels alone, one launch
# at a time: benchmarks/gather_bench.py.
#
#   LH=build-gpu/lighthouse bash scripts/tune-token-gather.sh [variant ...]
#   e.g. "LIGHTHOUSE_TOKEN_GATHER=cells=16,coop=0" or "...=cells=4,coop=0,heads=1,tasks=16"
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LH=${LH:-build-gpu/lighthouse}
variants=("$@")
# The defaults: what runs without the variable (one head a group: the kernel
# by heads, 8 tasks a lane group; two or four at p = 4, L <= 4: the GQA
# kernel; other groups: cells=4 with cooperative slot loads), then the
# cells-mapped kernel for every group (cooperative loads throughout), then
# fewer tasks.
[[ ${#variants[@]} == 0 ]] && variants=("LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=1,tasks=8"
                                        "LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=0,tasks=8"
                                        "LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=1,tasks=4")
shapes=("--seq-lens 200000 --top-k 2048"
        "--seq-lens 262144 --top-k 2048 --batch 2 --heads 16 --kv-heads 4 --head-dim 64 --levels 4"
        "--seq-lens 262144 --top-k 4096")
for v in "${variants[@]}"; do
  echo "== $v"
  for s in "${shapes[@]}"; do
    # shellcheck disable=SC2086
    env $v "$LH" bench op --stages --no-dense $s 2>&1 | grep -E '^ +[0-9]+ ' | sed "s/^/  /"
  done
done
