/*
 * `lighthouse train`: one training run, and the main job (the two-stage
 * recipe plus a dense baseline of the same token budget, compared).
 *
 * A run: set up the device and determinism, pack the corpus if needed,
 * build the model (or load a checkpoint), then per step: lr from the
 * schedule, grad_accum micro-batches of forward/backward, the global grad
 * norm, the non-finite guard (before anything changes), clipping, AdamW;
 * metrics, validation and checkpoints at their intervals. After
 * config::switch_step(cfg) steps every Lighthouse layer becomes dense in the same run
 * (same optimizer state, same data order).
 *
 * Invariants: the data order depends only on train.seed and the step; the
 * weights only on train.seed; so a run resumed from its checkpoint at step
 * K reproduces the uninterrupted run's losses bit for bit (same machine,
 * deterministic mode for CPU), and the dense baseline sees exactly the
 * batches the two-stage run sees.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "model/llama.h"

namespace lighthouse::data {
class Loader;
}

namespace lighthouse::train {

class AdamW;

// A step whose loss or gradients are not finite, with train.nonfinite = stop.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RunOptions {
  std::string label = "train";  // progress prefix
  std::string run_dir;          // metrics and checkpoints; "" = train.run_dir
  std::string resume;           // checkpoint (or run) directory to resume; "" = fresh
  int64_t stop_after = 0;       // stop (with a checkpoint) after this step; 0: train.steps
  bool quiet = false;           // no progress lines (tests)
  // Test hook, after the backward pass of each step (before the guard).
  std::function<void(int64_t step, model::Llama& model)> after_backward;
};

struct RunResult {
  std::string run_dir;
  std::string label;
  std::string attention;         // "lighthouse", "dense" or "lighthouse -> dense"
  int64_t first_step = 0;        // first step trained by this call
  int64_t last_step = 0;         // last step trained
  std::vector<double> losses;    // training loss of steps first_step..last_step
  std::vector<int> stages;       // 1 or 2, same indexing
  int64_t switch_step = 0;       // steps of Stage 1 when the switch happened in this call; 0: none
  double switch_val_before = 0;  // validation loss at the switch with Lighthouse layers,
  double switch_val_after = 0;   // and with the same weights all dense
  double final_val_loss = 0;
  double wall_seconds = 0;         // whole run (set-up, training, evaluation, checkpoints)
  double train_seconds = 0;        // the training steps only
  double stage1_tokens_per_s = 0;  // mean over the Stage-1 steps (0 if none)
  double stage2_tokens_per_s = 0;  // mean over the dense steps
  int64_t tokens = 0;              // tokens trained in this call
  int64_t skipped_steps = 0;
  int64_t peak_memory_bytes = 0;
  bool time_limited = false;
  std::string last_checkpoint;
};

// One run. The constructor validates the config, sets up the device,
// packs the corpus if needed and builds the model, optimizer and loader (or
// restores them from options.resume); run() trains. Both throw
// NonFiniteError (train.nonfinite = stop), CheckpointError, ConfigError or
// c10::Error with a message that says what is wrong. After a throw from
// run() the trainer still holds the state at the failure (tests look).
class Trainer {
 public:
  Trainer(const config::Config& config, const RunOptions& options);
  ~Trainer();
  RunResult run();

  const config::Config& config() const;
  model::Llama& model();
  const AdamW& optimizer() const;
  const data::Loader& loader() const;
  int64_t step() const;  // training steps completed

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Trainer(config, options).run().
RunResult run_training(const config::Config& config, const RunOptions& options);

// Mean validation loss of `model` over the first `batches` batches of the
// validation loader (reset first: the same batches every call).
double evaluate(const model::Llama& model, data::Loader& val, int64_t batches);

// The run directory name of a config: "two-stage", "lighthouse" or "dense".
std::string run_label(const config::Config& config);

// Packs the corpus into data.dir unless it is packed already.
void ensure_packed(const config::Config& config);

}  // namespace lighthouse::train
