"""`lighthouse eval` against independent computations (TESTING.md item 17).

A small model is trained for a few steps (Lighthouse, then dense) and
exported to the Hugging Face format. Then:
- niah: the prompts are rebuilt here from niah.json alone, with this file's
  own implementation of the generator described in csrc/eval/niah_prompt.h,
  and equal the prompts the program evaluated (--save-prompts) bit for bit;
  transformers' LlamaForCausalLM on those prompts makes the same digit
  choice in every trial, and the same accuracy and p_correct per cell;
- loss: the validation windows are rebuilt here from the packed files, and
  transformers' per-token losses bucketed here give the same bucket means
  and token counts;
- plots: the PNGs are written; without python3 or matplotlib the JSON is
  still written and the program says why there is no plot.
"""
import json
import os
import struct
import subprocess

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

BUILD = os.environ.get("LIGHTHOUSE_BUILD_DIR", "build")
PROGRAM = os.path.join(BUILD, "lighthouse")
MASK = (1 << 64) - 1
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, env=None, ok=True):
    r = subprocess.run([PROGRAM, *args], capture_output=True, text=True, env=env)
    if ok:
        assert r.returncode == 0, f"lighthouse {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


# ---- the prompt generator, from its description (csrc/eval/niah_prompt.h) ----

class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):  # Lemire's unbiased bounded draw
        m = self.next() * n
        if (m & MASK) < n:
            threshold = ((1 << 64) - n) % n
            while (m & MASK) < threshold:
                m = self.next() * n
        return m >> 64


def mix_seed(seed, stream, index):
    s = SplitMix64(seed ^ 0x6C69676874686F75).next() ^ ((stream * 0xD1B54A32D192ED03) & MASK)
    return SplitMix64(s).next() ^ SplitMix64((index + 0x5851F42D4C957F2D) & MASK).next()


def cell_trials(p, context, depth):
    rng = SplitMix64(mix_seed(p["seed"], p["seed_stream"], context * 101 + depth))
    digits = [t % 10 for t in range(p["trials"])]
    for i in range(len(digits), 1, -1):
        j = rng.below(i)
        digits[i - 1], digits[j] = digits[j], digits[i - 1]
    return [(rng.next(), d) for d in digits]


def prompt(p, context, depth, seed, digit):
    needle = p["needle"].replace("{d}", str(digit))
    F = context - (1 if p["bos"] else 0) - len(needle) - len(p["question"])
    rng, filler, lo, hi = SplitMix64(seed), "", p["word_min"], p["word_max"]
    while len(filler) < F:
        r = F - len(filler)
        n = lo + rng.below(hi - lo + 1)
        if r - (n + 1) < lo + 1:
            n = r - 1
        filler += "".join(p["alphabet"][rng.below(len(p["alphabet"]))] for _ in range(n)) + " "
    target = (depth * F + 50) // 100
    boundaries = [0] + [i + 1 for i, ch in enumerate(filler) if ch == " "]
    b = min(boundaries, key=lambda x: (abs(x - target), x))
    text = filler[:b] + needle + filler[b:] + p["question"]
    tokens = ([p["bos_token"]] if p["bos"] else []) + list(text.encode("ascii"))
    return tokens, len(tokens) - len(text) + b


# ---- fixtures ----

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not os.path.exists(PROGRAM):
        pytest.skip(f"{PROGRAM} not built (bash scripts/setup.sh)")
    d = tmp_path_factory.mktemp("eval")
    packed = d / "packed"
    run("data", "--out", str(packed), "--max-bytes", "600000", "--val-fraction", "0.05", "--quiet")
    run("train", "--preset", "tiny", "--no-baseline", "--run-dir", str(d / "run"), "--data.dir", str(packed),
        "--model.d_model", "64", "--model.layers", "3", "--model.heads", "4", "--model.kv_heads", "2",
        "--model.ffn_hidden", "128", "--model.dense_layers", "0,-1", "--train.seq_len", "512", "--steps", "6",
        "--stage2.start_step", "4", "--optim.lr", "1e-2", "--optim.warmup_steps", "0", "--eval.batches", "1",
        "--eval.every", "0")
    run_dir = d / "run" / "two-stage"
    run("export", str(run_dir), str(d / "hf"))
    model = transformers.LlamaForCausalLM.from_pretrained(str(d / "hf"), torch_dtype=torch.float32)
    model.config._attn_implementation = "sdpa"
    model.eval()
    return d, run_dir, packed, model


@pytest.fixture(scope="module")
def niah(trained):
    d, run_dir, _, _ = trained
    out = d / "niah"
    r = run("eval", "niah", "--checkpoint", str(run_dir), "--contexts", "300,512", "--depths", "0,50,100",
            "--trials", "10", "--batch", "7", "--device", "cpu", "--out", str(out), "--save-prompts",
            str(d / "prompts.safetensors"))
    assert "NIAH mean accuracy" in r.stdout
    return json.loads((out / "niah.json").read_text()), safetensors_torch.load_file(str(d / "prompts.safetensors"))


# ---- tests ----

def test_niah_json_rebuilds_every_prompt_bit_for_bit(niah):
    result, saved = niah
    p = result["protocol"]
    assert p["generator"] == "lighthouse-niah-v1" and p["tokenizer"] == "bytes-v1" and p["bos"] is True
    assert (p["contexts"], p["depths"], p["trials"]) == ([300, 512], [0, 50, 100], 10)
    rows = {c: 0 for c in p["contexts"]}
    for cell in result["cells"]:
        c, depth = cell["context"], cell["depth"]
        trials = cell_trials(p, c, depth)
        assert [s for s, _ in trials] == cell["seeds"]
        assert [dg for _, dg in trials] == cell["digits"]
        assert sorted(cell["digits"]) == list(range(10))  # balanced
        for t, (seed, digit) in enumerate(trials):
            tokens, needle = prompt(p, c, depth, seed, digit)
            assert len(tokens) == c
            assert needle == cell["needle_token"][t]
            assert saved[f"context_{c}"][rows[c]].tolist() == tokens, f"context {c} depth {depth} trial {t}"
            rows[c] += 1
    assert all(saved[f"context_{c}"].shape[0] == n for c, n in rows.items())


def test_niah_scores_equal_transformers_on_the_same_prompts(trained, niah):
    _, _, _, model = trained
    result, saved = niah
    assert result["model"]["attention"] == "dense" and result["model"]["layers"] == "DDD"
    first = result["protocol"]["digit_tokens"][0]
    per_context = {}
    with torch.no_grad():
        for c in result["protocol"]["contexts"]:
            ids = saved[f"context_{c}"]
            logits = torch.cat([model(input_ids=ids[i:i + 8]).logits[:, -1, first:first + 10]
                                for i in range(0, ids.shape[0], 8)])
            per_context[c] = logits
    rows = {c: 0 for c in per_context}
    for cell in result["cells"]:
        c = cell["context"]
        n = cell["trials"]
        digit_logits = per_context[c][rows[c]:rows[c] + n]
        rows[c] += n
        predicted = digit_logits.argmax(dim=1).tolist()
        digits = torch.tensor(cell["digits"])
        p = torch.softmax(digit_logits.double(), dim=1)[torch.arange(n), digits]
        assert predicted == cell["predicted"], f"context {c} depth {cell['depth']}"
        assert sum(int(a == b) for a, b in zip(predicted, cell["digits"])) == cell["correct"]
        assert cell["accuracy"] == cell["correct"] / n
        assert p.tolist() == pytest.approx(cell["p_correct_trials"], abs=1e-5)
        assert p.mean().item() == pytest.approx(cell["p_correct"], abs=1e-5)
    mean = sum(c["accuracy"] for c in result["cells"]) / len(result["cells"])
    assert result["mean_accuracy"] == pytest.approx(mean, abs=1e-12)


def val_stream(packed):
    """The validation split's token stream: per document BOS + bytes + EOS."""
    data = b"".join((packed / f).read_bytes() for f in sorted(os.listdir(packed)) if f.startswith("val-"))
    raw = (packed / "val.idx").read_bytes()
    offsets = struct.unpack(f"<{len(raw) // 8}Q", raw)
    out = []
    for a, b in zip(offsets, offsets[1:]):
        out += [256] + list(data[a:b]) + [257]
    return out


def test_loss_by_position_equals_transformers(trained):
    d, run_dir, packed, model = trained
    out = d / "loss"
    N, K = 256, 6
    run("eval", "loss", "--checkpoint", str(run_dir), "--seq-len", str(N), "--batches", str(K), "--batch", "4",
        "--device", "cpu", "--out", str(out))
    result = json.loads((out / "loss.json").read_text())["results"]
    assert len(result) == 1
    r = result[0]
    stream = val_stream(packed)
    windows = torch.tensor([stream[w * N:w * N + N + 1] for w in range(K)])
    with torch.no_grad():
        logits = model(input_ids=windows[:, :-1]).logits
    losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1),
                                               reduction="none").view(K, N).double()
    edges, first, last = [], 1, 16
    while first <= N:
        edges.append((first, min(last, N)))
        first, last = last + 1, last * 2
    assert [(b["first"], b["last"]) for b in r["buckets"]] == edges
    for b in r["buckets"]:
        part = losses[:, b["first"] - 1:b["last"]]
        assert b["tokens"] == part.numel()
        assert b["loss"] == pytest.approx(part.mean().item(), abs=2e-5), b
    assert r["tokens"] == K * N == sum(b["tokens"] for b in r["buckets"])
    assert r["loss"] == pytest.approx(losses.mean().item(), abs=2e-5)
    assert r["windows"] == K and r["seq_len"] == N and r["model"]["run"] == "two-stage"


def test_plots_are_written(trained, niah):
    d, run_dir, _, _ = trained
    assert (d / "niah" / "niah.png").read_bytes()[:8] == PNG
    run("eval", "loss", "--checkpoint", str(run_dir), "--batches", "2", "--out", str(d / "loss-plot"))
    assert (d / "loss-plot" / "loss_by_position.png").read_bytes()[:8] == PNG
    out = d / "curves.png"
    r = run("plot", str(d / "run"), "--out", str(out))
    assert "wrote" in r.stdout and out.read_bytes()[:8] == PNG and out.stat().st_size > 20000


def test_lighthouse_attention_is_evaluated_and_too_short_contexts_refused(trained):
    d, run_dir, _, _ = trained
    out = d / "niah-lh"
    run("eval", "niah", "--checkpoint", str(run_dir), "--attention", "lighthouse", "--contexts", "512",
        "--depths", "50", "--trials", "10", "--no-plot", "--out", str(out))
    meta = json.loads((out / "niah.json").read_text())["model"]
    assert meta["attention"] == "lighthouse" and meta["layers"] == "DLD"
    r = run("eval", "niah", "--checkpoint", str(run_dir), "--attention", "lighthouse", "--contexts", "300",
            "--out", str(out), ok=False)
    assert r.returncode == 1 and "context 300 is shorter than Lighthouse attention allows" in r.stderr


def test_without_python_or_matplotlib_the_json_is_written_with_a_warning(trained, tmp_path):
    d, run_dir, _, _ = trained
    env = dict(os.environ, LIGHTHOUSE_PYTHON=str(tmp_path / "no-such-python"))
    r = run("eval", "niah", "--checkpoint", str(run_dir), "--contexts", "300", "--depths", "50", "--trials", "10",
            "--out", str(tmp_path / "a"), env=env)
    assert (tmp_path / "a" / "niah.json").exists() and not (tmp_path / "a" / "niah.png").exists()
    assert "warning: no plot" in r.stderr and "cannot run" in r.stderr
    no_mpl = tmp_path / "python-without-site"
    no_mpl.write_text("#!/bin/sh\nexec python3 -S \"$@\"\n")
    no_mpl.chmod(0o755)
    env = dict(os.environ, LIGHTHOUSE_PYTHON=str(no_mpl))
    r = run("eval", "loss", "--checkpoint", str(run_dir), "--batches", "1", "--out", str(tmp_path / "b"), env=env)
    assert (tmp_path / "b" / "loss.json").exists()
    assert "matplotlib is not installed" in r.stderr
    r = run("plot", str(d / "run"), "--out", str(tmp_path / "c.png"), env=env, ok=False)
    assert r.returncode == 1 and "matplotlib is not installed" in r.stderr
