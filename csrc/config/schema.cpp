/*
 * The field table, equality and the derived values (schema.h).
 */
#include "config/schema.h"

#include <cmath>
#include <set>

#include "kernels/geometry.h"

namespace lighthouse::config {

#define LH_FIELD(sec, name, kind, help)                                            \
  Field {                                                                          \
#sec, #name, Kind::kind, help, [](Config & c) -> void* { return &c.sec.name; } \
  }

const std::vector<Field>& fields() {
  static const std::vector<Field> f = {
      LH_FIELD(model, d_model, kInt, "hidden size"),
      LH_FIELD(model, layers, kInt, "decoder layers"),
      LH_FIELD(model, heads, kInt, "query heads"),
      LH_FIELD(model, kv_heads, kInt, "key/value heads (GQA); must divide heads"),
      LH_FIELD(model, head_dim, kInt, "head dim; 0: d_model / heads"),
      LH_FIELD(model, ffn_hidden, kInt, "SwiGLU hidden size"),
      LH_FIELD(model, vocab_size, kInt, "vocabulary incl. padding (>= 259: 256 bytes + BOS, EOS, PAD)"),
      LH_FIELD(model, rope_theta, kFloat, "RoPE base"),
      LH_FIELD(model, norm_eps, kFloat, "RMSNorm epsilon"),
      LH_FIELD(model, init_std, kFloat, "std of the normal weight init"),
      LH_FIELD(model, attention, kString, "attention of the non-dense layers: lighthouse | dense"),
      LH_FIELD(model, dense_layers, kIntList, "layers that always run dense SDPA; negative counts from the end"),
      LH_FIELD(lighthouse, levels, kInt, "pyramid levels L (>= 2)"),
      LH_FIELD(lighthouse, pool, kInt, "pooling factor p (power of two >= 2)"),
      LH_FIELD(lighthouse, top_k, kInt, "top-k budget (multiple of 128)"),
      LH_FIELD(lighthouse, scorer, kString, "norm | dilated"),
      LH_FIELD(lighthouse, dilation, kInt, "dilated scorer's r (power of two)"),
      LH_FIELD(lighthouse, backend, kString, "inner SDPA: auto | cudnn | flash | efficient | math"),
      LH_FIELD(train, seq_len, kInt, "context length in tokens"),
      LH_FIELD(train, batch, kInt, "sequences per micro-batch"),
      LH_FIELD(train, grad_accum, kInt, "micro-batches per optimizer step"),
      LH_FIELD(train, steps, kInt, "optimizer steps"),
      LH_FIELD(train, seed, kInt, "seed of the weights and the data order"),
      LH_FIELD(train, device, kString, "auto | cpu | cuda | cuda:N"),
      LH_FIELD(train, precision, kString, "auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16"),
      LH_FIELD(train, activation_checkpointing, kBool, "recompute activations in backward (fused: per layer, by memory budget)"),
      LH_FIELD(train, fused, kBool, "fused kernels for norms, RoPE, SwiGLU, the loss (csrc/ops/fused.h)"),
      LH_FIELD(train, memory_budget_gb, kFloat, "fused checkpointing's memory budget in GiB; 0: 90% of the GPU"),
      LH_FIELD(train, deterministic, kBool, "bit-exact reruns (see README)"),
      LH_FIELD(train, threads, kInt, "CPU threads; 0: all cores (2 when deterministic)"),
      LH_FIELD(train, nonfinite, kString, "non-finite loss or gradients: stop | skip"),
      LH_FIELD(train, baseline, kBool, "also train a dense-only baseline and compare"),
      LH_FIELD(train, max_seconds, kFloat, "stop with a checkpoint after this wall time; 0: none"),
      LH_FIELD(train, run_dir, kString, "output directory"),
      LH_FIELD(optim, lr, kFloat, "peak learning rate"),
      LH_FIELD(optim, beta1, kFloat, "AdamW beta1"),
      LH_FIELD(optim, beta2, kFloat, "AdamW beta2"),
      LH_FIELD(optim, eps, kFloat, "AdamW epsilon"),
      LH_FIELD(optim, weight_decay, kFloat, "decoupled weight decay (matrices only)"),
      LH_FIELD(optim, grad_clip, kFloat, "global grad-norm clip; 0: off"),
      LH_FIELD(optim, warmup_steps, kInt, "linear warm-up steps"),
      LH_FIELD(optim, schedule, kString, "after warm-up: cosine | linear | constant"),
      LH_FIELD(optim, min_lr_ratio, kFloat, "final lr / peak lr (cosine, linear)"),
      LH_FIELD(stage2, start_step, kInt, "steps of Stage 1, then every layer is dense; 0: no switch; -1: by start_fraction"),
      LH_FIELD(stage2, start_fraction, kFloat, "Stage 1 as a fraction of train.steps (nearest step, half down); 0: unused"),
      LH_FIELD(data, dir, kString, "packed corpus directory (packed automatically if missing)"),
      LH_FIELD(data, corpus, kString, "raw text corpus to pack; empty: the default corpus"),
      LH_FIELD(checkpoint, every, kInt, "steps between checkpoints; 0: at the switch and the end only"),
      LH_FIELD(checkpoint, keep, kInt, "newest checkpoints kept"),
      LH_FIELD(eval, every, kInt, "steps between validation passes; 0: at the end only"),
      LH_FIELD(eval, batches, kInt, "validation micro-batches per pass"),
      LH_FIELD(eval, niah_every, kInt, "steps between passkey (NIAH) tests, also run at the end; 0: off"),
      LH_FIELD(eval, niah_trials, kInt, "NIAH trials per (context, depth) cell"),
      LH_FIELD(eval, niah_contexts, kIntList, "NIAH prompt lengths; empty: 4K, 8K, ... up to train.seq_len, plus it"),
      LH_FIELD(log, every, kInt, "steps between progress lines when not on a terminal"),
      LH_FIELD(parallel, dp, kInt, "data-parallel replicas; dp * cp = the processes torchrun starts"),
      LH_FIELD(parallel, cp, kInt, "context-parallel ranks per replica (the sequence in 2*cp head-tail chunks)"),
      LH_FIELD(parallel, timeout_s, kFloat, "seconds before a dead or stalled rank makes the others fail"),
  };
  return f;
}

#undef LH_FIELD

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kInt:
      return "integer";
    case Kind::kFloat:
      return "float";
    case Kind::kBool:
      return "bool";
    case Kind::kString:
      return "string";
    case Kind::kIntList:
      return "integer list";
  }
  return "?";
}

bool operator==(const Config& a, const Config& b) {
  for (const Field& f : fields()) {
    bool same = false;
    switch (f.kind) {
      case Kind::kInt:
        same = f.ref<int64_t>(a) == f.ref<int64_t>(b);
        break;
      case Kind::kFloat:
        same = f.ref<double>(a) == f.ref<double>(b);
        break;
      case Kind::kBool:
        same = f.ref<bool>(a) == f.ref<bool>(b);
        break;
      case Kind::kString:
        same = f.ref<std::string>(a) == f.ref<std::string>(b);
        break;
      case Kind::kIntList:
        same = f.ref<std::vector<int64_t>>(a) == f.ref<std::vector<int64_t>>(b);
        break;
    }
    if (!same) return false;
  }
  return true;
}

int64_t head_dim(const ModelConfig& m) { return m.head_dim > 0 ? m.head_dim : (m.heads > 0 ? m.d_model / m.heads : 0); }

std::vector<int64_t> resolved_dense_layers(const ModelConfig& m) {
  std::set<int64_t> s;
  for (const int64_t i : m.dense_layers) {
    const int64_t j = i < 0 ? i + m.layers : i;
    if (j >= 0 && j < m.layers) s.insert(j);
  }
  return {s.begin(), s.end()};
}

bool uses_lighthouse(const Config& c) {
  return c.model.attention == "lighthouse" &&
         static_cast<int64_t>(resolved_dense_layers(c.model).size()) < c.model.layers;
}

int64_t switch_step(const Config& c) {
  if (c.stage2.start_step >= 0) return c.stage2.start_step;
  const double f = c.stage2.start_fraction;
  if (!(f > 0 && f < 1) || c.train.steps < 1) return 0;
  // Nearest step, a half rounded down: f * steps < steps, so no overflow.
  return static_cast<int64_t>(std::ceil(f * static_cast<double>(c.train.steps) - 0.5));
}

int64_t min_seq_len(const LighthouseConfig& l) {
  return lighthouse::min_seq_len(static_cast<int32_t>(l.levels), ceil_log2(l.pool), l.top_k);
}

}  // namespace lighthouse::config
