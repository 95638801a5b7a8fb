#!/usr/bin/env bash
# Nsight Compute profile of our kernels in one Lighthouse forward+backward at
# N=262144 (after scripts/gpu-check.sh build). Writes $OUT/ncu.txt.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/lighthouse-gpu}
BUILD_DIR=${BUILD_DIR:-build-gpu}
mkdir -p "$OUT"
export LIGHTHOUSE_LIBRARY=$PWD/$BUILD_DIR/liblighthouse_ops.so PYTHONPATH=$PWD/python
# Second run's kernels only (the first warms up): skip one instance of each.
timeout 300 ncu --kernel-name regex:"scores_kernel|select_kernel|slot_gather|token_gather" --launch-skip 10 --launch-count 10 \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
  --section WarpStateStats python3 tests/gpu/profile_run.py >"$OUT/ncu.txt" 2>&1
echo "ncu rc=$?"
grep -E "^  [a-z_:<>, 0-9A-Z]*\(|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Theoretical Occ|Stall" "$OUT/ncu.txt" | head -80
