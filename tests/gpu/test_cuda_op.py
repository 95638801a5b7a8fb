"""GPU tests of the Lighthouse op (TESTING.md item 8). Run on a GPU machine
through scripts/gpu-check.sh; skipped as a whole where CUDA is absent.

- CUDA vs the CPU twins: identical entries; the stages (gather, scatter and
  their backward) bit for bit, with the default kernels and with the ones
  they pass over (LIGHTHOUSE_SLOT_GATHER=row, LIGHTHOUSE_TOKEN_GATHER=...,heads=0
  or block=256); outputs within the bf16 rule (<= 2x the error of stock bf16
  ops on the same gathered sub-sequence, against fp64, plus noise),
  gradients within 3x.
- Determinism: forward and backward 50 times, bit for bit.
- The SDPA backend that runs is the one asked for (profiler kernel names);
  an explicit backend that cannot run the inputs is an error, not a swap.
- N = 1,048,576 forward and backward on one GPU.
Outputs are poisoned (the caching allocator's blocks are filled with NaN
before each op) so unwritten elements show.
"""

import math

import pytest
import torch

import lighthouse

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

DEV = "cuda"


def plan(q, kk, v, e, L, p, k):
    """The stage ops' plan (int32 entries, inv) for int64 entries e, via _plan."""
    e32, inv, *_ = torch.ops.lighthouse._plan(q, kk, v, L, p, k, "norm", 4, "auto", e)
    return e32, inv


def gather(q, kk, v, e, L, p, k):
    """_gather alone (no pooled coarse rows) for int64 entries e."""
    with torch.no_grad():
        pl = plan(q, kk, v, e, L, p, k)
    return torch.ops.lighthouse._gather(q, kk, v, *pl, None, None, None, L, p, k)


def scatter(og, pl, N, L, p, k):
    return torch.ops.lighthouse._scatter(og, *pl, N, L, p, k)


def poison():
    """Fill free cached blocks with NaN so that an output the kernels fail to
    write comes back non-finite."""
    torch.cuda.synchronize()
    free, _ = torch.cuda.mem_get_info()
    n = min(int(free * 0.5), 8 << 30) // 4
    x = torch.full((n,), float("nan"), device=DEV)
    del x
    torch.cuda.synchronize()


def rand(shape, dtype, seed):
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float32).to(dtype)


CONFIGS = [
    # B, N, H, H_kv, d, L, p, top_k, dtype
    (1, 8192, 4, 4, 128, 3, 4, 512, torch.bfloat16),
    (2, 4096 + 77, 4, 2, 64, 3, 2, 256, torch.bfloat16),
    (1, 16384 + 5, 8, 2, 128, 4, 2, 512, torch.float16),
    (1, 8192, 2, 1, 64, 2, 8, 128, torch.float32),
    (1, 32768, 8, 8, 128, 3, 4, 2048, torch.bfloat16),
    # Head dims at the ends of the kernels' layouts: 32 (idle lanes in the
    # scores pass), 256 (32 lanes a row).
    (1, 8192, 2, 2, 32, 3, 4, 512, torch.bfloat16),
    (1, 4096 + 3, 2, 1, 256, 2, 4, 256, torch.float16),
    # Head dim 16 in bf16 (rows of two 16-byte vectors: two lanes a row) under
    # GQA: the token gather's cooperative slot loads must not run there.
    (1, 4096 + 3, 4, 2, 16, 3, 4, 256, torch.bfloat16),
    # L = 4, p = 4: two pooled levels (spans of 16 and 64 tokens).
    (1, 16384 + 5, 4, 2, 64, 4, 4, 256, torch.bfloat16),
    # fp32 with L <= 4, p <= 4: the one-head token gather's kernel by heads
    # (dq, scatter) on four-element vectors; N not a multiple of p.
    (1, 4096 + 11, 4, 4, 64, 3, 4, 256, torch.float32),
    # GQA with four heads a group at L = 4, p = 4 (the grid's GQA shape,
    # small) and in fp32 at L = 3: the gather backward of dk, dv sums 28 and
    # 24 (head, level) pairs a cell.
    (1, 16384 + 13, 8, 2, 64, 4, 4, 256, torch.bfloat16),
    (1, 4096 + 11, 8, 2, 64, 3, 4, 256, torch.float32),
    # The same with slot tables whose rows are 16-byte aligned (P % 4 == 0:
    # the GQA kernel loads a cell's level-0 slots as one vector): four heads
    # a group in bf16 at L = 4, two in fp16 at L = 3.
    (1, 16384 + 141, 8, 2, 64, 4, 4, 256, torch.bfloat16),
    (1, 4096 + 35, 4, 2, 64, 3, 4, 256, torch.float16),
    # L = 5: past the scatter backward's window kernel (the slot gather runs).
    (1, 8192 + 9, 2, 2, 64, 5, 2, 256, torch.bfloat16),
]
SMALL_CONFIGS = [c for c in CONFIGS if c[1] < 32768]


def ids(c):
    B, N, H, Hkv, d, L, p, k, dt = c
    return f"B{B}-N{N}-H{H}x{Hkv}-d{d}-L{L}p{p}k{k}-{str(dt).split('.')[-1]}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
def test_entries_identical_to_cpu_twin(cfg):
    B, N, H, Hkv, d, L, p, k, dt = cfg
    q, kk = rand((B, N, H, d), dt, 1), rand((B, N, Hkv, d), dt, 2)
    poison()
    e_gpu = torch.ops.lighthouse.select(q.to(DEV), kk.to(DEV), L, p, k)
    e_cpu = torch.ops.lighthouse.select(q, kk, L, p, k)
    assert e_gpu.shape == (B, H, lighthouse.subsequence_length(N, L, p, k))
    assert torch.equal(e_gpu.cpu(), e_cpu)


@pytest.mark.parametrize("cfg", SMALL_CONFIGS, ids=ids)
def test_stages_bit_identical_to_cpu_twin(cfg):
    B, N, H, Hkv, d, L, p, k, dt = cfg
    q, kk, v = rand((B, N, H, d), dt, 3), rand((B, N, Hkv, d), dt, 4), rand((B, N, Hkv, d), dt, 5)
    e = torch.ops.lighthouse.select(q, kk, L, p, k)
    S = e.shape[-1]
    poison()
    g_gpu = gather(q.to(DEV), kk.to(DEV), v.to(DEV), e.to(DEV), L, p, k)
    g_cpu = gather(q, kk, v, e, L, p, k)
    for a, b in zip(g_gpu, g_cpu):
        assert torch.equal(a.cpu(), b)
    og = rand((B, H, S, d), dt, 6)
    plans = {"cpu": plan(q, kk, v, e, L, p, k), DEV: plan(q.to(DEV), kk.to(DEV), v.to(DEV), e.to(DEV), L, p, k)}
    poison()
    s_gpu = scatter(og.to(DEV), plans[DEV], N, L, p, k)
    s_cpu = scatter(og, plans["cpu"], N, L, p, k)
    assert torch.equal(s_gpu.cpu(), s_cpu)
    # Backward of both stages.
    gq, gk, gv = (rand((B, H, S, d), dt, 7 + i) for i in range(3))
    gout = rand((B, N, H, d), dt, 10)

    def grads(dev):
        qq, kk_, vv = (x.to(dev).requires_grad_() for x in (q, kk, v))
        outs = gather(qq, kk_, vv, e.to(dev), L, p, k)
        torch.autograd.backward(outs, [gq.to(dev), gk.to(dev), gv.to(dev)])
        o = og.to(dev).requires_grad_()
        scatter(o, plans[dev], N, L, p, k).backward(gout.to(dev))
        return [qq.grad, kk_.grad, vv.grad, o.grad]

    poison()
    for a, b in zip(grads(DEV), grads("cpu")):
        assert torch.equal(a.cpu(), b)


# The kernels the default launch choices pass over (read once a process from
# these variables, so each runs in a child process): slot_gather_kernel for
# the gather forward, token_gather_kernel for every token gather,
# token_gather_heads_kernel in blocks of 256 threads.
_FALLBACKS = {
    "slot-row": {"LIGHTHOUSE_SLOT_GATHER": "row"},
    "token-heads0": {"LIGHTHOUSE_TOKEN_GATHER": "cells=4,coop=1,heads=0,tasks=8"},
    "token-block256": {"LIGHTHOUSE_TOKEN_GATHER": "cells=4,coop=1,heads=1,tasks=8,block=256"},
}


@pytest.mark.parametrize("name", sorted(_FALLBACKS))
def test_stages_bit_identical_with_fallback_kernels(name):
    import os
    import subprocess
    import sys

    env = dict(os.environ, **_FALLBACKS[name])
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
                        "test_stages_bit_identical_to_cpu_twin"], env=env, capture_output=True, text=True, timeout=600)
    print(r.stdout[-3000:], r.stderr[-2000:])
    assert r.returncode == 0, f"stage tests with {_FALLBACKS[name]} exited {r.returncode}"
    assert f"{len(SMALL_CONFIGS)} passed" in r.stdout


@pytest.mark.parametrize("cfg", CONFIGS, ids=ids)
def test_fused_coarse_pooling_matches_gather_pooling(cfg):
    """The forward pools the coarse rows inside the scores pass; with given
    entries the gather pools them itself: bit-identical outputs."""
    B, N, H, Hkv, d, L, p, k, dt = cfg
    q, kk, v = (x.to(DEV) for x in (rand((B, N, H, d), dt, 51), rand((B, N, Hkv, d), dt, 52), rand((B, N, Hkv, d), dt, 53)))
    backend = "efficient" if dt == torch.float32 else "auto"
    poison()
    fused = torch.ops.lighthouse.attention(q, kk, v, L, p, k, backend=backend)
    e = torch.ops.lighthouse.select(q, kk, L, p, k)
    poison()
    unfused = torch.ops.lighthouse.attention(q, kk, v, L, p, k, backend=backend, entries=e)
    assert torch.isfinite(fused).all()
    assert torch.equal(fused, unfused)


def stock_error(x, ref):
    return ((x.double() - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[-1] != torch.float32][:3], ids=ids)
def test_outputs_and_gradients_within_bf16_rule(cfg):
    """Reference: the CPU op in float64 on the same (rounded) inputs with the
    same selection. Stock: the same gathered sub-sequence through stock SDPA in
    the test dtype on the GPU, scattered in float64."""
    B, N, H, Hkv, d, L, p, k, dt = cfg
    q, kk, v = rand((B, N, H, d), dt, 11), rand((B, N, Hkv, d), dt, 12), rand((B, N, Hkv, d), dt, 13)
    gout = rand((B, N, H, d), dt, 14)
    e = torch.ops.lighthouse.select(q, kk, L, p, k)

    def run(dev, dtype, fn):
        xs = [x.to(dev, dtype).requires_grad_() for x in (q, kk, v)]
        out = fn(*xs)
        out.backward(gout.to(dev, dtype))
        return [out.detach().double().cpu()] + [x.grad.double().cpu() for x in xs]

    ref = run("cpu", torch.float64, lambda a, b, c: torch.ops.lighthouse.attention(a, b, c, L, p, k, entries=e))
    poison()
    got = run(DEV, dt, lambda a, b, c: torch.ops.lighthouse.attention(a, b, c, L, p, k, entries=e.to(DEV)))

    cpu_plan = plan(q.double(), kk.double(), v.double(), e, L, p, k)

    def stock(a, b, c):
        ga, gb, gc = gather(a.double().cpu(), b.double().cpu(), c.double().cpu(), e, L, p, k)
        o = torch.nn.functional.scaled_dot_product_attention(ga.to(DEV, dt), gb.to(DEV, dt), gc.to(DEV, dt), is_causal=True)
        return scatter(o.double().cpu(), cpu_plan, N, L, p, k).to(a.device)

    base = run(DEV, dt, stock)
    names = ["out", "dq", "dk", "dv"]
    for name, g_, r_, b_ in zip(names, got, ref, base):
        assert torch.isfinite(g_).all(), name
        err, err_stock = stock_error(g_, r_), stock_error(b_, r_)
        factor = 2.0 if name == "out" else 3.0
        print(f"{name}: lighthouse {err:.3e}, stock {err_stock:.3e}")
        assert err <= factor * err_stock + 1e-6, f"{name}: {err:.3e} > {factor} x {err_stock:.3e}"


def _determinism_inputs():
    B, N, H, Hkv, d = 1, 65536, 8, 2, 128
    q = rand((B, N, H, d), torch.bfloat16, 20).to(DEV).requires_grad_()
    kk = rand((B, N, Hkv, d), torch.bfloat16, 21).to(DEV).requires_grad_()
    v = rand((B, N, Hkv, d), torch.bfloat16, 22).to(DEV).requires_grad_()
    gout = rand((B, N, H, d), torch.bfloat16, 23).to(DEV)
    return q, kk, v, gout


def test_forward_deterministic_50_repeats_default_backend():
    """Default (cuDNN) inner SDPA: the forward is deterministic."""
    q, kk, v, _ = _determinism_inputs()
    with torch.no_grad():
        first = torch.ops.lighthouse.attention(q, kk, v, 3, 4, 4096)
        assert torch.isfinite(first).all()
        for rep in range(49):
            assert torch.equal(torch.ops.lighthouse.attention(q, kk, v, 3, 4, 4096), first), f"repeat {rep + 1}"


def test_forward_backward_deterministic_50_repeats_in_deterministic_mode():
    """torch.use_deterministic_algorithms(True): 'auto' avoids cuDNN (its
    backward is not deterministic) and flash runs its deterministic backward;
    our stages are deterministic always. Output and all gradients bit for bit."""
    q, kk, v, gout = _determinism_inputs()
    torch.use_deterministic_algorithms(True)
    try:
        first = None
        for rep in range(50):
            out = torch.ops.lighthouse.attention(q, kk, v, 3, 4, 4096)
            cur = [out] + list(torch.autograd.grad(out, (q, kk, v), gout))
            if first is None:
                first = [x.clone() for x in cur]
                assert all(torch.isfinite(x).all() for x in cur)
            else:
                for name, a, b in zip(["out", "dq", "dk", "dv"], cur, first):
                    assert torch.equal(a, b), f"repeat {rep}: {name} differs"
        with pytest.raises(RuntimeError, match="not deterministic"):
            torch.ops.lighthouse.attention(q, kk, v, 3, 4, 4096, backend="cudnn")
    finally:
        torch.use_deterministic_algorithms(False)


def kernel_names(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]


@pytest.mark.parametrize(
    "backend,needles",
    [("cudnn", ["cudnn", "sdpa", "fmha", "fprop"]), ("flash", ["flash"]), ("efficient", ["fmha", "cutlass", "efficient", "mem_eff"])],
)
def test_backend_used_is_the_one_asked_for(backend, needles):
    N, H, d = 8192, 4, 128
    q = rand((1, N, H, d), torch.bfloat16, 30).to(DEV).requires_grad_()
    kk = rand((1, N, H, d), torch.bfloat16, 31).to(DEV).requires_grad_()
    v = rand((1, N, H, d), torch.bfloat16, 32).to(DEV).requires_grad_()

    def run():
        torch.ops.lighthouse.attention(q, kk, v, 3, 4, 512, backend=backend).sum().backward()

    run()
    names = kernel_names(run)
    lowered = [n.lower() for n in names]
    attn = [n for n in lowered if any(s in n for s in needles)]
    assert attn, f"no {backend} kernel among: {sorted(set(names))}"
    others = {"cudnn": ["flash_fwd", "fmha_cutlass"], "flash": ["cudnn", "fmha_cutlass"], "efficient": ["flash_fwd", "cudnn"]}
    for o in others[backend]:
        assert not any(o in n for n in lowered), f"{backend} asked, but {o} ran: {sorted(set(names))}"
    print(backend, sorted(set(n for n in names if any(s in n.lower() for s in needles)))[:3])


_SWAP_SCRIPT = """
import sys, torch
sys.path.insert(0, "python")
import lighthouse
q = torch.randn(1, 8192, 4, 64, device="cuda")
for dev in ("cpu", "cuda"):  # a message with numbers in it, on each device
    try:
        x = torch.randn(1, 1000, 4, 64, device=dev)
        torch.ops.lighthouse.attention(x, x, x, 3, 4, 512)
    except RuntimeError as e:
        print("ERROR", dev, "smallest valid N is 8192" in str(e))
for kwargs, needle in [({"backend": "flash"}, "flash"), ({"backend": "cudnn"}, "cudnn"), ({}, "float64")]:
    x = q.double() if needle == "float64" else q
    try:
        torch.ops.lighthouse.attention(x, x, x, 3, 4, 512, **kwargs)
        print("NO ERROR", needle)
    except RuntimeError as e:
        print("ERROR", needle, needle in str(e))
out = torch.ops.lighthouse.attention(q, q, q, 3, 4, 512)  # auto: a backend that takes float32
print("AUTO OK", bool(torch.isfinite(out).all()))
"""


def test_explicit_backend_is_never_swapped():
    """Flash and cuDNN have no float32 kernels: asking for them explicitly is
    an error naming the backend, while 'auto' picks one that runs. In a child
    process, so that a crash shows as a failure with its output."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-u", "-X", "faulthandler", "-c", _SWAP_SCRIPT], capture_output=True,
                       text=True, timeout=300)
    print(r.stdout, r.stderr[-3000:])
    if r.returncode < 0:  # a crash: get the native stack for the report
        gdb = subprocess.run(["cuda-gdb", "-batch", "-ex", "run", "-ex", "bt 40", "--args", sys.executable, "-c", _SWAP_SCRIPT],
                             capture_output=True, text=True, timeout=300)
        print("cuda-gdb:", gdb.stdout[-6000:], gdb.stderr[-1000:])
    assert r.returncode == 0, f"child exited {r.returncode}"
    lines = r.stdout.split("\n")
    for needle in ("cpu", "cuda", "flash", "cudnn", "float64"):
        assert f"ERROR {needle} True" in lines, needle
    assert "AUTO OK True" in lines


def test_one_million_tokens_forward_backward():
    B, N, H, d, L, p, k = 1, 1 << 20, 8, 128, 3, 4, 4096
    q = torch.randn(B, N, H, d, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    kk = torch.randn(B, N, H, d, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(B, N, H, d, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = torch.ops.lighthouse.attention(q, kk, v, L, p, k)
    out.backward(torch.randn_like(out))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert out.shape == q.shape
    for x in (out, q.grad, kk.grad, v.grad):
        assert torch.isfinite(x).all()
    assert (v.grad.float().norm(dim=-1) > 0).all()
    S = lighthouse.subsequence_length(N, L, p, k)
    print(f"N={N} S={S} peak extra memory {peak / 2**30:.2f} GiB")
