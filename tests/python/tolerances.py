"""The one tolerance table of the op tests, and the helper that applies it.

Rule (shared/STYLE.md, "Tests"): the op's error against a float64 reference
may be at most FACTOR times the error of the same computation done with stock
torch ops in the op's dtype, plus the reference's own rounding noise. Here the
reference is the oracle in float64 (its own written-out SDPA). The stock
computation is the same oracle run in the op's dtype (plain mean / gather /
index_add), on the same inputs and with the same selection, whose step 5 is
torch's stock SDPA kernel for the backend the op was asked for (stock_sdpa):
the spec has the op call that kernel unmodified, so its error is the stock
error. (It matters: with torch 2.11 the float32 dq of the CPU flash kernel was
measured up to ~2.5x less accurate than a plain matmul/softmax on the same
sub-sequence, which put a correct op over 3x of the plain path.)

The noise term is what no dtype-`dt` result can beat: the float64 reference
rounded to `dt` (half an ulp of each element), plus the reference's own
float64 rounding noise, 2 * |(ref + 0.3) - 0.3 - ref| as in flash-attention's
tests. For float64 inputs the stock error is the oracle against itself (zero),
so the rule becomes a relative bound, FLOAT64_RTOL, against max |ref|: the op
and the oracle differ only in summation order there.
"""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

# Multiple of the stock error allowed, per kind of result.
FACTOR = {"out": 2.0, "grad": 3.0}
# float64 inputs: max |op - ref| <= FLOAT64_RTOL * max |ref|.
FLOAT64_RTOL = 1e-10


# The stock SDPA kernel behind each backend name the op accepts on CPU.
STOCK_SDPA_BACKEND = {"auto": SDPBackend.FLASH_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                      "math": SDPBackend.MATH}


def stock_sdpa(backend: str = "auto"):
    """Causal SDPA [B, H, S, d] x3 -> [B, H, S, d] through torch's stock kernel for `backend`."""

    def run(q, k, v):
        with sdpa_kernel([STOCK_SDPA_BACKEND[backend]]):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    return run


def rounding_noise(ref: torch.Tensor, dtype: torch.dtype) -> float:
    """Error of representing the float64 reference in `dtype`, plus its own noise."""
    ref = ref.detach().double()
    own = 2 * ((ref + 0.3) - 0.3 - ref).abs().max().item()
    return (ref.to(dtype).double() - ref).abs().max().item() + own


def max_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max |x - ref|, NaN if x has any NaN (so every comparison with it fails)."""
    diff = (x.detach().double() - ref.detach().double()).abs()
    if diff.isnan().any():
        return float("nan")
    return diff.max().item()


def assert_within_rule(name: str, actual: torch.Tensor, reference: torch.Tensor, stock: torch.Tensor | None,
                       kind: str) -> dict:
    """Asserts the tolerance rule for one result; returns the numbers it used.

    actual:    the op's result, in the op's dtype
    reference: the oracle in float64
    stock:     the oracle in actual.dtype (ignored, may be None, for float64)
    kind:      "out" or "grad"
    """
    assert actual.shape == reference.shape, f"{name}: shape {tuple(actual.shape)} vs {tuple(reference.shape)}"
    assert reference.dtype == torch.float64, f"{name}: the reference must be float64"
    assert bool(reference.detach().abs().max() > 0), f"{name}: reference is all zeros, the check would be vacuous"
    err = max_err(actual, reference)
    if actual.dtype == torch.float64:
        scale = reference.detach().abs().max().item()
        bound = FLOAT64_RTOL * scale
        info = {"err": err, "bound": bound, "scale": scale}
        assert err <= bound, f"{name} (float64): max err {err:.3e} > {FLOAT64_RTOL:g} * max|ref| = {bound:.3e}"
        return info
    assert stock is not None and stock.dtype == actual.dtype, f"{name}: stock result must be in {actual.dtype}"
    stock_err = max_err(stock, reference)
    noise = rounding_noise(reference, actual.dtype)
    bound = FACTOR[kind] * stock_err + noise
    info = {"err": err, "stock_err": stock_err, "noise": noise, "bound": bound}
    assert err <= bound, (
        f"{name} ({actual.dtype}): max err {err:.3e} > {FACTOR[kind]:g} * stock err {stock_err:.3e} "
        f"+ noise {noise:.3e} = {bound:.3e}"
    )
    return info
