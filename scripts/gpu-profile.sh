#!/usr/bin/env bash
# Where the time of one Lighthouse call goes on the GPU (after
# scripts/gpu-check.sh build): a torch.profiler kernel table of the forward
# and forward+backward at N=262144 and 32768 ($OUT/torch-prof.txt), then an
# Nsight Compute profile of our kernels at N=262144 ($OUT/ncu.txt).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/lighthouse-gpu}
BUILD_DIR=${BUILD_DIR:-build-gpu}
mkdir -p "$OUT"
export LIGHTHOUSE_LIBRARY=$PWD/$BUILD_DIR/liblighthouse_ops.so PYTHONPATH=$PWD/python
for n in 262144 32768; do python3 tests/gpu/profile_run.py torch $n; done >"$OUT/torch-prof.txt" 2>&1
grep -E "^==|lighthouse|Kernel|kernel|cudnn|Memset|Memcpy|elementwise|Self CUDA time total" "$OUT/torch-prof.txt" | cut -c1-72,100-200 | head -90
# The second run's kernels only (the first warms up): 7 launches of these a run.
NCU_ARGS=(--kernel-name regex:"${NCU_KERNELS:-scores_kernel|slot_gather|token_gather}" --launch-skip ${NCU_SKIP:-7}
  --launch-count ${NCU_COUNT:-7} --section SpeedOfLight --section Occupancy --section LaunchStats
  --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats
  --section SchedulerStats --section SourceCounters --section InstructionStats)
timeout ${NCU_TIMEOUT:-240} ncu "${NCU_ARGS[@]}" --print-details all python3 tests/gpu/profile_run.py >"$OUT/ncu.txt" 2>&1 ||
  timeout ${NCU_TIMEOUT:-240} ncu "${NCU_ARGS[@]}" python3 tests/gpu/profile_run.py >"$OUT/ncu.txt" 2>&1
echo "ncu rc=$?"
grep -E "^  [a-z_:<>, 0-9A-Z]*\(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Executed Ipc A|Issue Slots Busy|L2 Hit Rate " "$OUT/ncu.txt" | head -120
