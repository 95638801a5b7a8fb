#!/usr/bin/env bash
# One GPU sitting that checks and times slot_gather_pair_kernel (the gather
# forward, two rows in flight a lane group) against slot_gather_kernel
# (LIGHTHOUSE_SLOT_GATHER=row). Needs .deps carried. About 6 minutes.
#   OUT=DIR bash scripts/slot-gather-measure.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/local/cuda/bin:$PATH
OUT=${OUT:-/tmp/lighthouse-gpu}
mkdir -p "$OUT/gc"
OUT=$OUT/gc bash scripts/gpu-check.sh build | tail -1
export LIGHTHOUSE_LIBRARY=$PWD/build-gpu/liblighthouse_ops.so PYTHONPATH=$PWD/python
echo "== tests/gpu/test_cuda_op.py (pair, then the stage tests with row)"
python3 -m pytest -q tests/gpu/test_cuda_op.py -p no:cacheprovider 2>&1 | tail -1
LIGHTHOUSE_SLOT_GATHER=row python3 -m pytest -q tests/gpu/test_cuda_op.py -k stages_bit_identical -p no:cacheprovider 2>&1 | tail -1
for s in gqa n200k n98k; do
  for v in pair row pair row; do
    printf "%-6s %-5s" "$s" "$v"
    LIGHTHOUSE_SLOT_GATHER=$v python3 benchmarks/gather_bench.py --shape $s 2>&1 | grep "gather q, k, v"
  done
done
for v in pair row; do
  echo "== grid $v"
  LIGHTHOUSE_SLOT_GATHER=$v build-gpu/lighthouse bench op --stages --no-dense --json "$OUT/grid-$v.json" > "$OUT/grid-$v.txt" 2>&1
  grep -E "^ +[0-9]+ +[0-9]+ +[0-9]+ \|" "$OUT/grid-$v.txt"
done
cat > "$OUT/san.py" <<'PY'
import torch, lighthouse
for dt, (B, N, H, Hkv, d, L, p, k) in [(torch.bfloat16, (1, 16384 + 141, 8, 2, 64, 4, 4, 256)),
                                       (torch.float32, (1, 4096 + 11, 8, 2, 64, 3, 4, 256)),
                                       (torch.float16, (2, 4096 + 35, 4, 4, 128, 3, 4, 256))]:
    q = torch.randn(B, N, H, d, device="cuda", dtype=dt, requires_grad=True)
    kk = torch.randn(B, N, Hkv, d, device="cuda", dtype=dt, requires_grad=True)
    v = torch.randn(B, N, Hkv, d, device="cuda", dtype=dt, requires_grad=True)
    out = torch.ops.lighthouse.attention(q, kk, v, L, p, k, backend="math")
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
    print(dt, bool(torch.isfinite(out).all() and torch.isfinite(q.grad).all()))
PY
echo "== memcheck"
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 python3 "$OUT/san.py" 2>&1 | tail -4
