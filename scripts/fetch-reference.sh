#!/usr/bin/env bash
# Fetches the paper's reference implementation (ighoshsubho/lighthouse-attention,
# Triton + NVRTC kernels) and the one pure-Python package it needs beyond torch
# and triton (einops) into .deps/reference (git-ignored), for
# benchmarks/reference_bench.py. Nothing of it is part of this project; the
# GPU machine has no network, so carry `.deps` there.
#   bash scripts/fetch-reference.sh [commit]
# REF_REPO=/path/to/a/clone uses a local clone instead of GitHub.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COMMIT=${1:-cfea089}
DEST=.deps/reference
rm -rf "$DEST" && mkdir -p "$DEST/src" "$DEST/python"
tmp=$(mktemp -d)
git clone -q "${REF_REPO:-https://github.com/ighoshsubho/lighthouse-attention}" "$tmp/repo"
git -C "$tmp/repo" checkout -q "$COMMIT"
cp "$tmp/repo/src/lighthouse_selection.py" "$tmp/repo/src/lighthouse_selection_cuda.py" "$DEST/src/"
git -C "$tmp/repo" rev-parse HEAD >"$DEST/COMMIT"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp/whl" einops
python3 -m zipfile -e "$tmp"/whl/einops-*.whl "$DEST/python"
rm -rf "$tmp"
echo "reference at $(cat "$DEST/COMMIT") in $DEST"
