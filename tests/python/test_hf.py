"""Issue 11: Lighthouse in Hugging Face transformers (lighthouse.hf), on CPU
with tiny random models.

- every layer dense: logits and gradients equal attn_implementation="sdpa"
  bit for bit;
- Lighthouse layers: each layer's attention output (the o_proj input)
  equals torch.ops.lighthouse.attention on that layer's q, k, v (recomputed
  here from the layer input: projections, RoPE), bit for bit; dense layers
  equal transformers' SDPA function on theirs;
- Llama, Qwen2, Qwen3 and Mistral all take the path;
- a few training steps lower the loss, then switching to "sdpa" (Stage 2)
  trains on with the same weights;
- calls Lighthouse cannot compute are refused with the reason;
- torch.compile(fullgraph=True) of the model equals eager.
`lighthouse export` output training this way: test_export.py.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import transformers
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

import lighthouse.hf

CFG = dict(levels=2, pool=2, top_k=128)  # smallest valid N: 256
N = 300  # padded inside to 302


def tiny_config(kind: str = "llama", layers: int = 4, attn: str = "sdpa"):
    common = dict(vocab_size=260, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  attn_implementation=attn)
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
           "qwen3": transformers.Qwen3Config, "mistral": transformers.MistralConfig}[kind]
    extra = {"qwen3": dict(head_dim=16), "mistral": dict(sliding_window=None)}.get(kind, {})
    return cls(**common, **extra)


def tiny_model(kind: str = "llama", layers: int = 4, attn: str = "sdpa", seed: int = 0):
    torch.manual_seed(seed)
    cfg = tiny_config(kind, layers, attn)
    return transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation=attn).float()


def tokens(batch: int = 2, n: int = N, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 260, (batch, n), generator=torch.Generator().manual_seed(seed))


def forward_backward(model, ids):
    model.zero_grad()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_all_dense_equals_sdpa_bit_for_bit():
    lighthouse.hf.register(**CFG, dense_layers=range(4))
    model = tiny_model()
    ids = tokens()
    want_logits, want_grads = forward_backward(model, ids)
    model.set_attn_implementation("lighthouse")
    assert model.config._attn_implementation == "lighthouse"
    logits, grads = forward_backward(model, ids)
    assert torch.equal(logits, want_logits)
    for name, g in grads.items():
        assert torch.equal(g, want_grads[name]), name


class LayerSpy:
    """Per layer: the attention module's inputs and its o_proj input."""

    def __init__(self, model):
        self.inputs, self.outputs, self.handles = {}, {}, []
        for i, layer in enumerate(model.model.layers):
            attn = layer.self_attn
            sig = inspect.signature(attn.forward)

            def pre(module, args, kwargs, i=i, sig=sig):
                self.inputs[i] = sig.bind(*args, **kwargs).arguments

            def o_pre(module, args, i=i):
                self.outputs[i] = args[0].detach()

            self.handles.append(attn.register_forward_pre_hook(pre, with_kwargs=True))
            self.handles.append(attn.o_proj.register_forward_pre_hook(o_pre))

    def remove(self):
        for h in self.handles:
            h.remove()


def layer_qkv(attn, hidden, position_embeddings):
    """q [B, H, N, d], k, v [B, H_kv, N, d] as the layer computes them."""
    shape = (*hidden.shape[:-1], -1, attn.head_dim)
    q = attn.q_proj(hidden).view(shape)
    k = attn.k_proj(hidden).view(shape)
    if hasattr(attn, "q_norm"):  # Qwen3
        q, k = attn.q_norm(q), attn.k_norm(k)
    v = attn.v_proj(hidden).view(shape).transpose(1, 2)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    return q, k, v


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3", "mistral"])
def test_each_layer_equals_the_op_on_its_qkv(kind):
    lighthouse.hf.register(**CFG, dense_layers=[0, -1])
    model = tiny_model(kind, attn="lighthouse")
    spy = LayerSpy(model)
    with torch.no_grad():
        model(input_ids=tokens())
    spy.remove()
    for i, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        with torch.no_grad():
            q, k, v = layer_qkv(attn, spy.inputs[i]["hidden_states"], spy.inputs[i]["position_embeddings"])
            if i in (0, 3):
                want, _ = sdpa_attention_forward(attn, q, k, v, None, scaling=attn.scaling)
            else:
                want = torch.ops.lighthouse.attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                      CFG["levels"], CFG["pool"], CFG["top_k"])
        got = spy.outputs[i]
        assert torch.equal(got, want.reshape(got.shape)), f"{kind} layer {i}"
    # And the Lighthouse layers do change the result (they are not dense).
    with torch.no_grad():
        lh_logits = model(input_ids=tokens()).logits
        model.set_attn_implementation("sdpa")
        assert not torch.equal(model(input_ids=tokens()).logits, lh_logits)


def train(model, ids, steps, opt):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_two_stage_training_lowers_the_loss():
    lighthouse.hf.register(**CFG)  # dense_layers [0, 1, -2, -1]: layers 2 and 3 of 6 are Lighthouse
    model = tiny_model(layers=6, attn="lighthouse")
    ids = tokens(batch=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    stage1 = train(model, ids, 4, opt)
    assert all(a > b for a, b in zip(stage1, stage1[1:])), stage1
    model.set_attn_implementation("sdpa")  # Stage 2: the same weights and optimizer, dense
    stage2 = train(model, ids, 2, opt)
    assert stage2[-1] < stage1[-1], (stage1, stage2)


def test_refusals_name_the_reason():
    lighthouse.hf.register(**CFG, dense_layers=[])
    model = tiny_model(layers=2, attn="lighthouse")
    ids = tokens(n=N)
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    with pytest.raises(ValueError, match="attention mask"):
        model(input_ids=ids, attention_mask=mask)
    model.eval()
    with torch.no_grad(), pytest.raises(ValueError, match="KV cache"):
        model.generate(ids[:1], max_new_tokens=2, do_sample=False)
    with pytest.raises(RuntimeError, match="smallest valid N is 256"):
        model(input_ids=tokens(n=200))
    with pytest.raises(RuntimeError, match="top_k must be a positive multiple of 128"):
        lighthouse.hf.register(levels=2, pool=2, top_k=100)


def test_compiled_model_fullgraph_equals_eager():
    """torch.compile(fullgraph=True) of a transformers Llama with Lighthouse
    layers (no padding mask: the mask function keeps plain causal attention
    mask-free while tracing too). aot_eager runs the same kernels as eager."""
    lighthouse.hf.register(**CFG, dense_layers=[0, -1])
    model = tiny_model(attn="lighthouse")
    ids = tokens()
    want_logits, want_grads = forward_backward(model, ids)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    logits, grads = forward_backward(compiled, ids)
    assert torch.equal(logits, want_logits)
    for name, g in grads.items():
        assert torch.equal(g, want_grads[name.removeprefix("_orig_mod.")]), name
