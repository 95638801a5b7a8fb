"""One Lighthouse forward+backward at N (default 262144; H=8, d=128, bf16,
L=3, p=4, top_k=4096), for scripts/gpu-profile.sh.

  python3 tests/gpu/profile_run.py           # twice, for Nsight Compute
  python3 tests/gpu/profile_run.py torch [N]  # torch.profiler kernel table of
                                              # one forward and one fwd+bwd
"""

import sys

import torch

import lighthouse  # noqa: F401

mode = sys.argv[1] if len(sys.argv) > 1 else "ncu"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 262144
H, d = 8, 128
top_k = 2048 if N <= 32768 else 4096
q, k, v = (torch.randn(1, N, H, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
g = torch.randn(1, N, H, d, device="cuda", dtype=torch.bfloat16)


def step(backward=True):
    out = torch.ops.lighthouse.attention(q, k, v, 3, 4, top_k)
    if backward:
        out.backward(g)


if mode == "ncu":
    for _ in range(2):
        step()
    torch.cuda.synchronize()
else:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    for backward in (False, True):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step(backward)
            torch.cuda.synchronize()
        print(f"== N={N} {'fwd+bwd' if backward else 'fwd'} (5 calls; times are totals over 5)")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
