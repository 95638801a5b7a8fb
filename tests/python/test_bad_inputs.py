"""TESTING.md item 7: every rule of LIGHTHOUSE.md "Inputs, shapes and errors"
raises a RuntimeError whose message names the offending value; nothing
crashes, hangs or returns.

Each case is run through torch.ops.lighthouse.attention and, where the rule
applies to it, select, the stage ops and the Python wrappers.
"""

from __future__ import annotations

import re

import pytest
import torch

import lighthouse

B, N, H, H_KV, D = 1, 1024, 4, 2, 8
CFG = (3, 2, 256)  # L, p, top_k: smallest valid N = 1024


def qkv(n=N, h=H, h_kv=H_KV, d=D, dtype=torch.float32):
    gen = torch.Generator().manual_seed(91)
    return (torch.randn(B, n, h, d, generator=gen).to(dtype), torch.randn(B, n, h_kv, d, generator=gen).to(dtype),
            torch.randn(B, n, h_kv, d, generator=gen).to(dtype))


def expect_error(fn, *needles):
    with pytest.raises(RuntimeError) as info:
        fn()
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"message lacks {needle!r}: {msg}"
    return msg


def both_ops(q, k, v, cfg=CFG, **kw):
    """attention and select on the same arguments (select takes v as a keyword)."""
    scorer_kw = {key: val for key, val in kw.items() if key in ("scorer", "dilation", "backend")}
    return [lambda: torch.ops.lighthouse.attention(q, k, v, *cfg, **kw),
            lambda: torch.ops.lighthouse.select(q, k, *cfg, v=v, **scorer_kw)]


def test_valid_baseline_runs():
    """The inputs every bad case below starts from are valid."""
    q, k, v = qkv()
    assert torch.ops.lighthouse.attention(q, k, v, *CFG).shape == q.shape


@pytest.mark.parametrize("which", ["q", "k", "v"])
@pytest.mark.parametrize("rank", [3, 5])
def test_wrong_rank(which, rank):
    q, k, v = qkv()
    bad = {"q": q, "k": k, "v": v}[which]
    bad = bad.reshape(B, N, -1) if rank == 3 else bad.unsqueeze(0)
    args = {"q": q, "k": k, "v": v, which: bad}
    fns = both_ops(args["q"], args["k"], args["v"])
    if which == "v":
        fns = fns[:1]  # select reads v only for the dilated scorer
    for fn in fns:
        expect_error(fn, f"{which} must be", f"{rank}-d tensor", str(list(bad.shape)))


def test_dtype_mix_and_unsupported_dtype():
    q, k, v = qkv()
    for fn in both_ops(q, k.double(), v):
        expect_error(fn, "share a dtype", "Float", "Double")
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v.half(), *CFG), "share a dtype", "Half")
    qi, ki, vi = (x.to(torch.int32) for x in (q, k, v))
    for fn in both_ops(qi, ki, vi):
        expect_error(fn, "float16, bfloat16, float32 or float64", "Int")


@pytest.mark.parametrize("which", ["k", "v"])
def test_device_mix(which):
    q, k, v = qkv()
    args = {"k": k, "v": v}
    args[which] = args[which].to("meta")
    expect_error(lambda: torch.ops.lighthouse.attention(q, args["k"], args["v"], *CFG), "one device", "cpu", "meta")
    # And the other way round: q on meta, k and v on cpu.
    expect_error(lambda: torch.ops.lighthouse.attention(q.to("meta"), k, v, *CFG), "one device", "cpu", "meta")


def test_mismatched_shapes():
    q, k, v = qkv()
    _, k_short, v_short = qkv(n=N + 8)
    for fn in both_ops(q, k_short, v_short):
        expect_error(fn, "k must be [B, N, H_kv, d]", str(list(k_short.shape)))
    _, k_d, v_d = qkv(d=D + 1)
    expect_error(lambda: torch.ops.lighthouse.attention(q, k_d, v_d, *CFG), str(list(k_d.shape)))
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v[..., :4], *CFG), "v must have the shape of k",
                 str(list(v[..., :4].shape)))
    expect_error(lambda: torch.ops.lighthouse.attention(q[:, :, :0], k, v, *CFG), "H=0")
    expect_error(lambda: torch.ops.lighthouse.attention(q[..., :0], k[..., :0], v[..., :0], *CFG), "d must be > 0")


@pytest.mark.parametrize("h,h_kv", [(3, 2), (4, 3), (2, 4)])
def test_heads_not_divisible(h, h_kv):
    q, k, v = qkv(h=h, h_kv=h_kv)
    for fn in both_ops(q, k, v):
        expect_error(fn, f"H={h}", f"H_kv={h_kv}")


@pytest.mark.parametrize("pool", [3, 6, 12, 1, 0, -2])
def test_pool_not_power_of_two(pool):
    q, k, v = qkv()
    for fn in both_ops(q, k, v, cfg=(3, pool, 256)):
        expect_error(fn, "pool must be a power of two", f"got {pool}")


@pytest.mark.parametrize("top_k", [100, 129, 200, 0, -128])
def test_top_k_not_multiple_of_128(top_k):
    q, k, v = qkv()
    for fn in both_ops(q, k, v, cfg=(3, 2, top_k)):
        expect_error(fn, "top_k must be a positive multiple of 128", f"got {top_k}")


@pytest.mark.parametrize("levels", [1, 0, -3])
def test_levels_below_two(levels):
    q, k, v = qkv()
    for fn in both_ops(q, k, v, cfg=(levels, 2, 256)):
        expect_error(fn, "levels must be >= 2", f"got {levels}")


def test_oversized_configs():
    q, k, v = qkv()
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, 17, 2, 128), "levels must be <= 16", "got 17")
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, 2**40, 2, 128), "levels must be <= 16")
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, 3, 2**30, 128), "exceeds 2^40")
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, 2, 2, 2**45), "exceeds 2^40")


@pytest.mark.parametrize("bad", [3.0, float("nan"), float("inf"), None])
def test_non_integer_or_non_finite_config(bad):
    """The schema takes ints: floats (finite or not) and None are rejected."""
    q, k, v = qkv()
    for pos in range(3):
        cfg = list(CFG)
        cfg[pos] = bad
        expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, *cfg), "Expected a value of type 'int'")


@pytest.mark.parametrize("cfg", [(3, 2, 256), (2, 8, 512), (4, 4, 128)])
def test_sequence_too_short_names_smallest_n(cfg):
    smallest = cfg[2] * cfg[1] ** (cfg[0] - 1)
    assert lighthouse.min_sequence_length(*cfg) == smallest
    q, k, v = qkv(n=smallest - 1)
    for fn in both_ops(q, k, v, cfg=cfg):
        msg = expect_error(fn, f"N={smallest - 1}", f"smallest valid N is {smallest}")
        assert re.search(rf"\b{smallest}\b", msg)
    q, k, v = qkv(n=1)
    expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, *cfg), f"smallest valid N is {smallest}")


def test_bad_scorer_backend_and_dilation():
    q, k, v = qkv()
    for fn in both_ops(q, k, v, scorer="Norm"):
        expect_error(fn, "scorer must be 'norm' or 'dilated'", "'Norm'")
    for fn in both_ops(q, k, v, backend="fast"):
        expect_error(fn, "SDPA backend must be one of", "'fast'")
    for backend in ("cudnn", "efficient"):
        expect_error(lambda: torch.ops.lighthouse.attention(q, k, v, *CFG, backend=backend), f"'{backend}'",
                     "needs CUDA")
    for dilation in (3, 0, -4):
        for fn in both_ops(q, k, v, scorer="dilated", dilation=dilation):
            expect_error(fn, "dilation must be a power of two", f"got {dilation}")
    expect_error(lambda: torch.ops.lighthouse.select(q, k, *CFG, scorer="dilated"), "dilated scorer needs v")
    # dilation must divide N_pad: N = 1025 pads to 1032 (unit p^(L-1) * T = 4 * 2), not a multiple of 16.
    qp, kp, vp = qkv(n=N + 1)
    n_pad = -(-(N + 1) // 8) * 8
    expect_error(lambda: torch.ops.lighthouse.attention(qp, kp, vp, *CFG, scorer="dilated", dilation=16),
                 "dilation=16", f"padded sequence length {n_pad}")


def test_bad_entries():
    q, k, v = qkv()
    entries = torch.ops.lighthouse.select(q, k, *CFG)
    S, P = entries.shape[-1], sum(N // 2**l for l in range(3))

    def run(e):
        return lambda: torch.ops.lighthouse.attention(q, k, v, *CFG, entries=e)

    expect_error(run(entries.int()), "entries must be int64", "Int")
    expect_error(run(entries[..., :-1]), "entries must be [B, H, S]", f"{S}]", str(list(entries[..., :-1].shape)))
    expect_error(run(entries[0]), "entries must be [B, H, S]")
    expect_error(run(entries.to("meta")), "entries must be on cpu", "meta")
    high = entries.clone()
    high[0, 1, 5] = P
    expect_error(run(high), f"pyramid indices in [0, {P})", f"{P}]")
    low = entries.clone()
    low[0, 0, 0] = -1
    expect_error(run(low), "[-1,")
    dup = entries.clone()
    dup[0, 2, 7] = dup[0, 2, 8]
    expect_error(run(dup), "must not repeat")
    # _plan (which makes the stage ops' plan from given entries) checks them the same way.
    for bad, needle in ((high, "pyramid indices"), (dup, "must not repeat"), (entries.int(), "must be int64")):
        expect_error(lambda: torch.ops.lighthouse._plan(q, k, v, *CFG, "norm", 4, "auto", bad), needle)


def plan_of(q, k, v):
    entries = torch.ops.lighthouse.select(q, k, *CFG)
    e, inv, *_ = torch.ops.lighthouse._plan(q, k, v, *CFG, "norm", 4, "auto", entries)
    return e, inv


def test_bad_scatter_arguments():
    q, k, v = qkv()
    e, inv = plan_of(q, k, v)
    S = e.shape[-1]
    expect_error(lambda: torch.ops.lighthouse._scatter(torch.randn(B, H, S - 1, D), e, inv, N, *CFG),
                 f"S={S}", f"got {S - 1}")
    expect_error(lambda: torch.ops.lighthouse._scatter(torch.randn(H, S, D), e, inv, N, *CFG), "og must be")
    expect_error(lambda: torch.ops.lighthouse._scatter(torch.randn(B, H, S, D), e, inv, N - 1, *CFG),
                 f"seq_len={N - 1}", f"smallest valid N {N}")
    # Plan tensors of the wrong dtype, shape or device.
    og = torch.randn(B, H, S, D)
    expect_error(lambda: torch.ops.lighthouse._scatter(og, e.long(), inv, N, *CFG), "entries must be int32", "Long")
    expect_error(lambda: torch.ops.lighthouse._scatter(og, e, inv[..., :-1], N, *CFG), "inv must be [B, H, P]")
    expect_error(lambda: torch.ops.lighthouse._scatter(og, e.to("meta"), inv, N, *CFG), "entries must be on cpu")


def test_bad_stage_arguments():
    """The other stage ops check shapes, dtypes and devices too (on CPU and in their Meta kernels)."""
    q, k, v = qkv()
    e, inv = plan_of(q, k, v)
    S = e.shape[-1]
    expect_error(lambda: torch.ops.lighthouse._gather(q, k, v, e[:, :1], inv, None, None, None, *CFG),
                 "entries must be [B, H, S]")
    expect_error(lambda: torch.ops.lighthouse._gather(q, k, v, e, inv, q[:, :8], None, None, *CFG),
                 "coarse_q must be the pooled coarse rows")
    expect_error(lambda: torch.ops.lighthouse._gather(q, k.double(), v, e, inv, None, None, None, *CFG),
                 "share a dtype")
    grad = torch.randn(B, H, S, D)
    expect_error(lambda: torch.ops.lighthouse._gather_backward(grad, inv, N, 3, *CFG), "heads=3", f"H={H}")
    expect_error(lambda: torch.ops.lighthouse._gather_backward(grad[:, :, 1:], inv, N, H_KV, *CFG), f"S={S}")
    expect_error(lambda: torch.ops.lighthouse._scatter_backward(torch.randn(B, N, H, D), e[..., 1:], inv, *CFG),
                 "entries must be [B, H, S]")
    # The same checks on meta tensors (what FakeTensor tracing runs).
    expect_error(lambda: torch.ops.lighthouse._gather_backward(grad.to("meta"), inv.to("meta"), N, 3, *CFG),
                 "heads=3")
    og_short = torch.empty(B, H, S - 1, D, device="meta")
    expect_error(lambda: torch.ops.lighthouse._scatter(og_short, e.to("meta"), inv.to("meta"), N, *CFG), f"S={S}")


def test_python_wrappers_raise_the_same():
    q, k, v = qkv()
    expect_error(lambda: lighthouse.attention(q, k, v, 3, 3, 256), "pool must be a power of two >= 2, got 3")
    expect_error(lambda: lighthouse.select(q, k, 3, 2, 100), "top_k must be a positive multiple of 128, got 100")
    module = lighthouse.LighthouseAttention(levels=1, pool=2, top_k=256)
    expect_error(lambda: module(q, k, v), "levels must be >= 2")
