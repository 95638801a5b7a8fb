#!/usr/bin/env bash
# Times the token gather's launch choices (csrc/kernels/cuda/gather.cu,
# LIGHTHOUSE_TOKEN_GATHER) on issue 14's two untuned shapes and one tuned one,
# each variant in its own process: `lighthouse bench op --stages --no-dense`.
# The stages it moves are scatter (forward) and gather_bwd (backward). A
# variant is a list of VAR=value settings. For the kernels alone, one launch
# at a time: benchmarks/gather_bench.py.
#
#   LH=build-gpu/lighthouse bash scripts/tune-token-gather.sh [variant ...]
#   e.g. "LIGHTHOUSE_TOKEN_GATHER=cells=16,coop=0"
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LH=${LH:-build-gpu/lighthouse}
variants=("$@")
[[ ${#variants[@]} == 0 ]] && variants=("LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1"
                                        "LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=0"
                                        "LIGHTHOUSE_TOKEN_GATHER=cells=16,coop=1")
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
