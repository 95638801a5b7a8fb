/*
 * Evaluation inside a training run, so that a run directory holds its
 * passkey and loss-by-position results next to its metrics:
 *
 *   <run_dir>/niah.jsonl            one line per passkey pass (step, stage,
 *                                   attention, mean accuracy and p_correct)
 *   <run_dir>/eval/niah_step_N.json the full result of each pass
 *   <run_dir>/niah.json, niah.png   the end-of-run pass
 *   <run_dir>/loss.json, loss_by_position.png
 *                                   end of run: loss by position over the
 *                                   validation windows the trainer validates
 *                                   on (eval.batches x train.batch windows)
 *
 * The passkey test runs when eval.niah_every > 0: after every multiple of it
 * and at the end, on the model as it is (Lighthouse layers during Stage 1,
 * so its contexts respect the geometry's minimum). Loss by position always
 * runs at the end. Neither draws from any RNG nor touches the weights:
 * training continues bit for bit as it would without them.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "eval/loss.h"
#include "eval/niah.h"
#include "model/llama.h"
#include "train/trainer.h"

namespace lighthouse::train {
class JsonlWriter;
}

namespace lighthouse::eval {

struct NiahSummary {
  int64_t step = 0;
  double accuracy = 0, p_correct = 0;
  int64_t prompts = 0;
  double seconds = 0;
};

class TrainingEval {
 public:
  // resume_step: the step a resumed run continues from (niah.jsonl keeps its
  // lines up to it), -1 for a fresh run. note: where messages go. Throws
  // config::ConfigError naming eval.niah_contexts if a prompt cannot fit.
  TrainingEval(const config::Config& config, std::string run_dir, int64_t resume_step, std::string label,
               std::function<void(const std::string&)> note, bool quiet);
  ~TrainingEval();

  bool niah_enabled() const { return config_.eval.niah_every > 0; }
  // A periodic pass is due after `step` (not counting the end of the run).
  bool niah_due(int64_t step) const { return niah_enabled() && step % config_.eval.niah_every == 0; }
  // One passkey pass on `model` after `step`; `final` also writes niah.json
  // and niah.png.
  NiahSummary niah(const model::Llama& model, int64_t step, int stage, bool final);
  // Loss by position at the end of the run: loss.json and its plot.
  LossResult final_loss(const model::Llama& model, int64_t step);

  const NiahProtocol& protocol() const { return protocol_; }

 private:
  config::Config config_;
  std::string run_dir_, label_;
  std::function<void(const std::string&)> note_;
  bool quiet_;
  NiahProtocol protocol_;
  std::unique_ptr<train::JsonlWriter> log_;
};

// The trainer's observer (train::RunOptions::observer) that runs a
// TrainingEval: the periodic passkey passes, and at the end of the run the
// final passkey pass (filling RunResult::niah_*) and loss by position.
// Progress lines go to stderr unless quiet.
train::ObserverFactory training_observer();

}  // namespace lighthouse::eval
