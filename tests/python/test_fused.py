"""The fused training ops on CPU (their CPU twins): torch.ops.lighthouse_fused._fused_*.

- Against the unfused path (fused_reference.py, the stock ops the model
  uses today) under the tolerance rule: error vs a float64 reference within
  2x (outputs) / 3x (gradients) of the stock path's error in the same dtype,
  plus the reference's rounding noise; bf16 and fp32, odd shapes,
  non-contiguous inputs, positions that do not start at 0, ignored targets,
  chunked cross-entropy.
- float64 gradcheck of each op's backward kernels.
- Determinism: bit-identical across repeats and thread counts.
- Bad inputs raise errors that name the value.
"""

from __future__ import annotations

import pytest
import torch

import fused_reference as ref
from tolerances import assert_within_rule

ops = torch.ops.lighthouse_fused
F64 = torch.float64
EPS = 1e-5


def randn(*shape, seed, dtype=torch.float32, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=F64) * scale).to(dtype)


def grads_of(outputs, inputs, grad_outputs):
    return torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=False)


def leaves(*xs, dtype=None):
    return [x.detach().to(dtype or x.dtype).requires_grad_() for x in xs]


# --- RMSNorm -------------------------------------------------------------------

NORM_CASES = [((2, 33, 256), torch.bfloat16), ((3, 17, 100), torch.bfloat16), ((1, 40, 128), torch.float32)]


@pytest.mark.parametrize("shape,dt", NORM_CASES, ids=str)
def test_rms_norm_within_rule_of_unfused(shape, dt):
    D = shape[-1]
    x = randn(*shape, seed=1, scale=3.0)
    w = 1 + randn(D, seed=2, scale=0.2)
    gy = randn(*shape, seed=3, dtype=dt)
    fx, fw = leaves(x, w)
    y = ops._fused_rms_norm(fx, fw, EPS, dt)
    assert y.dtype == dt and y.shape == x.shape
    dx, dw = grads_of(y, (fx, fw), gy)
    sx, sw = leaves(x, w)
    y_s = ref.rms_norm(sx, sw, EPS, dt)
    dx_s, dw_s = grads_of(y_s, (sx, sw), gy)
    rx, rw = leaves(x, w, dtype=F64)
    y_r = ref.rms_norm(rx, rw, EPS, F64)
    dx_r, dw_r = grads_of(y_r, (rx, rw), gy.to(F64))
    assert_within_rule("y", y, y_r, y_s, "out")
    assert_within_rule("dx", dx, dx_r, dx_s, "grad")
    assert_within_rule("dw", dw, dw_r, dw_s, "grad")


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float32], ids=str)
def test_add_rms_norm_within_rule_and_exact_sum(dt):
    shape, D = (2, 29, 192), 192
    x = randn(*shape, seed=4, scale=2.0)
    r = randn(*shape, seed=5, dtype=dt)
    w = 1 + randn(D, seed=6, scale=0.2)
    gy, gs = randn(*shape, seed=7, dtype=dt), randn(*shape, seed=8)
    fx, fr, fw = leaves(x, r, w)
    s, y = ops._fused_add_rms_norm(fx, fr, fw, EPS, dt)
    grads = grads_of((s, y), (fx, fr, fw), (gs, gy))
    sx, sr, sw = leaves(x, r, w)
    s_s = sx + sr
    y_s = ref.rms_norm(s_s, sw, EPS, dt)
    grads_s = grads_of((s_s, y_s), (sx, sr, sw), (gs, gy))
    rx, rr, rw = leaves(x, r, w, dtype=F64)
    s_r = rx + rr
    y_r = ref.rms_norm(s_r, rw, EPS, F64)
    grads_r = grads_of((s_r, y_r), (rx, rr, rw), (gs.to(F64), gy.to(F64)))
    # The residual add is the same single fp32 addition.
    assert s.dtype == torch.float32 and torch.equal(s, s_s)
    assert_within_rule("y", y, y_r, y_s, "out")
    for name, a, b, c in zip(("dx", "dresidual", "dw"), grads, grads_r, grads_s):
        assert a.dtype == c.dtype
        assert_within_rule(name, a, b, c, "grad")


def test_add_rms_norm_with_only_one_output_used():
    x, r, w = randn(2, 8, 64, seed=9), randn(2, 8, 64, seed=10), 1 + randn(64, seed=11, scale=0.1)
    fx, fr, fw = leaves(x, r, w)
    s, y = ops._fused_add_rms_norm(fx, fr, fw, EPS, torch.float32)
    dx, dr = torch.autograd.grad(s.sum(), (fx, fr))  # y unused: the gradient passes through the add
    assert torch.equal(dx, torch.ones_like(x)) and torch.equal(dr, torch.ones_like(r))
    s, y = ops._fused_add_rms_norm(fx, fr, fw, EPS, torch.float32)
    dx2, dw2 = torch.autograd.grad((y * 2).sum(), (fx, fw))  # s unused
    assert dx2.abs().sum() > 0 and dw2.abs().sum() > 0


# --- RoPE -----------------------------------------------------------------------

ROPE_CASES = [
    # B, N, H, H_kv, d, dtype, positions: "offset" (start 1000) or "batch" ([B, N], shuffled)
    (2, 37, 4, 2, 64, torch.bfloat16, "offset"),
    (1, 50, 2, 2, 128, torch.bfloat16, "batch"),
    (2, 21, 3, 1, 32, torch.float32, "offset"),
]


def rope_positions(B, N, kind, seed):
    if kind == "offset":
        return torch.arange(1000, 1000 + N)
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(100000, generator=g)[:N] for _ in range(B)])


@pytest.mark.parametrize("B,N,H,Hkv,d,dt,kind", ROPE_CASES, ids=str)
def test_rope_within_rule_of_unfused(B, N, H, Hkv, d, dt, kind):
    q, k = randn(B, N, H, d, seed=12, dtype=dt), randn(B, N, Hkv, d, seed=13, dtype=dt)
    gq, gk = randn(B, N, H, d, seed=14, dtype=dt), randn(B, N, Hkv, d, seed=15, dtype=dt)
    pos = rope_positions(B, N, kind, seed=16)
    inv_freq = ops._fused_rope_inv_freq(d, 10000.0)
    fq, fk = leaves(q, k)
    oq, ok = ops._fused_rope(fq, fk, pos, inv_freq)
    dq, dk = grads_of((oq, ok), (fq, fk), (gq, gk))
    sq, sk = leaves(q, k)
    oq_s, ok_s = ref.rope(sq, pos, inv_freq), ref.rope(sk, pos, inv_freq)
    dq_s, dk_s = grads_of((oq_s, ok_s), (sq, sk), (gq, gk))
    rq, rk = leaves(q, k, dtype=F64)
    oq_r, ok_r = ref.rope(rq, pos, inv_freq), ref.rope(rk, pos, inv_freq)
    dq_r, dk_r = grads_of((oq_r, ok_r), (rq, rk), (gq.to(F64), gk.to(F64)))
    for name, a, b, c, kind_ in (("q", oq, oq_r, oq_s, "out"), ("k", ok, ok_r, ok_s, "out"),
                                 ("dq", dq, dq_r, dq_s, "grad"), ("dk", dk, dk_r, dk_s, "grad")):
        assert a.dtype == dt
        assert_within_rule(name, a, b, c, kind_)


def test_rope_inv_freq_is_hugging_face_formula():
    d, theta = 128, 10000.0
    want = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(torch.float32) / d))
    assert torch.equal(ops._fused_rope_inv_freq(d, theta), want)


def test_rope_chunk_equals_slice_of_full_sequence():
    """A rank's chunk (positions start..start+n) rotates exactly like that
    slice of the whole sequence."""
    q, k = randn(1, 64, 2, 32, seed=17, dtype=torch.bfloat16), randn(1, 64, 1, 32, seed=18, dtype=torch.bfloat16)
    inv_freq = ops._fused_rope_inv_freq(32, 10000.0)
    full_q, full_k = ops._fused_rope(q, k, torch.arange(64), inv_freq)
    part_q, part_k = ops._fused_rope(q[:, 40:], k[:, 40:], torch.arange(40, 64), inv_freq)
    assert torch.equal(part_q, full_q[:, 40:]) and torch.equal(part_k, full_k[:, 40:])


def test_rope_non_contiguous_inputs():
    base = randn(2, 9, 6, 32, seed=19)
    q, k = base[:, :, :4], base[:, :, 4:]  # views into one projection output
    inv_freq = ops._fused_rope_inv_freq(32, 500000.0)
    pos = torch.arange(3, 12)
    a = ops._fused_rope(q, k, pos, inv_freq)
    b = ops._fused_rope(q.contiguous(), k.contiguous(), pos, inv_freq)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- SwiGLU ---------------------------------------------------------------------

@pytest.mark.parametrize("shape,dt", [((2, 19, 96), torch.bfloat16), ((37, 60), torch.float32)], ids=str)
def test_swiglu_within_rule_of_unfused(shape, dt):
    g, u = randn(*shape, seed=20, dtype=dt, scale=3.0), randn(*shape, seed=21, dtype=dt)
    gy = randn(*shape, seed=22, dtype=dt)
    fg, fu = leaves(g, u)
    y = ops._fused_swiglu(fg, fu)
    grads = grads_of(y, (fg, fu), gy)
    sg, su = leaves(g, u)
    y_s = ref.swiglu(sg, su)
    grads_s = grads_of(y_s, (sg, su), gy)
    rg, ru = leaves(g, u, dtype=F64)
    y_r = ref.swiglu(rg, ru)
    grads_r = grads_of(y_r, (rg, ru), gy.to(F64))
    assert_within_rule("y", y, y_r, y_s, "out")
    for name, a, b, c in zip(("dgate", "dup"), grads, grads_r, grads_s):
        assert_within_rule(name, a, b, c, "grad")


def test_swiglu_strided_halves_of_one_projection():
    gu = randn(3, 11, 2 * 48, seed=23, dtype=torch.bfloat16)
    g, u = gu[..., :48], gu[..., 48:]
    assert torch.equal(ops._fused_swiglu(g, u), ops._fused_swiglu(g.contiguous(), u.contiguous()))


# --- Cross-entropy ----------------------------------------------------------------

PAD = 258


def loss_inputs(R, D, V, dt, seed):
    h = randn(R, D, seed=seed, dtype=dt)
    w = randn(V, D, seed=seed + 1, scale=0.5)
    g = torch.Generator().manual_seed(seed + 2)
    t = torch.randint(0, 259, (R,), generator=g)
    t[::7] = PAD  # ignored rows
    return h, w, t


@pytest.mark.parametrize("R,D,V,dt,chunk", [(300, 64, 320, torch.bfloat16, 0), (300, 64, 320, torch.bfloat16, 37),
                                             (129, 48, 264, torch.float32, 50)], ids=str)
def test_linear_cross_entropy_within_rule_of_unfused(R, D, V, dt, chunk):
    h, w, t = loss_inputs(R, D, V, dt, seed=24)
    fh, fw = leaves(h, w)
    loss, count = ops._fused_linear_cross_entropy(fh, fw, t, PAD, chunk)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert count.dtype == torch.int64 and count.item() == int((t != PAD).sum())
    dh, dw = grads_of(loss, (fh, fw), torch.tensor(0.37))
    sh, sw = leaves(h, w)
    loss_s, _ = ref.linear_cross_entropy(sh, sw, t, PAD)
    dh_s, dw_s = grads_of(loss_s, (sh, sw), torch.tensor(0.37))
    rh, rw = leaves(h, w.to(dt), dtype=F64)  # the model casts the weight to dt: the reference starts there
    loss_r, _ = ref.linear_cross_entropy(rh, rw, t, PAD)
    dh_r, dw_r = grads_of(loss_r, (rh, rw), torch.tensor(0.37, dtype=F64))
    assert_within_rule("loss", loss, loss_r, loss_s, "out")
    assert dh.dtype == dt and dw.dtype == torch.float32
    assert_within_rule("dh", dh, dh_r, dh_s, "grad")
    assert_within_rule("dw", dw, dw_r, dw_s, "grad")
    assert dh[::7].abs().max() == 0, "ignored rows get no gradient"


def test_linear_cross_entropy_chunking_does_not_change_the_loss():
    h, w, t = loss_inputs(200, 32, 64, torch.float32, seed=25)
    t = t % 64
    whole = ops._fused_linear_cross_entropy(h, w, t, PAD, 0)[0]
    for chunk in (1, 7, 64, 199):
        assert torch.equal(ops._fused_linear_cross_entropy(h, w, t, PAD, chunk)[0], whole)


def test_linear_cross_entropy_all_ignored():
    h, w, _ = loss_inputs(10, 16, 32, torch.float32, seed=26)
    fh = h.clone().requires_grad_()
    loss, count = ops._fused_linear_cross_entropy(fh, w, torch.full((10,), PAD), PAD, 0)
    assert loss.item() == 0 and count.item() == 0
    (dh,) = torch.autograd.grad(loss, (fh,))
    assert torch.equal(dh, torch.zeros_like(h))


# --- block pieces with selective recompute ------------------------------------------

def block_inputs(dt, seed=60, B=2, N=24, D=64, H=4, Hkv=2, d=16, F=96):
    x = randn(B, N, D, seed=seed, scale=2.0)
    nw = 1 + randn(D, seed=seed + 1, scale=0.2)
    wq, wk, wv = (randn(h * d, D, seed=seed + 2 + i, scale=0.2) for i, h in enumerate((H, Hkv, Hkv)))
    a = randn(B, N, D, seed=seed + 5, dtype=dt)
    wg, wu = randn(F, D, seed=seed + 6, scale=0.2), randn(F, D, seed=seed + 7, scale=0.2)
    wd = randn(D, F, seed=seed + 8, scale=0.2)
    return dict(x=x, nw=nw, wq=wq, wk=wk, wv=wv, a=a, wg=wg, wu=wu, wd=wd, d=d)


def stock_norm_qkv(x, nw, wq, wk, wv, d, dt, out_dt):
    h = ref.rms_norm(x, nw, EPS, out_dt)
    B, N = x.shape[:2]
    return tuple(torch.nn.functional.linear(h, w.to(out_dt)).view(B, N, -1, d) for w in (wq, wk, wv))


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float32], ids=str)
def test_norm_qkv_within_rule_and_recompute_bit_identical(dt):
    t = block_inputs(dt)
    names = ("x", "nw", "wq", "wk", "wv")
    go = [randn(*s, seed=70 + i, dtype=dt) for i, s in enumerate([(2, 24, 4, 16), (2, 24, 2, 16), (2, 24, 2, 16)])]

    def fused(recompute):
        ins = leaves(*(t[n] for n in names))
        out = ops._fused_norm_qkv(ins[0], ins[1], EPS, ins[2], ins[3], ins[4], t["d"], dt, recompute)
        return list(out) + list(grads_of(out, ins, go))

    keep, again = fused(False), fused(True)
    for a, b in zip(keep, again):
        assert torch.equal(a, b), "recompute changed a result"
    ins = leaves(*(t[n] for n in names))
    out_s = stock_norm_qkv(*ins, t["d"], dt, dt)
    stock = list(out_s) + list(grads_of(out_s, ins, go))
    ins_r = leaves(*(t[n] for n in names), dtype=F64)
    out_r = stock_norm_qkv(*ins_r, t["d"], dt, F64)
    refs = list(out_r) + list(grads_of(out_r, ins_r, [g.to(F64) for g in go]))
    for i, name in enumerate(("q", "k", "v") + tuple("d" + n for n in names)):
        assert_within_rule(name, keep[i], refs[i], stock[i], "out" if i < 3 else "grad")


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float32], ids=str)
def test_add_norm_gate_up_and_swiglu_down_within_rule_and_recompute_bit_identical(dt):
    t = block_inputs(dt, seed=80)
    names = ("x", "a", "nw", "wg", "wu", "wd")
    gy = randn(2, 24, 64, seed=90, dtype=dt)
    gs = randn(2, 24, 64, seed=91)

    def fused(recompute):
        x, a, nw, wg, wu, wd = leaves(*(t[n] for n in names))
        s, g, u = ops._fused_add_norm_gate_up(x, a, nw, EPS, wg, wu, dt, recompute)
        m = ops._fused_swiglu_down(g, u, wd, recompute)
        return [s, g, u, m] + list(grads_of((s, m), (x, a, nw, wg, wu, wd), (gs, gy)))

    def stock(work_dt, out_dt):
        x, a, nw, wg, wu, wd = leaves(*(t[n] for n in names), dtype=work_dt)
        s = x + a
        h = ref.rms_norm(s, nw, EPS, out_dt)
        g = torch.nn.functional.linear(h, wg.to(out_dt))
        u = torch.nn.functional.linear(h, wu.to(out_dt))
        m = torch.nn.functional.linear(ref.swiglu(g, u), wd.to(out_dt))
        return [s, g, u, m] + list(grads_of((s, m), (x, a, nw, wg, wu, wd), (gs.to(s.dtype), gy.to(out_dt))))

    keep, again = fused(False), fused(True)
    for a, b in zip(keep, again):
        assert torch.equal(a, b), "recompute changed a result"
    st = stock(None, dt)
    rf = stock(F64, F64)
    assert torch.equal(keep[0], st[0]), "the residual sum is one fp32 addition"
    for i, name in enumerate(("s", "gate", "up", "m", "dx", "da", "dnw", "dwg", "dwu", "dwd")):
        assert_within_rule(name, keep[i], rf[i], st[i], "out" if i < 4 else "grad")


# --- gradcheck (float64 through the twins) ------------------------------------------

@pytest.fixture
def one_thread():
    torch.set_num_threads(1)


def test_gradcheck_all_ops(one_thread):
    x, r = randn(2, 3, 12, seed=30, dtype=F64), randn(2, 3, 12, seed=31, dtype=F64)
    w = 1 + randn(12, seed=32, dtype=F64, scale=0.3)
    for t in (x, r, w):
        t.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ops._fused_rms_norm(a, b, EPS, F64), (x, w))
    assert torch.autograd.gradcheck(lambda a, b, c: ops._fused_add_rms_norm(a, b, c, EPS, F64), (x, r, w))
    q, k = randn(2, 5, 3, 8, seed=33, dtype=F64).requires_grad_(), randn(2, 5, 1, 8, seed=34, dtype=F64).requires_grad_()
    inv_freq = ops._fused_rope_inv_freq(8, 10000.0)
    assert torch.autograd.gradcheck(lambda a, b: ops._fused_rope(a, b, torch.arange(7, 12), inv_freq), (q, k))
    g, u = randn(4, 10, seed=35, dtype=F64, scale=2).requires_grad_(), randn(4, 10, seed=36, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(ops._fused_swiglu, (g, u))
    h, wv = randn(9, 6, seed=37, dtype=F64).requires_grad_(), randn(11, 6, seed=38, dtype=F64).requires_grad_()
    t = torch.tensor([0, 3, 10, 5, -1, 2, 7, 7, 1])
    assert torch.autograd.gradcheck(lambda a, b: ops._fused_linear_cross_entropy(a, b, t, -1, 4)[0], (h, wv))


# --- determinism --------------------------------------------------------------------

def all_ops(seed):
    """Outputs and gradients of every op on bf16 inputs, as one list."""
    x, r = randn(2, 40, 128, seed=seed), randn(2, 40, 128, seed=seed + 1, dtype=torch.bfloat16)
    w = 1 + randn(128, seed=seed + 2, scale=0.1)
    fx, fr, fw = leaves(x, r, w)
    s, y = ops._fused_add_rms_norm(fx, fr, fw, EPS, torch.bfloat16)
    y2 = ops._fused_rms_norm(s, fw, EPS, torch.bfloat16)
    q, k = y.view(2, 40, 4, 32), y2.view(2, 40, 4, 32)
    q, k = ops._fused_rope(q, k, torch.arange(40), ops._fused_rope_inv_freq(32, 10000.0))
    a = ops._fused_swiglu(q.reshape(2, 40, 128), k.reshape(2, 40, 128))
    wl = randn(64, 128, seed=seed + 3, scale=0.3).requires_grad_()
    t = torch.arange(80) % 64
    loss, _ = ops._fused_linear_cross_entropy(a, wl, t, -100, 16)
    grads = torch.autograd.grad(loss, (fx, fr, fw, wl))
    return [s, y, y2, q, k, a, loss, *grads]


def test_repeats_and_thread_counts_are_bit_identical():
    torch.set_num_threads(1)
    first = all_ops(40)
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        for a, b in zip(first, all_ops(40)):
            assert a.isfinite().all() and torch.equal(a, b), f"{threads} threads"


# --- AdamW ------------------------------------------------------------------------------

def adamw_reference(params, grads_per_step, decay, lr, beta1, beta2, wd, eps):
    """torch.optim.AdamW (single-tensor, the unfused update) on copies of params."""
    ps = [p.clone().requires_grad_() for p in params]
    groups = [{"params": [p for p, d in zip(ps, decay) if d], "weight_decay": wd},
              {"params": [p for p, d in zip(ps, decay) if not d], "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr[0], betas=(beta1, beta2), eps=eps,
                            foreach=False, fused=False)
    for k, grads in enumerate(grads_per_step):
        for p, g in zip(ps, grads):
            p.grad = g.to(p.dtype)
        for g in opt.param_groups:
            g["lr"] = lr[k]
        opt.step()
    return [p.detach() for p in ps] + [opt.state[p][n] for n in ("exp_avg", "exp_avg_sq") for p in ps]


def test_adamw_within_rule_of_torch_adamw():
    """The fused op (CPU twin of the CUDA kernel) over 5 steps vs torch.optim.AdamW in
    fp32, both against torch.optim.AdamW in float64: parameters and moments."""
    shapes, decay = [(33, 17), (7,), (5, 3, 4)], [True, False, True]
    params = [randn(*sh, seed=80 + i) for i, sh in enumerate(shapes)]
    grads = [[randn(*sh, seed=90 + 5 * i + k, scale=k + 1) for i, sh in enumerate(shapes)] for k in range(5)]
    lr = [1e-2 * (k + 1) for k in range(5)]
    ref_out = adamw_reference([p.double() for p in params], grads, decay, lr, 0.9, 0.95, 0.1, 1e-8)
    stock = adamw_reference(params, grads, decay, lr, 0.9, 0.95, 0.1, 1e-8)
    ps = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in ps]
    v = [torch.zeros_like(p) for p in ps]
    for k in range(5):
        torch.ops.lighthouse_fused._fused_adamw_(ps, grads[k], m, v, [int(d) for d in decay], lr[k], 0.9, 0.95, 0.1,
                                                 1e-8, k + 1)
    names = [f"{kind}{i}" for kind in ("param", "exp_avg", "exp_avg_sq") for i in range(len(ps))]
    for name, a, st, r in zip(names, ps + m + v, stock, ref_out):
        assert_within_rule(name, a, r, st, "out")
    # Decay applies only where asked: a no-decay tensor with zero gradients stays put.
    z = [torch.ones(4)]
    torch.ops.lighthouse_fused._fused_adamw_(z, [torch.zeros(4)], [torch.zeros(4)], [torch.zeros(4)], [0], 0.1, 0.9,
                                             0.95, 0.5, 1e-8, 1)
    assert torch.equal(z[0], torch.ones(4))


def test_adamw_bad_inputs_name_the_value():
    p, g = [torch.zeros(3)], [torch.zeros(4)]
    with pytest.raises(RuntimeError, match="shape"):
        torch.ops.lighthouse_fused._fused_adamw_(p, g, [torch.zeros(3)], [torch.zeros(3)], [1], 0.1, 0.9, 0.95, 0.1,
                                                 1e-8, 1)
    with pytest.raises(RuntimeError, match="float32"):
        torch.ops.lighthouse_fused._fused_adamw_([torch.zeros(3, dtype=torch.float64)], [torch.zeros(3)],
                                                 [torch.zeros(3)], [torch.zeros(3)], [1], 0.1, 0.9, 0.95, 0.1, 1e-8, 1)
    with pytest.raises(RuntimeError, match="step = 0"):
        torch.ops.lighthouse_fused._fused_adamw_([torch.zeros(3)], [torch.zeros(3)], [torch.zeros(3)],
                                                 [torch.zeros(3)], [1], 0.1, 0.9, 0.95, 0.1, 1e-8, 0)


# --- bad inputs ------------------------------------------------------------------------

def test_bad_inputs_name_the_value():
    x = randn(2, 8, 64, seed=50)
    with pytest.raises(RuntimeError, match=r"x must be \[\.\.\., D\] with D = 32"):
        ops._fused_rms_norm(x, torch.ones(32), EPS, torch.float32)
    with pytest.raises(RuntimeError, match="x must be float32"):
        ops._fused_rms_norm(x.to(torch.bfloat16), torch.ones(64), EPS, torch.float32)
    with pytest.raises(RuntimeError, match=r"positions must be \[N\] or \[B, N\]"):
        ops._fused_rope(randn(1, 8, 2, 16, seed=51), randn(1, 8, 2, 16, seed=52), torch.arange(7),
                        ops._fused_rope_inv_freq(16, 1e4))
    with pytest.raises(RuntimeError, match="the head dim d = 15 must be even"):
        ops._fused_rope(randn(1, 8, 2, 15, seed=51), randn(1, 8, 2, 15, seed=52), torch.arange(8),
                        torch.ones(7))
    with pytest.raises(RuntimeError, match="gate and up must be"):
        ops._fused_swiglu(randn(4, 8, seed=53), randn(4, 9, seed=54))
    with pytest.raises(RuntimeError, match=r"target 40 is outside \[0, V = 32\)"):
        ops._fused_linear_cross_entropy(randn(3, 8, seed=55), randn(32, 8, seed=56), torch.tensor([1, 40, 2]),
                                        -100, 0)
