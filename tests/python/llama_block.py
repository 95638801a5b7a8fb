"""A Llama decoder block whose attention is torch.ops.lighthouse.attention:
the model the torch.compile and torch.export tests (CPU here, CUDA in
tests/gpu/) and benchmarks/compile_bench.py run.

Pre-norm RMSNorm, q/k/v projections with grouped-query heads, rotary
position embedding (computed inside forward from the sequence length, so a
dynamic length traces as one symbol), Lighthouse attention, output
projection, SwiGLU MLP. x [B, N, dim] -> [B, N, dim]. With dense=True the
attention is stock causal SDPA instead (same weights), for comparisons;
with `entries` set (int64 [B, H, S] from select) the Lighthouse layer uses
that fixed selection (the float64 references of the tolerance rule); with
`attention_impl` set (q, k, v -> out, layouts as for the op) that function
replaces the op (the stock-ops computation of the tolerance rule).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x [B, N, heads, d] with cos, sin [N, 1, d]."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class LlamaBlock(nn.Module):
    def __init__(self, dim: int = 128, heads: int = 4, kv_heads: int = 2, hidden: int = 256,
                 config: tuple[int, int, int] = (2, 2, 128), dense: bool = False, rope_base: float = 10000.0) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.config = config  # Lighthouse (levels, pool, top_k)
        self.dense = dense
        self.entries: torch.Tensor | None = None
        self.attention_impl: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self.rope_base = rope_base
        self.attn_norm, self.mlp_norm = RMSNorm(dim), RMSNorm(dim)
        self.wq = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def rope(self, n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.head_dim
        inv_freq = 1.0 / self.rope_base ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d)
        angles = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)[:, None, :]
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [B, N, H, d], k, v [B, N, H_kv, d] -> [B, N, H, d]."""
        if self.dense:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                 is_causal=True, enable_gqa=True)
            return out.transpose(1, 2)
        if self.attention_impl is not None:
            return self.attention_impl(q, k, v)
        return torch.ops.lighthouse.attention(q, k, v, *self.config, entries=self.entries)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The attention inputs: x [B, N, dim] -> q [B, N, H, d], k, v [B, N, H_kv, d]."""
        b, n, _ = x.shape
        cos, sin = self.rope(n, x.device, x.dtype)
        h = self.attn_norm(x)
        q = rotate(self.wq(h).view(b, n, self.heads, self.head_dim), cos, sin)
        k = rotate(self.wk(h).view(b, n, self.kv_heads, self.head_dim), cos, sin)
        return q, k, self.wv(h).view(b, n, self.kv_heads, self.head_dim)

    def forward(self, x: torch.Tensor, return_selection: bool = False):
        """x [B, N, dim] -> [B, N, dim]; with return_selection also the entries
        (int64 [B, H, S]) that select() picks from this call's own q and k, i.e.
        the selection the Lighthouse layer used (compiled code included)."""
        b, n, _ = x.shape
        q, k, v = self.qkv(x)
        x = x + self.wo(self.attention(q, k, v).reshape(b, n, -1))
        h = self.mlp_norm(x)
        out = x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))
        if return_selection:
            return out, torch.ops.lighthouse.select(q.detach(), k.detach(), *self.config)
        return out
