/*
 * The trainer's configuration: model shape, Lighthouse geometry, training,
 * optimizer, stage switch, data, checkpoints, evaluation, logging.
 *
 * Torch-free on purpose (it is fuzzed: tests/fuzz/config_fuzz.cpp). Sources,
 * in order: a named preset (configs/<name>.toml, embedded at build time) or a
 * TOML file, then `--section.key value` overrides. Every key has one type
 * (int, float, bool, string, int list); a float key also takes an integer.
 * Unknown sections or keys, wrong types and invalid values are errors whose
 * message names the key and says what to change (ConfigError).
 *
 * Invariants: to_toml(c) parses back to a Config equal to c (round trip);
 * validate() accepts exactly the configs the trainer can run, so a run never
 * fails on its config after start-up.
 */
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
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
};

struct LogConfig {
  int64_t every = 10;  // steps between progress lines when stderr is not a terminal
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
};

// Field-by-field equality (C++17 has no defaulted operator==).
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

// Parses TOML text (only the keys it names change `base`). `origin` names
// the source in messages. Throws ConfigError; does not validate.
Config parse_toml(const std::string& text, const std::string& origin, Config base = {});

// Applies one override, e.g. ("model.layers", "8"). Lists: "0,1,-1" or
// "[0, 1, -1]". Throws ConfigError; does not validate.
void apply_override(Config& config, const std::string& dotted_key, const std::string& value);

// Every key, written as TOML; parse_toml(to_toml(c)) == c.
std::string to_toml(const Config& config);

// The names of the presets built into the program, and a preset's TOML.
std::vector<std::string> preset_names();
const std::string& preset_text(const std::string& name);  // throws ConfigError naming the presets
Config load_preset(const std::string& name);

// Throws ConfigError with every problem found, one per line, each saying
// which key to change.
void validate(const Config& config);

// Derived values (valid config).
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
// lighthouse min_sequence_length for the configured geometry.
int64_t min_seq_len(const LighthouseConfig& l);

// One line per key: "section.key  type  default-or-current  help", for --help.
std::string describe_keys(const Config& config);

}  // namespace lighthouse::config
