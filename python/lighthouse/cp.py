"""Lighthouse under context parallelism, for any trainer with torch.distributed.

Importing this module loads ``liblighthouse_dist.so`` (next to the op library)
and registers ``torch.ops.lighthouse.cp_attention``,
``torch.ops.lighthouse.cp_dense_attention`` and ``torch.ops.lighthouse.cp_select``.

Layout (head-tail load balancing, shared/PARALLEL.md): a sequence of N tokens
is cut into 2W equal chunks for a group of W ranks; rank r holds chunks r and
2W-1-r, concatenated in that order along the sequence dimension. ``shard`` and
``unshard`` convert, ``positions`` gives the global positions (for RoPE).
Every rank of the group calls the attention functions with its own chunks, in
the same order: they run collectives on the group.

    import torch.distributed as dist
    from lighthouse import cp
    dist.init_process_group("gloo")            # or "nccl"
    q_local = cp.shard(q, dist.get_rank(), dist.get_world_size())   # [B, N/W, H, d]
    out_local = cp.attention(q_local, k_local, v_local, levels=3, pool=4, top_k=1536)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from . import library_path

__all__ = ["attention", "dense_attention", "select", "shard", "unshard", "positions", "dist_library_path"]


def dist_library_path() -> Path:
    """liblighthouse_dist.so: $LIGHTHOUSE_DIST_LIBRARY, else beside the op library."""
    env = os.environ.get("LIGHTHOUSE_DIST_LIBRARY")
    if env:
        return Path(env)
    return library_path().with_name("liblighthouse_dist.so")


def _load() -> None:
    path = dist_library_path()
    if not path.is_file():
        raise ImportError(
            f"lighthouse.cp: library not found at {path}; run `bash scripts/setup.sh` from the repository root "
            "(or set LIGHTHOUSE_DIST_LIBRARY to the built liblighthouse_dist.so)"
        )
    torch.ops.load_library(str(path))


_load()


def _group_name(group: dist.ProcessGroup | None) -> str:
    return (group if group is not None else dist.group.WORLD).group_name


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    levels: int = 3,
    pool: int = 4,
    top_k: int = 1536,
    *,
    group: dist.ProcessGroup | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Lighthouse attention of the whole sequence on this rank's chunks.

    q [B, N/W, H, d], k and v [B, N/W, H_kv, d] -> [B, N/W, H, d]. ``top_k`` is
    the whole sequence's budget (2W must divide top_k/128; N a multiple of
    pool^(levels-1) * top_k/128). Norm scorer. Differentiable."""
    return torch.ops.lighthouse.cp_attention(q, k, v, levels, pool, top_k, _group_name(group), backend=backend)


def dense_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, group: dist.ProcessGroup | None = None, backend: str = "auto"
) -> torch.Tensor:
    """Causal SDPA of the whole sequence on this rank's chunks: q [B, N/W, H, d],
    k and v [B, N/W, H_kv, d] -> [B, N/W, H, d]. Differentiable."""
    return torch.ops.lighthouse.cp_dense_attention(q, k, v, _group_name(group), backend=backend)


def select(
    q: torch.Tensor,
    k: torch.Tensor,
    levels: int = 3,
    pool: int = 4,
    top_k: int = 1536,
    *,
    group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """This rank's chunks' slices of the one-device selection, int64 [B, H, 2 * S/(2W)]."""
    return torch.ops.lighthouse.cp_select(q, k, levels, pool, top_k, _group_name(group))


def shard(x: torch.Tensor, rank: int, world: int, dim: int = 1) -> torch.Tensor:
    """Chunks ``rank`` and ``2*world-1-rank`` of the whole-sequence tensor x (sequence along ``dim``)."""
    n = x.shape[dim]
    if n % (2 * world) != 0:
        raise ValueError(f"lighthouse.cp.shard: sequence length {n} must split into 2*world={2 * world} equal chunks")
    chunks = x.chunk(2 * world, dim=dim)
    return torch.cat([chunks[rank], chunks[2 * world - 1 - rank]], dim=dim)


def unshard(shards: list[torch.Tensor], dim: int = 1) -> torch.Tensor:
    """The whole sequence from every rank's shard (list index = rank)."""
    world = len(shards)
    halves = [s.chunk(2, dim=dim) for s in shards]
    ordered = [halves[c][0] for c in range(world)] + [halves[world - 1 - i][1] for i in range(world)]
    return torch.cat(ordered, dim=dim)


def positions(seq_len: int, rank: int, world: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Global positions (int64 [seq_len / world]) of this rank's tokens, for RoPE."""
    return shard(torch.arange(seq_len, device=device), rank, world, dim=0)
