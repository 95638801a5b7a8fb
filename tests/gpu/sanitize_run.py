"""A small run of every CUDA stage (forward and backward, each dtype), for
compute-sanitizer: `compute-sanitizer --tool memcheck|racecheck python3 tests/gpu/sanitize_run.py [backend]`.
The inner SDPA backend defaults to auto (cuDNN for bf16/fp16); racecheck runs
it with 'math' so that only our kernels and stock elementwise ones are checked
(racecheck reports hazards inside cuDNN's own SDPA kernels). Exits non-zero on
a wrong result."""

import sys

import torch

import lighthouse  # noqa: F401  (registers the ops)


def main() -> int:
    for dtype, (B, N, H, Hkv, d, L, p, k) in [
        (torch.bfloat16, (1, 2048 + 9, 2, 1, 64, 3, 2, 256)),
        (torch.float16, (2, 1024, 2, 2, 128, 2, 4, 128)),
        (torch.float32, (1, 4096, 2, 1, 32, 4, 2, 256)),
        # The smallest and largest row layouts: 4 and 32 lanes a row.
        (torch.bfloat16, (1, 4096 + 5, 2, 2, 32, 3, 4, 256)),
        (torch.float16, (1, 1024 + 3, 2, 1, 256, 2, 4, 128)),
        # Four heads a group with p = 4 and L = 4: token_gather_gqa_kernel<4>.
        (torch.bfloat16, (1, 8192 + 5, 4, 1, 64, 4, 4, 128)),
    ]:
        q = torch.randn(B, N, H, d, device="cuda", dtype=dtype, requires_grad=True)
        kk = torch.randn(B, N, Hkv, d, device="cuda", dtype=dtype, requires_grad=True)
        v = torch.randn(B, N, Hkv, d, device="cuda", dtype=dtype, requires_grad=True)
        backend = sys.argv[1] if len(sys.argv) > 1 else ("efficient" if dtype == torch.float32 else "auto")
        out = torch.ops.lighthouse.attention(q, kk, v, L, p, k, backend=backend)
        out.backward(torch.randn_like(out))
        e_gpu = torch.ops.lighthouse.select(q.detach(), kk.detach(), L, p, k).cpu()
        e_cpu = torch.ops.lighthouse.select(q.detach().cpu(), kk.detach().cpu(), L, p, k)
        torch.cuda.synchronize()
        ok = torch.equal(e_gpu, e_cpu) and all(torch.isfinite(x).all() for x in (out, q.grad, kk.grad, v.grad))
        print(dtype, "ok" if ok else "WRONG")
        if not ok:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
