/*
 * `lighthouse train`: one training run, and the main job (the two-stage
 * recipe plus a dense baseline of the same token budget, compared).
 *
 * Layers: the Trainer is the loop's bookkeeping (set-up, resume, schedule,
 * the stage switch, validation, checkpoints, metrics, time limit); each
 * optimizer step is a TrainStep (step.h: micro-batches, backward, gradient
 * reduction hook, grad norm, non-finite guard, AdamW). The model (llama.h)
 * gets its attention plan and, with train.activation_checkpointing, its
 * block wrapper from here. After config::switch_step(cfg) steps every
 * Lighthouse layer becomes dense in the same run (same optimizer state,
 * same data order).
 *
 * Invariants: the data order depends only on train.seed and the step; the
 * weights only on train.seed; so a run resumed from its checkpoint at step
 * K reproduces the uninterrupted run's losses bit for bit (same machine,
 * deterministic mode for CPU), and the dense baseline sees exactly the
 * batches the two-stage run sees. Every metrics and validation line is
 * written to the file (one write(2), no user-space buffer) before the step
 * that reports it ends, so a killed run loses nothing it reported.
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
#include "train/checkpoint.h"
#include "train/step.h"

namespace lighthouse::data {
class Loader;
}

namespace lighthouse::train {

class AdamW;

// A step whose loss or gradients are not finite, with train.nonfinite = stop.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RunResult;

// Work that runs inside a training run on the primary process, between
// steps (evaluation: eval/in_training.h). It must not draw from any RNG or
// change the weights, so that training continues bit for bit as without it.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  // After step `step`'s bookkeeping (metrics, validation, checkpoint).
  virtual void after_step(const model::Llama& model, int64_t step, int stage) {}
  // Once train.steps are done (not when stopped early); may fill result's
  // evaluation fields.
  virtual void at_end(const model::Llama& model, int64_t step, int stage, RunResult& result) {}
};

// Builds a run's observer once the run directory and the step it resumes
// from (-1: fresh) are known. label: the progress prefix; note: prints a
// line between the run's progress lines (nothing when quiet).
using ObserverFactory = std::function<std::unique_ptr<RunObserver>(
    const config::Config& config, const std::string& run_dir, int64_t resume_step, const std::string& label,
    bool quiet, std::function<void(const std::string&)> note)>;

struct RunOptions {
  std::string label = "train";  // progress prefix
  std::string run_dir;          // metrics and checkpoints; "" = train.run_dir
  std::string resume;           // checkpoint, checkpoints or run directory to resume; "" = fresh
  int64_t stop_after = 0;       // stop (with a checkpoint) after this step; 0: train.steps
  bool quiet = false;           // no progress lines (tests)

  // Data and context parallelism (a wrapper sets these, csrc/dist/
  // train_parallel.h; the defaults are one process).
  int64_t rank = 0, world = 1;            // this process of the job: checkpoints hold one RankState per process
  int64_t data_rank = 0, data_world = 1;  // the loaders take data_rank's rows of data_world (the DP slice)
  std::shared_ptr<StepReducer> reducer;   // null: one process
  bool primary = true;                    // writes metrics, validation lines, config and checkpoints
  // Every process's RankState for a checkpoint, from this one's (a
  // collective in data parallelism); unset: {local}.
  std::function<std::vector<RankState>(const RankState& local)> gather_rank_states;
  // The model's attention plan from the config's (e.g. its context-parallel
  // forms); unset: the config's plan.
  std::function<model::AttentionPlan(const model::AttentionPlan&)> adapt_plan;
  // Whether any process says true (a collective, called by every process at
  // the same step): the time limit stops every process at the same step.
  // Unset: this process's answer.
  std::function<bool(bool)> any_process;

  // Evaluation inside the run (unset: none).
  ObserverFactory observer;

  // Test hooks: after the backward passes of each step (before reduction
  // and the guard), and after each step's bookkeeping (its metrics line
  // written, its validation and checkpoint done).
  AfterBackward after_backward;
  std::function<void(const StepStats& step)> after_step;
};

struct RunResult {
  std::string run_dir;
  std::string label;
  std::string attention;         // "lighthouse", "dense" or "lighthouse -> dense"
  int64_t first_step = 0;        // first step trained by this call (after with_history: 1)
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
  // End-of-run passkey test (eval.niah_every > 0): mean accuracy and mean
  // probability of the right digit; -1: not run.
  double niah_accuracy = -1, niah_p_correct = -1;
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

// `r` completed with the steps before r.first_step as <r.run_dir>/metrics.jsonl
// and val.jsonl record them (a resumed run's earlier part): losses and
// stages from step 1, the switch and its two validation losses if it
// happened before, the final validation loss if no step was trained.
// Returns r unchanged if the files hold nothing earlier.
RunResult with_history(RunResult r);

// The attention plan of a config at a step: the config's plan, all dense
// after config::switch_step(config) steps.
model::AttentionPlan plan_at(const config::Config& config, int64_t completed_steps);

// The run directory name of a config: "two-stage", "lighthouse" or "dense".
std::string run_label(const config::Config& config);

// Packs the corpus into data.dir unless it is packed already.
void ensure_packed(const config::Config& config);

}  // namespace lighthouse::train
