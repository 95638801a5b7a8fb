"""Lighthouse attention for PyTorch.

Importing this package loads the op library and registers the ops
``torch.ops.lighthouse.attention`` and ``torch.ops.lighthouse.select`` (and
the internal stage ops they are made of; see docs/design.md). They work
with autograd, ``torch.compile(fullgraph=True)``, ``torch.export`` and
``torch.library.opcheck``. ``LighthouseAttention`` wraps the op as a module;
``attention`` and ``select`` are thin functions over the ops with keyword
defaults; ``lighthouse.hf`` plugs the op into Hugging Face transformers.

Install: ``pip install --no-build-isolation .`` from the source tree (builds
the op library against the installed torch). ``python -m lighthouse``
prints what was built. See _library.py for where the library is looked up.
"""

from __future__ import annotations

import hashlib
import importlib

import torch

from . import _library
from ._library import library_path

__all__ = [
    "attention",
    "select",
    "subsequence_length",
    "min_sequence_length",
    "LighthouseAttention",
    "library_path",
    "build_info",
    "__version__",
]

_BUILD_INFO = _library.load()
__version__: str = _BUILD_INFO["version"]


def _tag_compile_caches() -> str:
    """Puts the op library's identity into torch.compile's cache keys.

    The PT2 caches (FX graph, AOTAutograd) key a compiled graph by its text,
    which names our ops but says nothing of what they are. After the library
    changes (a new op schema, another backward), a cached backward graph can
    still call the old signature (pytorch/pytorch#144344, #160472). Every PT2
    cache hashes ``torch.compiler.config.cache_key_tag``, so the library's
    sha256 goes there, after any tag the user set: a changed library compiles
    afresh once; an unchanged one keeps its cache hits.
    """
    digest = hashlib.sha256(library_path().read_bytes()).hexdigest()[:16]
    tag = f"lighthouse-{digest}"
    current = torch.compiler.config.cache_key_tag
    if tag not in current.split(";"):
        torch.compiler.config.cache_key_tag = f"{current};{tag}" if current else tag
    return tag


_tag_compile_caches()


def build_info() -> dict:
    """What the loaded op library was built with: version, torch, cuda_kernels (bool), cuda."""
    return dict(_BUILD_INFO)


def __getattr__(name: str):
    # `lighthouse.hf` without importing transformers on `import lighthouse`.
    if name == "hf":
        return importlib.import_module(".hf", __name__)
    raise AttributeError(f"module 'lighthouse' has no attribute {name!r}")


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
