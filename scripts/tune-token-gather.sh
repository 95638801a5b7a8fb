#!/usr/bin/env bash
# Times the token gather's launch choices (csrc/kernels/cuda/gather.cu,
# LIGHTHOUSE_TOKEN_GATHER) on issue 14's two untuned shapes and one tuned one,
# each variant in its own process: `lighthouse bench op --stages --no-dense`.
# The stages it moves are scatter (forward) and gather_bwd (backward).
#
#   LH=build-gpu/lighthouse bash scripts/tune-token-gather.sh [variant ...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LH=${LH:-build-gpu/lighthouse}
variants=("$@")
[[ ${#variants[@]} == 0 ]] && variants=("cells=4" "cells=1" "cells=16")
shapes=("--seq-lens 200000 --top-k 2048"
        "--seq-lens 262144 --top-k 2048 --batch 2 --heads 16 --kv-heads 4 --head-dim 64 --levels 4"
        "--seq-lens 262144 --top-k 4096")
for v in "${variants[@]}"; do
  echo "== LIGHTHOUSE_TOKEN_GATHER=$v"
  for s in "${shapes[@]}"; do
    # shellcheck disable=SC2086
    LIGHTHOUSE_TOKEN_GATHER=$v "$LH" bench op --stages --no-dense $s 2>&1 | grep -E '^ +[0-9]+ ' | sed "s/^/  /"
  done
done
