"""Export round trip (TESTING.md item 12): a checkpoint exported with
`lighthouse export` loads in transformers' LlamaForCausalLM, and its logits
match ours (`lighthouse logits`) in fp32 on CPU. And (issue 11) it loads
with attn_implementation="lighthouse" (lighthouse.hf) and trains.

The model is trained for a few steps first (norm gains and weights away from
their init), with GQA, an explicit head dim that is not d_model / heads, a
non-default RoPE theta, and Lighthouse layers (which export as dense).
"""
import json
import os
import subprocess

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")
from safetensors import safe_open  # noqa: E402

BUILD = os.environ.get("LIGHTHOUSE_BUILD_DIR", "build")
PROGRAM = os.path.join(BUILD, "lighthouse")

# Same fp32 weights and the same ops: transformers' sdpa path reproduces our
# logits bit for bit here, its eager path (explicit softmax) within ~1e-6.
# A wrong layout (RoPE halves, GQA head order, a transposed weight) moves
# logits by O(1).
ATOL = 1e-5


def run(*args):
    r = subprocess.run([PROGRAM, *args], capture_output=True, text=True)
    assert r.returncode == 0, f"lighthouse {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not os.path.exists(PROGRAM):
        pytest.skip(f"{PROGRAM} not built (bash scripts/setup.sh)")
    d = tmp_path_factory.mktemp("export")
    packed = d / "packed"
    run("data", "--out", str(packed), "--max-bytes", "600000", "--val-fraction", "0.05", "--quiet")
    run("train", "--preset", "tiny", "--no-baseline", "--run-dir", str(d / "run"), "--data.dir", str(packed),
        "--model.d_model", "96", "--model.layers", "3", "--model.heads", "4", "--model.kv_heads", "2",
        "--model.head_dim", "32", "--model.ffn_hidden", "160", "--model.rope_theta", "500000",
        "--model.dense_layers", "0", "--train.seq_len", "512", "--steps", "4", "--stage2.start_step", "0",
        "--optim.lr", "1e-2", "--optim.warmup_steps", "0", "--eval.batches", "1")
    return d, d / "run" / "lighthouse"


def our_logits(run_dir, ids, tmp, attention="dense"):
    src, out = tmp / f"ids-{attention}.safetensors", tmp / f"logits-{attention}.safetensors"
    safetensors_torch.save_file({"input_ids": ids}, str(src))
    run("logits", str(run_dir), "--tokens", str(src), "--out", str(out), "--attention", attention)
    return safetensors_torch.load_file(str(out))["logits"]


def test_export_loads_in_transformers_and_logits_match(trained):
    d, run_dir = trained
    out = d / "hf"
    r = run("export", str(run_dir), str(out))
    assert "LlamaForCausalLM" in r.stdout

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["rope_theta"] == 500000.0
    assert cfg["rope_parameters"] == {"rope_type": "default", "rope_theta": 500000.0}
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (4, 2, 32)
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"], cfg["vocab_size"]) == (256, 257, 258, 320)
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        names = set(f.keys())
    assert "model.layers.2.self_attn.k_proj.weight" in names and "lm_head.weight" in names

    model = transformers.LlamaForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32)
    model.eval()
    # Every parameter of transformers' model came from the file (no fresh init).
    assert {n for n, _ in model.named_parameters()} == names

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (2, 300), generator=g)
    ids[:, 0] = 256  # BOS
    ours = our_logits(run_dir, ids, d)
    for impl in ("eager", "sdpa"):
        model.config._attn_implementation = impl
        with torch.no_grad():
            theirs = model(input_ids=ids).logits
        assert theirs.shape == ours.shape == (2, 300, 320)
        err = (theirs - ours).abs().max().item()
        assert err < ATOL, f"{impl}: max |logits difference| {err}"
    assert ours.abs().max().item() > 1.0  # not a trivial model


def test_lighthouse_layers_export_as_dense(trained):
    d, run_dir = trained
    ids = torch.randint(0, 256, (1, 600), generator=torch.Generator().manual_seed(1))
    dense = our_logits(run_dir, ids, d, "dense")
    as_trained = our_logits(run_dir, ids, d, "checkpoint")
    # Causal: the first positions of a Lighthouse tile may differ, and do
    # somewhere; the dense logits are the ones the export reproduces.
    assert not torch.equal(dense, as_trained)


def test_export_bfloat16_and_refuses_to_overwrite(trained):
    d, run_dir = trained
    out = d / "hf-bf16"
    run("export", str(run_dir), str(out), "--dtype", "bfloat16")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("lm_head.weight").dtype == torch.bfloat16
    r = subprocess.run([PROGRAM, "export", str(run_dir), str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "exists" in r.stderr and "--overwrite" in r.stderr
    run("export", str(run_dir), str(out), "--overwrite")


def test_export_of_a_missing_or_damaged_checkpoint_says_why(trained, tmp_path):
    d, run_dir = trained
    r = subprocess.run([PROGRAM, "export", str(tmp_path / "nothing"), str(tmp_path / "o")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "no complete checkpoint" in r.stderr
    ckpt = sorted((run_dir / "checkpoints").iterdir())[-1]
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ckpt.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    data = bytearray((broken / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "model.safetensors").write_bytes(bytes(data))
    r = subprocess.run([PROGRAM, "export", str(broken), str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 1 and "model.safetensors is corrupted" in r.stderr, r.stderr


def test_export_trains_with_lighthouse_attention(trained):
    """Our export, loaded with attn_implementation="lighthouse" (layer 0 dense,
    as trained), takes training steps that lower the loss on a fixed batch of
    the packed corpus; then Stage 2 (sdpa) goes on from the same weights."""
    import lighthouse.hf

    d, run_dir = trained
    out = d / "hf-lighthouse"
    run("export", str(run_dir), str(out))
    lighthouse.hf.register(levels=2, pool=2, top_k=128, dense_layers=[0])
    model = transformers.LlamaForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32,
                                                          attn_implementation="lighthouse")
    assert model.config._attn_implementation == "lighthouse"
    shard = sorted((d / "packed").glob("train-*.bin"))[0]
    ids = torch.frombuffer(bytearray(shard.read_bytes()[:512]), dtype=torch.uint8).long().view(1, 512)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[2] < losses[1] < losses[0], losses
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        assert model(input_ids=ids, labels=ids).loss.item() < losses[0]
