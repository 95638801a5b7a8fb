#!/usr/bin/env bash
# One GPU sitting that checks and times token_gather_gqa_kernel (GQA dk/dv,
# p = 4) against token_gather_kernel (LIGHTHOUSE_TOKEN_GATHER=...,heads=0).
# Needs .deps carried. About 5 minutes.
#   OUT=DIR bash scripts/gqa-gather-measure.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/local/cuda/bin:$PATH
OUT=${OUT:-/tmp/lighthouse-gpu}
mkdir -p "$OUT/gc"
OUT=$OUT/gc bash scripts/gpu-check.sh build | tail -1
export LIGHTHOUSE_LIBRARY=$PWD/build-gpu/liblighthouse_ops.so PYTHONPATH=$PWD/python
echo "== tests/gpu/test_cuda_op.py (default, then stage tests with heads=0)"
python3 -m pytest -q tests/gpu/test_cuda_op.py -p no:cacheprovider 2>&1 | tail -1
LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=0,tasks=8 python3 -m pytest -q tests/gpu/test_cuda_op.py -k stages_bit_identical \
  -p no:cacheprovider 2>&1 | tail -1
old="LIGHTHOUSE_TOKEN_GATHER=cells=4,coop=1,heads=0,tasks=8"
for v in "X=1" "$old" "X=2" "$old" "LIGHTHOUSE_TOKEN_GATHER=cells=2,coop=1,heads=1,tasks=8" "LIGHTHOUSE_TOKEN_GATHER=cells=8,coop=1,heads=1,tasks=8"; do
  echo "== gqa $v"
  env $v python3 benchmarks/gather_bench.py --shape gqa 2>&1 | grep -E "gather bwd|fill"
done
echo "== grid"
build-gpu/lighthouse bench op --stages --no-dense --json "$OUT/grid-gqa.json" > "$OUT/grid-gqa.txt" 2>&1
grep -E "^ +[0-9]+ +[0-9]+ +[0-9]+ \|" "$OUT/grid-gqa.txt"
cat > "$OUT/san.py" <<'PY'
import torch, lighthouse
for dt, (B, N, H, Hkv, d, L, p, k) in [(torch.bfloat16, (1, 16384 + 141, 8, 2, 64, 4, 4, 256)),
                                       (torch.float32, (1, 4096 + 11, 8, 2, 64, 3, 4, 256)),
                                       (torch.float16, (1, 4096 + 35, 4, 2, 64, 3, 4, 256))]:
    q = torch.randn(B, N, H, d, device="cuda", dtype=dt, requires_grad=True)
    kk = torch.randn(B, N, Hkv, d, device="cuda", dtype=dt, requires_grad=True)
    v = torch.randn(B, N, Hkv, d, device="cuda", dtype=dt, requires_grad=True)
    out = torch.ops.lighthouse.attention(q, kk, v, L, p, k, backend="math")
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
    print(dt, bool(torch.isfinite(kk.grad).all() and torch.isfinite(v.grad).all()))
PY
echo "== memcheck"
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 python3 "$OUT/san.py" 2>&1 | tail -4
