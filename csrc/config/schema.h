/*
 * The trainer's configuration, its schema: the structs (model shape,
 * Lighthouse geometry, training, optimizer, stage switch, data, checkpoints,
 * evaluation, logging), the one table of fields that every reader and
 * writer walks, equality, and the values derived from a config.
 *
 * Torch-free on purpose (fuzzed: tests/fuzz/config_fuzz.cpp; built without
 * torch: csrc/config/CMakeLists.txt). Every key has one type (int, float,
 * bool, string, int list); reading and writing are in toml_io.h, the rules
 * in validate.h, all three behind config.h.
 *
 * Invariant: fields() lists every member of Config exactly once, so
 * parse_toml, apply_override, to_toml, equality and --help cannot disagree
 * about which keys exist or what type they have.
 */
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lighthouse::config {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Llama-3 style byte-level decoder (csrc/model/llama.h).
struct ModelConfig {
  int64_t d_model = 128;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t kv_heads = 4;      // GQA: heads % kv_heads == 0
  int64_t head_dim = 0;      // 0: d_model / heads
  int64_t ffn_hidden = 384;  // SwiGLU hidden size, explicit
  // 256 bytes + BOS/EOS/PAD = 259 real tokens, padded to a multiple of 64.
  int64_t vocab_size = 320;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
  // Attention of the layers not in dense_layers: "lighthouse" or "dense".
  std::string attention = "lighthouse";
  // Layers that stay dense throughout; negative indices count from the end.
  std::vector<int64_t> dense_layers = {0, 1, -2, -1};
};

// Geometry of the Lighthouse layers (shared/LIGHTHOUSE.md).
struct LighthouseConfig {
  int64_t levels = 3;
  int64_t pool = 4;
  int64_t top_k = 1536;
  std::string scorer = "norm";   // norm | dilated
  int64_t dilation = 4;          // dilated scorer only
  std::string backend = "auto";  // inner SDPA: auto | cudnn | flash | efficient | math
};

struct TrainConfig {
  int64_t seq_len = 4096;
  int64_t batch = 1;               // sequences per micro-batch
  int64_t grad_accum = 1;          // micro-batches per optimizer step
  int64_t steps = 100;             // optimizer steps
  int64_t seed = 0;                // weights and data order
  std::string device = "auto";     // auto | cpu | cuda | cuda:N
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
  bool activation_checkpointing = false;
  // Fused kernels (csrc/ops/fused.h) for norms, RoPE, SwiGLU and the loss;
  // off until measured faster on the GPU (docs/benchmarks.md).
  bool fused = false;
  // With fused and activation_checkpointing: the activation memory budget in
  // GiB that chooses each layer's recompute (csrc/train/memory_plan.h);
  // 0: 90% of the device's memory (CUDA), no limit on CPU.
  double memory_budget_gb = 0;
  bool deterministic = false;
  int64_t threads = 0;             // CPU threads; 0: all cores (2 in deterministic mode)
  std::string nonfinite = "stop";  // stop | skip: a step whose loss or gradients are not finite
  bool baseline = false;           // also run a dense-only baseline and compare
  double max_seconds = 0;          // stop (with a checkpoint) after this wall time; 0: no limit
  std::string run_dir = "runs/default";
};

struct OptimConfig {
  double lr = 2e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;        // decoupled (AdamW), on matrices only
  double grad_clip = 1.0;           // global grad-norm clip; 0: off
  int64_t warmup_steps = 0;         // linear warm-up from 0
  std::string schedule = "cosine";  // cosine | linear | constant, after warm-up
  double min_lr_ratio = 0.1;        // final lr = lr * min_lr_ratio (cosine, linear)
};

// The stage switch: after switch_step(config) optimizer steps every
// Lighthouse layer becomes dense for the rest of the run.
struct Stage2Config {
  // -1: unset (start_fraction decides); 0: no switch; > 0: the switch after
  // this many steps (wins over start_fraction).
  int64_t start_step = -1;
  // The switch after round(start_fraction * train.steps) steps (nearest
  // step, a half rounded down: 0.75 of 2 steps is step 1), so a preset keeps
  // its recipe when --steps changes. 0: unused (no switch unless start_step).
  double start_fraction = 0;
};

struct DataConfig {
  std::string dir = "data/packed";  // packed corpus (packed from `corpus` if missing), as `lighthouse data` writes it
  std::string corpus = "";          // raw text corpus; "": the project's default corpus
};

struct CheckpointConfig {
  int64_t every = 0;  // steps between checkpoints; 0: only at the switch and the end
  int64_t keep = 2;   // newest complete checkpoints kept (>= 1)
};

struct EvalConfig {
  int64_t every = 0;    // steps between validation passes; 0: only at the end
  int64_t batches = 4;  // validation micro-batches per pass
  // The passkey test (csrc/eval) inside training: every niah_every steps and
  // at the end of the run; 0: off.
  int64_t niah_every = 0;
  int64_t niah_trials = 20;                // trials per (context, depth) cell
  std::vector<int64_t> niah_contexts = {};  // empty: 4K, 8K, ... up to train.seq_len, plus train.seq_len
};

struct LogConfig {
  int64_t every = 10;  // steps between progress lines when stderr is not a terminal
};

// Data and context parallelism (shared/PARALLEL.md, csrc/dist/parallel.h):
// dp * cp must equal the number of processes torchrun starts (checked when
// they start); ranks are laid out cp-fastest.
struct ParallelConfig {
  int64_t dp = 1;          // data-parallel replicas
  int64_t cp = 1;          // context-parallel ranks per replica: the sequence in 2*cp head-tail chunks
  double timeout_s = 600;  // store, rendezvous and collectives: a dead or stalled rank fails the others after this
};

struct Config {
  ModelConfig model;
  LighthouseConfig lighthouse;
  TrainConfig train;
  OptimConfig optim;
  Stage2Config stage2;
  DataConfig data;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LogConfig log;
  ParallelConfig parallel;
};

// --- The field table --------------------------------------------------------

enum class Kind { kInt, kFloat, kBool, kString, kIntList };

// One key: [section] key, its type, its --help line and where it lives.
struct Field {
  const char* section;
  const char* key;
  Kind kind;
  const char* help;
  void* (*get)(Config&);  // the member, typed by `kind`

  std::string dotted() const { return std::string(section) + "." + key; }
  // The member as its C++ type: int64_t, double, bool, std::string or
  // std::vector<int64_t>, as `kind` says.
  template <typename T>
  T& ref(Config& c) const {
    return *static_cast<T*>(get(c));
  }
  template <typename T>
  const T& ref(const Config& c) const {
    return *static_cast<const T*>(get(const_cast<Config&>(c)));
  }
};

// Every key, in [section] order as to_toml writes them.
const std::vector<Field>& fields();

// "integer", "float", "bool", "string", "integer list".
const char* kind_name(Kind k);

// Field-by-field equality (C++17 has no defaulted operator==).
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

// --- Derived values (of a valid config) ------------------------------------

int64_t head_dim(const ModelConfig& m);
// Sorted, de-duplicated, non-negative indices of the always-dense layers.
std::vector<int64_t> resolved_dense_layers(const ModelConfig& m);
// Whether any layer runs Lighthouse at the start of a run.
bool uses_lighthouse(const Config& c);
// The number of steps before the stage switch; 0: no switch. An explicit
// stage2.start_step (>= 0) wins, else round(start_fraction * train.steps)
// with a half rounded down; 0 for a fraction outside (0, 1) or no steps.
// validate() makes sure a non-zero result is in [1, train.steps - 1].
int64_t switch_step(const Config& c);
// lighthouse min_sequence_length for the configured geometry:
// top_k * pool^(levels-1).
int64_t min_seq_len(const LighthouseConfig& l);

}  // namespace lighthouse::config
