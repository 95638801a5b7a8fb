"""Where two training runs of one recipe part ways: for each checkpoint step
present in both runs, the largest weight difference and how many entries of
Lighthouse's top-k selection differ, layer by layer, on one fixed batch.

Used to show why a parallel run (DP/CP) drifts from the one-process run after
some steps (README, Multi-GPU): both runs are exported to Hugging Face form
(`lighthouse export`), run on the same random tokens with the "lighthouse"
attention of lighthouse.hf, and each Lighthouse layer's torch.ops.lighthouse.select
is compared.

  LIGHTHOUSE_LIBRARY=build/liblighthouse_ops.so PYTHONPATH=python python3 scripts/selection-diff.py \\
      RUN_A/two-stage RUN_B/two-stage --levels 3 --pool 2 --top-k 512 --dense-layers 0 -1 --json out.json

The arms must have saved checkpoints at the steps of interest (e.g. `--checkpoint.every 1`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arm_a", type=Path)
    ap.add_argument("arm_b", type=Path)
    ap.add_argument("--levels", type=int, required=True)
    ap.add_argument("--pool", type=int, required=True)
    ap.add_argument("--top-k", type=int, required=True)
    ap.add_argument("--dense-layers", type=int, nargs="*", default=[0, -1])
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--lighthouse", default=str(Path(__file__).resolve().parents[1] / "build" / "lighthouse"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import lighthouse.hf
    from safetensors.torch import load_file
    from transformers import AttentionInterface, AttentionMaskInterface, LlamaForCausalLM

    s = lighthouse.hf.register(args.levels, args.pool, args.top_k, args.dense_layers)
    seen: list[torch.Tensor] = []

    def probe(module, q, k, v, mask, dropout=0.0, scaling=None, **kw):
        if not s.is_dense(module.layer_idx, module.config.num_hidden_layers):
            seen.append(torch.ops.lighthouse.select(q.transpose(1, 2), k.transpose(1, 2), args.levels, args.pool,
                                                    args.top_k, v=v.transpose(1, 2)))
        return lighthouse.hf.lighthouse_attention_forward(module, q, k, v, mask, dropout=dropout, scaling=scaling,
                                                          **kw)

    AttentionInterface.register("selection_probe", probe)
    AttentionMaskInterface.register("selection_probe", AttentionMaskInterface._global_mapping["lighthouse"])
    tokens = torch.randint(0, 256, (1, args.seq_len), generator=torch.Generator().manual_seed(5))
    steps = sorted({p.name for p in (args.arm_a / "checkpoints").glob("step_*")}
                   & {p.name for p in (args.arm_b / "checkpoints").glob("step_*")})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for step in steps:
            sel, weights = {}, {}
            for tag, arm in (("a", args.arm_a), ("b", args.arm_b)):
                out = Path(tmp) / tag / step
                subprocess.run([args.lighthouse, "export", str(arm / "checkpoints" / step), str(out)], check=True,
                               capture_output=True)
                weights[tag] = load_file(str(out / "model.safetensors"))
                model = LlamaForCausalLM.from_pretrained(out, attn_implementation="selection_probe",
                                                         dtype=torch.float32)
                seen.clear()
                with torch.no_grad():
                    model(tokens)
                sel[tag] = list(seen)
            dw = max((weights["a"][n] - weights["b"][n]).abs().max().item() for n in weights["a"])
            diff = [int((x != y).sum()) for x, y in zip(sel["a"], sel["b"])]
            rows.append({"step": int(step.split("_")[1]), "max_abs_weight_difference": dw,
                         "differing_entries_per_lighthouse_layer": diff, "entries_per_layer": sel["a"][0].numel()})
            print(f"{step}: max |dW| {dw:.2e}; differing selected entries per Lighthouse layer {diff} "
                  f"of {sel['a'][0].numel()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
