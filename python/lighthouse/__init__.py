"""Lighthouse attention for PyTorch.

Importing this package loads the op library (built by scripts/setup.sh) and
registers ``torch.ops.lighthouse.attention`` and ``torch.ops.lighthouse.select``.
``LighthouseAttention`` wraps the op as a module; ``attention`` and ``select``
are thin functions over the ops with keyword defaults.

The library is looked up in ``$LIGHTHOUSE_LIBRARY`` if set, else in the
repository's ``build/`` directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["attention", "select", "subsequence_length", "min_sequence_length", "LighthouseAttention", "library_path"]


def library_path() -> Path:
    env = os.environ.get("LIGHTHOUSE_LIBRARY")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "build" / "liblighthouse_ops.so"


def _load() -> None:
    path = library_path()
    if not path.is_file():
        raise ImportError(
            f"lighthouse: op library not found at {path}; run `bash scripts/setup.sh` from the repository root "
            "(or set LIGHTHOUSE_LIBRARY to the built liblighthouse_ops.so)"
        )
    torch.ops.load_library(str(path))


_load()


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    levels: int = 3,
    pool: int = 4,
    top_k: int = 1536,
    *,
    scorer: str = "norm",
    dilation: int = 4,
    backend: str = "auto",
    entries: torch.Tensor | None = None,
) -> torch.Tensor:
    """Lighthouse attention. q [B, N, H, d], k and v [B, N, H_kv, d] -> [B, N, H, d]."""
    return torch.ops.lighthouse.attention(
        q, k, v, levels, pool, top_k, scorer=scorer, dilation=dilation, backend=backend, entries=entries
    )


def select(
    q: torch.Tensor,
    k: torch.Tensor,
    levels: int = 3,
    pool: int = 4,
    top_k: int = 1536,
    *,
    scorer: str = "norm",
    dilation: int = 4,
    v: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Emitted entries in causal order as int64 pyramid indices [B, H, S]."""
    return torch.ops.lighthouse.select(
        q, k, levels, pool, top_k, scorer=scorer, dilation=dilation, v=v, backend=backend
    )


def min_sequence_length(levels: int, pool: int, top_k: int) -> int:
    """The smallest valid N: top_k * pool ** (levels - 1)."""
    return top_k * pool ** (levels - 1)


def subsequence_length(seq_len: int, levels: int, pool: int, top_k: int) -> int:
    """S = N_pad / p^(L-1) + (L-1) * p * top_k, N_pad = seq_len rounded up to p^(L-1) * top_k / 128."""
    unit = pool ** (levels - 1) * (top_k // 128)
    n_pad = -(-seq_len // unit) * unit
    return n_pad // pool ** (levels - 1) + (levels - 1) * pool * top_k


class LighthouseAttention(torch.nn.Module):
    """Drop-in for causal SDPA in a model whose q, k, v are [B, N, H, d]."""

    def __init__(
        self,
        levels: int = 3,
        pool: int = 4,
        top_k: int = 1536,
        scorer: str = "norm",
        dilation: int = 4,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.levels, self.pool, self.top_k = levels, pool, top_k
        self.scorer, self.dilation, self.backend = scorer, dilation, backend

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention(
            q, k, v, self.levels, self.pool, self.top_k, scorer=self.scorer, dilation=self.dilation, backend=self.backend
        )

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, pool={self.pool}, top_k={self.top_k}, scorer={self.scorer}, "
            f"backend={self.backend}"
        )
