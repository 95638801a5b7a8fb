#!/usr/bin/env bash
# WIP (branch wip/heads-block): token_gather_heads_kernel with 128- and
# 64-thread blocks (LIGHTHOUSE_TOKEN_GATHER=...,block=128|64; 72 registers, no
# spills / 64 registers, 44 bytes spilled) against 256 (the default): stage
# tests with each, timings on three shapes, the grid with 256 and 128 twice
# each (interleaved), ncu occupancy on N = 200,000. Needs .deps. ~7 minutes.
#   OUT=DIR bash scripts/wip-heads-block-measure.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/local/cuda/bin:$PATH
OUT=${OUT:-/tmp/lighthouse-gpu}
mkdir -p "$OUT/gc"
OUT=$OUT/gc bash scripts/gpu-check.sh build | tail -1
export LIGHTHOUSE_LIBRARY=$PWD/build-gpu/liblighthouse_ops.so PYTHONPATH=$PWD/python
b256="LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=1,tasks=8,block=256"
b128="LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=1,tasks=8,block=128"
b128t16="LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=1,tasks=16,block=128"
b64="LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=1,tasks=8,block=64"
for v in "$b128" "$b64"; do
  echo "== stage tests with ${v#*=}"
  env "$v" python3 -m pytest -q -p no:cacheprovider tests/gpu/test_cuda_op.py -k test_stages_bit_identical_to_cpu_twin 2>&1 | tail -1
done
for s in n200k gqa n98k; do
  for v in "$b256" "$b128" "$b64" "$b128t16" "$b256" "$b128"; do
    echo "== $s ${v#*=}"
    env "$v" python3 benchmarks/gather_bench.py --shape $s 2>&1 | grep -E "gather bwd dq|gather bwd dk|scatter  "
  done
done
for v in "$b256" "$b128" "$b256" "$b128"; do
  tag=block${v#*block=}; n=1; while [ -e "$OUT/grid-$tag-$n.json" ]; do n=$((n+1)); done
  echo "== grid $v ($tag-$n)"
  env "$v" build-gpu/lighthouse bench op --stages --no-dense --json "$OUT/grid-$tag-$n.json" > "/tmp/grid-$tag-$n.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ +[0-9]+ \|" "/tmp/grid-$tag-$n.txt"
done
echo "== ncu (N = 200,000, dq gather backward)"
for v in "$b256" "$b128"; do
  env "$v" timeout 100 ncu --kernel-name regex:token_gather_heads --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats \
    python3 benchmarks/gather_bench.py --shape n200k --once 2>&1 | \
    grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Size" | head -8
done
