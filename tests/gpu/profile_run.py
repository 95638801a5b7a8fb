"""One Lighthouse forward+backward at N=262144 (H=8, d=128, bf16, L=3, p=4,
top_k=4096), twice: for Nsight Compute (scripts/gpu-profile.sh), which
profiles the second run's kernels."""

import torch

import lighthouse  # noqa: F401

N, H, d = 262144, 8, 128
q, k, v = (torch.randn(1, N, H, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
g = torch.randn(1, N, H, d, device="cuda", dtype=torch.bfloat16)
for _ in range(2):
    torch.ops.lighthouse.attention(q, k, v, 3, 4, 4096).backward(g)
torch.cuda.synchronize()
