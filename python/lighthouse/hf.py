"""Lighthouse attention in Hugging Face transformers models.

    import lighthouse.hf
    lighthouse.hf.register(levels=3, pool=4, top_k=1536, dense_layers=[0, 1, -2, -1])
    model = LlamaForCausalLM.from_pretrained(path, attn_implementation="lighthouse")
    ...                                   # Stage 1: train with Lighthouse
    model.set_attn_implementation("sdpa")  # Stage 2: the same weights, dense

`register` adds an attention function named "lighthouse" to transformers'
AttentionInterface (and a mask function to AttentionMaskInterface: none
where attention is plainly causal, else transformers' SDPA mask). Models whose attention modules call the interface
as Llama does (Llama, Qwen2, Qwen3, Mistral: q [B, H, N, d], k, v
[B, H_kv, N, d] after RoPE, `module.layer_idx`, `module.config`) then run
torch.ops.lighthouse.attention in every layer except `dense_layers`
(negative indices count from the last layer), which call transformers' own
"sdpa" function with the same arguments, so a model whose layers are all
dense computes exactly what attn_implementation="sdpa" computes.

Lighthouse replaces causal self-attention over whole sequences in
training. A Lighthouse layer refuses, with a message saying why, what it
cannot compute: a padding or custom mask, a query shorter than the keys
(generation with a KV cache: switch to "sdpa"), attention dropout, a
sliding window or softcap, and a scale other than 1/sqrt(head_dim).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

import lighthouse

NAME = "lighthouse"


@dataclass(frozen=True)
class Settings:
    levels: int
    pool: int
    top_k: int
    dense_layers: tuple[int, ...]
    scorer: str = "norm"
    dilation: int = 4
    backend: str = "auto"

    def is_dense(self, layer_idx: int, num_layers: int) -> bool:
        return any(layer_idx == (i if i >= 0 else num_layers + i) for i in self.dense_layers)


_settings: Settings | None = None
_sdpa_forward = None  # transformers' sdpa_attention_forward, set by register()


def settings() -> Settings | None:
    """The settings of the last register() call (None before the first)."""
    return _settings


def _refuse(module: torch.nn.Module, why: str) -> None:
    raise ValueError(
        f"lighthouse attention (layer {getattr(module, 'layer_idx', '?')}): {why}. Lighthouse replaces causal "
        "self-attention over whole sequences in training; use attn_implementation=\"sdpa\" for this call, or make "
        "this layer dense (register(dense_layers=...))."
    )


def lighthouse_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The attention function registered as "lighthouse": query [B, H, N, d],
    key and value [B, H_kv, N, d] -> ([B, N, H, d], None), as transformers'
    sdpa_attention_forward."""
    s = _settings
    if s is None:
        raise RuntimeError("lighthouse attention: call lighthouse.hf.register(...) first")
    num_layers = module.config.num_hidden_layers
    if s.is_dense(module.layer_idx, num_layers):
        return _sdpa_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if attention_mask is not None:
        _refuse(module, "got an attention mask (padding or a custom mask); it attends causally over every token. "
                        "Train on packed sequences without padding")
    if query.shape[2] != key.shape[2]:
        _refuse(module, f"the query has {query.shape[2]} positions and the keys {key.shape[2]} (a KV cache: "
                        "generation)")
    if dropout:
        _refuse(module, f"attention dropout {dropout} is not supported")
    if kwargs.get("sliding_window") is not None:
        _refuse(module, f"sliding_window={kwargs['sliding_window']} is not supported")
    if kwargs.get("softcap") is not None:
        _refuse(module, "softcap is not supported")
    if getattr(module, "is_causal", True) is False or kwargs.get("is_causal") is False:
        _refuse(module, "the layer is not causal")
    head_dim = query.shape[-1]
    if scaling is not None and scaling != head_dim**-0.5:
        _refuse(module, f"scaling={scaling}, but Lighthouse's SDPA uses 1/sqrt(head_dim) = {head_dim**-0.5}")
    out = torch.ops.lighthouse.attention(
        query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), s.levels, s.pool, s.top_k,
        scorer=s.scorer, dilation=s.dilation, backend=s.backend,
    )
    return out, None


def register(
    levels: int = 3,
    pool: int = 4,
    top_k: int = 1536,
    dense_layers: Sequence[int] = (0, 1, -2, -1),
    *,
    scorer: str = "norm",
    dilation: int = 4,
    backend: str = "auto",
) -> Settings:
    """Registers attn_implementation="lighthouse" with these settings (a later
    call replaces them). The config is checked here: an invalid one raises."""
    global _settings, _sdpa_forward
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, causal_mask_function, sdpa_mask

    # Check the config now: the op's own checks, on shape-only tensors of the
    # smallest valid length (clipped: a config past the limit fails anyway).
    n = 1
    if 2 <= levels <= 16 and 2 <= pool <= 2**40 and top_k > 0:
        n = min(lighthouse.min_sequence_length(levels, pool, top_k), 2**41)
    meta = torch.empty(1, n, 1, 8, device="meta")
    torch.ops.lighthouse.select(meta, meta, levels, pool, top_k, scorer=scorer, dilation=dilation, v=meta,
                                backend=backend)
    _sdpa_forward = sdpa_attention_forward
    _settings = Settings(levels, pool, top_k, tuple(int(i) for i in dense_layers), scorer, dilation, backend)
    AttentionInterface.register(NAME, lighthouse_attention_forward)
    AttentionMaskInterface.register(NAME, _make_mask_function(sdpa_mask, causal_mask_function))
    return _settings


def _make_mask_function(sdpa_mask, causal_mask_function):
    """The mask function of "lighthouse": None (SDPA's is_causal in dense
    layers, nothing to refuse in Lighthouse layers) when the mask is plainly
    causal: no padding mask given, the plain causal mask function, and
    transformers allowing the skip. sdpa_mask decides that too, but not while
    tracing (torch.compile), where it builds the full causal mask. Anything
    else is sdpa_mask's: dense layers apply it, Lighthouse layers refuse it."""

    def lighthouse_mask(*args, **kwargs):
        if (not args and kwargs.get("attention_mask") is None and kwargs.get("allow_is_causal_skip", True)
                and kwargs.get("mask_function", causal_mask_function) is causal_mask_function
                and kwargs.get("local_size") is None):
            return None
        return sdpa_mask(*args, **kwargs)

    return lighthouse_mask
