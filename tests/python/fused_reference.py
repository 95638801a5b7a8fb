"""The unfused ("stock") computations the fused ops replace, written as
csrc/model/llama.cpp computes them with stock torch ops. Run in the compute
dtype they are the stock path of the tolerance rule (tolerances.py); run on
float64 inputs they are its reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps, dtype):
    """Hugging Face LlamaRMSNorm on x (fp32 residual stream), output in dtype."""
    xf = x.to(torch.float32) if x.dtype != torch.float64 else x
    var = xf.pow(2).mean(-1, keepdim=True)
    return (w * (xf * torch.rsqrt(var + eps)).to(x.dtype)).to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_angles(positions, inv_freq):
    """fp32 angles [..., N, d] (frequencies repeated twice), as Hugging Face."""
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq
    return torch.cat((angles, angles), dim=-1)


def rope(x, positions, inv_freq):
    """x [B, N, H, d]: the rotation in fp32 (float64 for float64 x) with the
    tables of the fp32 angles, back to x's dtype."""
    angles = rope_angles(positions, inv_freq)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos, sin = angles.to(work).cos(), angles.to(work).sin()
    if cos.dim() == 2:
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [N, 1, d]
    else:
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # [B, N, 1, d]
    xf = x.to(work)
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def swiglu(gate, up):
    return F.silu(gate) * up


def linear_cross_entropy(h, w, targets, ignore_index):
    """(sum of the token losses, count) with fp32 logits (float64 for float64
    h), the weight cast to h's dtype as the model's linear does."""
    logits = F.linear(h, w.to(h.dtype))
    logits = logits.to(torch.float64 if h.dtype == torch.float64 else torch.float32)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
                           ignore_index=ignore_index)
    return loss, (targets != ignore_index).sum()
