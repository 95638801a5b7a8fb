"""TESTING.md item 6: degenerate and edge configs.

- the smallest valid N, and N that needs padding (padding must behave exactly
  like appending zero tokens: same outputs and gradients on the real part);
- batch > 1: each row is the op on that row alone, bit for bit;
- non-contiguous inputs (slices of a fused QKV projection, [B, H, N, d]
  storage seen as [B, N, H, d], a strided last dim) give bit-identical outputs
  and gradients to contiguous copies;
- bf16 and fp16 inputs within the tolerance rule against the float64 oracle;
- odd head dims and an empty batch.
"""

from __future__ import annotations

import pytest
import torch

from common import Case, attention, check_against_oracle, forward_backward, inputs, min_n, randn_like, select

LOW = [torch.bfloat16, torch.float16]


@pytest.mark.parametrize("L,p,top_k", [(2, 2, 128), (4, 2, 128), (2, 8, 256), (3, 4, 384)])
def test_smallest_valid_n(L, p, top_k):
    case = Case(L, p, top_k, min_n(L, p, top_k), B=1, H=2, H_kv=1, d=16)
    assert case.geometry.N_pad == case.N and case.geometry.C == 128
    q, k, v = inputs(case, seed=71, requires_grad=True)
    out, grads = forward_backward(q, k, v, case, randn_like(q, seed=72))
    assert out.shape == q.shape and out.isfinite().all() and out.abs().max() > 0
    assert all(g.isfinite().all() for g in grads)
    with pytest.raises(RuntimeError, match=f"smallest valid N is {case.N}"):
        attention(q[:, :-1], k[:, :-1], v[:, :-1], case)


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 2, 128, 256 + 1, B=2, H=2, H_kv=1, d=16),
        Case(3, 4, 256, 4096 + 29, B=1, H=4, H_kv=2, d=32),
        Case(4, 2, 384, 3072 + 23, B=1, H=2, H_kv=2, d=8),
    ],
    ids=str,
)
def test_padding_equals_appended_zero_tokens(case):
    """The op on N tokens == the op on the same tokens followed by N_pad - N
    zero tokens, on the first N positions, bit for bit (outputs, entries, and
    gradients when the padded outputs get zero gradient)."""
    g = case.geometry
    assert g.N_pad > case.N
    q, k, v = inputs(case, seed=73, requires_grad=True)
    go = randn_like(q, seed=74)
    out, grads = forward_backward(q, k, v, case, go)

    pad = lambda x: torch.cat([x.detach(), x.new_zeros(x.shape[0], g.N_pad - case.N, *x.shape[2:])], 1)  # noqa: E731
    qp, kp, vp = (pad(x).requires_grad_() for x in (q, k, v))
    case_p = Case(case.L, case.p, case.top_k, g.N_pad, case.B, case.H, case.H_kv, case.d, case.dtype)
    out_p, grads_p = forward_backward(qp, kp, vp, case_p, pad(go))
    assert torch.equal(out, out_p[:, : case.N])
    assert torch.equal(select(q.detach(), k.detach(), case), select(qp.detach(), kp.detach(), case_p))
    for a, b in zip(grads, grads_p):
        assert torch.equal(a, b[:, : case.N])


@pytest.mark.parametrize("backend", ["auto", "math"])
def test_batch_rows_are_independent(backend):
    case = Case(3, 2, 256, 1024 + 6, B=3, H=4, H_kv=2, d=32)
    q, k, v = inputs(case, seed=75, requires_grad=True)
    go = randn_like(q, seed=76)
    out, grads = forward_backward(q, k, v, case, go, backend=backend)
    entries = select(q.detach(), k.detach(), case)
    one = Case(case.L, case.p, case.top_k, case.N, 1, case.H, case.H_kv, case.d, case.dtype)
    for b in range(case.B):
        leaves = [x.detach()[b : b + 1].clone().requires_grad_() for x in (q, k, v)]
        out_b, grads_b = forward_backward(*leaves, one, go[b : b + 1], backend=backend)
        assert torch.equal(out_b, out[b : b + 1]), f"row {b}"
        assert torch.equal(select(leaves[0].detach(), leaves[1].detach(), one), entries[b : b + 1])
        for g_all, g_b in zip(grads, grads_b):
            assert torch.equal(g_b, g_all[b : b + 1]), f"row {b} gradient"
    assert not torch.equal(out[0], out[1])


def contiguous_reference(q, k, v, case, go, **kw):
    leaves = [x.detach().contiguous().requires_grad_() for x in (q, k, v)]
    assert all(x.is_contiguous() for x in leaves)
    return forward_backward(*leaves, case, go, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("scorer", ["norm", "dilated"])
def test_fused_qkv_slices(dtype, scorer):
    """q, k, v as views into one [B, N, 3, H, d] projection output."""
    case = Case(3, 4, 256, 4096 + 13, B=2, H=2, H_kv=2, d=32, dtype=dtype)
    if scorer == "dilated":
        case = Case(3, 2, 256, 1024 + 8, B=2, H=2, H_kv=2, d=16, dtype=dtype)
    gen = torch.Generator().manual_seed(77)
    fused = torch.randn(case.B, case.N, 3, case.H, case.d, generator=gen).to(dtype).requires_grad_()
    q, k, v = fused.unbind(2)
    assert not q.is_contiguous()
    go = randn_like(q, seed=78)
    out = attention(q, k, v, case, scorer=scorer)
    (d_fused,) = torch.autograd.grad(out, fused, go)
    ref_out, ref_grads = contiguous_reference(q, k, v, case, go, scorer=scorer)
    assert torch.equal(out, ref_out)
    assert torch.equal(select(q, k, case, v=v, scorer=scorer), select(*(x.contiguous() for x in (q, k)), case,
                                                                      v=v.contiguous(), scorer=scorer))
    for i in range(3):
        assert torch.equal(d_fused[:, :, i], ref_grads[i])


@pytest.mark.parametrize("layout", ["heads_major", "strided_last_dim", "expanded_kv"])
def test_non_contiguous_layouts(layout):
    case = Case(2, 4, 256, 1024 + 3, B=2, H=4, H_kv=2, d=16)
    gen = torch.Generator().manual_seed(79)
    if layout == "heads_major":  # storage [B, H, N, d], seen as [B, N, H, d]
        mk = lambda h: torch.randn(case.B, h, case.N, case.d, generator=gen).transpose(1, 2)  # noqa: E731
    elif layout == "strided_last_dim":  # every other element of the last dim
        mk = lambda h: torch.randn(case.B, case.N, h, 2 * case.d, generator=gen)[..., ::2]  # noqa: E731
    else:  # k and v broadcast over the batch (stride 0)
        mk = lambda h: torch.randn(1, case.N, h, case.d, generator=gen).expand(case.B, -1, -1, -1)  # noqa: E731
    q = torch.randn(case.B, case.N, case.H, case.d, generator=gen) if layout == "expanded_kv" else mk(case.H)
    k, v = mk(case.H_kv), mk(case.H_kv)
    assert not k.is_contiguous()
    leaves = [x.requires_grad_() for x in (q, k, v)]
    go = randn_like(q, seed=80)
    out, grads = forward_backward(*leaves, case, go)
    ref_out, ref_grads = contiguous_reference(q, k, v, case, go)
    assert torch.equal(out, ref_out)
    for a, b in zip(grads, ref_grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", LOW, ids=["bf16", "fp16"])
@pytest.mark.parametrize(
    "case",
    [Case(3, 4, 128, 2048 + 7, B=2, H=4, H_kv=1, d=64), Case(2, 2, 256, 512, B=1, H=2, H_kv=2, d=128)],
    ids=lambda c: str(c).rsplit("-", 1)[0],
)
def test_low_precision_within_tolerance_rule(case, dtype):
    case = Case(case.L, case.p, case.top_k, case.N, case.B, case.H, case.H_kv, case.d, dtype)
    check_against_oracle(case, seed=81)


def test_low_precision_math_backend():
    check_against_oracle(Case(3, 2, 128, 512 + 3, B=1, H=2, H_kv=1, d=32, dtype=torch.bfloat16), seed=82,
                         backend="math")


@pytest.mark.parametrize("d", [1, 5, 96])
def test_odd_head_dims(d):
    check_against_oracle(Case(2, 2, 128, 256 + 1, B=1, H=2, H_kv=1, d=d, dtype=torch.float64), seed=83)


def test_empty_batch():
    case = Case(2, 2, 128, 256, B=0, H=2, H_kv=1, d=8)
    q, k, v = inputs(case, seed=84)
    assert attention(q, k, v, case).shape == (0, 256, 2, 8)
    assert select(q, k, case).shape == (0, 2, case.geometry.S)
