"""GPU tests of issue 11 (run by scripts/gpu-check.sh test; skipped without CUDA).

- torch.library.opcheck passes, all of its tests, for every public and
  internal op on CUDA, in float32 and bfloat16 (cases: tests/python/op_samples.py:
  grouped-query heads, a padded N).
- torch.compile(fullgraph=True, backend="inductor") of a Llama block
  (tests/python/llama_block.py) in bfloat16 runs forward and backward, equals
  eager within the tolerance rule, and compiles once across steps and (the
  sequence length marked dynamic) across lengths. Reference: the block in
  float64 on the CPU with the selection the compiled block made; stock: the
  eager bfloat16 block on the GPU with that selection.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import lighthouse  # noqa: E402,F401  (registers the ops)
import op_samples  # noqa: E402
from llama_block import LlamaBlock  # noqa: E402
from tolerances import assert_within_rule  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CASE_IDS = [s[0] for s in op_samples.samples("cpu", torch.float32)]


@pytest.mark.parametrize("dname", list(DTYPES))
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_opcheck_cuda(case_id, dname):
    matching = [s for s in op_samples.samples("cuda", DTYPES[dname]) if s[0] == case_id]
    if not matching:
        pytest.skip(f"{case_id} is a float32-only case")
    (_, op, args, kwargs), = matching
    result = torch.library.opcheck(op, args, kwargs)
    assert result and all(v == "SUCCESS" for v in result.values()), result


DIM = 256  # 4 heads of 64, 2 key/value heads
CONFIG = (3, 4, 256)  # smallest valid N: 4096


def data(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, DIM, generator=gen, dtype=torch.float64)
    w = torch.randn(2, n, DIM, generator=gen, dtype=torch.float64)
    return x, w


def forward_backward(fn, params, x, w, dynamic=False, **kw):
    x = x.detach().requires_grad_()
    if dynamic:
        torch._dynamo.mark_dynamic(x, 1)
    out = fn(x, **kw)
    out, selection = out if isinstance(out, tuple) else (out, None)
    grads = torch.autograd.grad((out * w).sum(), [x, *params])
    return out.detach(), grads, selection


def test_compiled_block_bf16_matches_eager_without_recompiles():
    torch._dynamo.reset()
    torch.manual_seed(5)
    base = LlamaBlock(dim=DIM, heads=4, kv_heads=2, hidden=512, config=CONFIG)
    with torch.no_grad():
        for p in base.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    blk = copy.deepcopy(base).cuda().bfloat16()
    ref_blk = copy.deepcopy(base).double()
    names = ["x"] + [n for n, _ in blk.named_parameters()]
    compiled = torch.compile(blk, fullgraph=True, backend="inductor")
    for step, n in enumerate((4196, 4196, 6150)):
        x, w = data(n, seed=30 + step)
        xb, wb = x.cuda().bfloat16(), w.cuda().bfloat16()
        with torch._dynamo.config.patch(error_on_recompile=step > 0):
            got = forward_backward(compiled, list(blk.parameters()), xb, wb, dynamic=True, return_selection=True)
        blk.entries = got[2]
        stock = forward_backward(blk, list(blk.parameters()), xb, wb)
        blk.entries = None
        ref_blk.entries = got[2].cpu()
        ref = forward_backward(ref_blk, list(ref_blk.parameters()), x, w)
        assert_within_rule(f"N={n} out", got[0].cpu(), ref[0], stock[0].cpu(), "out")
        for name, g, r, s in zip(names, got[1], ref[1], stock[1]):
            assert_within_rule(f"N={n} d{name}", g.cpu(), r, s.cpu(), "grad")
