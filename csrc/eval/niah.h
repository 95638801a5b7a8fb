/*
 * The needle-in-a-haystack passkey test (shared/EVAL.md section 3): runs
 * the grid of niah_prompt.h through a model and scores it.
 *
 * The model is behind NextTokenModel, so a rigged test double and the real
 * model (LlamaNextToken, model_adapter.h) share this very code path.
 *
 * Score of a trial: the ten digit tokens' logits at the last position;
 * correct when their argmax (the first one on a tie) is the passkey;
 * p_correct = softmax over the ten of the passkey's logit. A cell's accuracy
 * is correct / trials and its p_correct the trials' mean; the grid's means
 * are over cells (every cell has the same number of trials). Chance: 0.1.
 *
 * Prompts of one context are scored in batches of `batch` rows (the same
 * length, so no padding); the result does not depend on the batch size
 * beyond float rounding of the model.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/niah_prompt.h"

namespace lighthouse::eval {

using Json = nlohmann::ordered_json;

// What the harness asks of a model.
class NextTokenModel {
 public:
  virtual ~NextTokenModel() = default;
  // The next-token logits after the last position of each prompt.
  // tokens: int64 [B, N] on CPU. Returns float32 [B, V] on CPU, V > '9'.
  virtual at::Tensor last_logits(const at::Tensor& tokens) = 0;
};

struct NiahCell {
  int64_t context = 0, depth = 0, trials = 0, correct = 0;
  double accuracy = 0, p_correct = 0;
  std::vector<uint64_t> seeds;         // per trial: the filler's seed
  std::vector<int> digits;             // the passkey
  std::vector<int> predicted;          // the argmax digit
  std::vector<double> p_trials;        // p_correct of the trial
  std::vector<int64_t> needle_tokens;  // token index of the needle's start
};

struct NiahResult {
  NiahProtocol protocol;
  std::vector<NiahCell> cells;  // contexts outer, depths inner, in the protocol's order
  double mean_accuracy = 0, mean_p_correct = 0;
  int64_t prompts = 0, prompt_tokens = 0;
  double seconds = 0;
};

struct NiahOptions {
  int64_t batch = 0;     // prompts per model call; 0: max(1, 65536 / context)
  std::string label;     // progress prefix, e.g. "niah"; "" = no progress line
  bool quiet = false;    // no progress line
};

// Validates the protocol (throws std::invalid_argument) and runs the grid.
NiahResult run_niah(NextTokenModel& model, const NiahProtocol& protocol, const NiahOptions& options = {});

// The JSON of a result: "protocol" (every parameter and the generator's
// name), "cells" (per cell its scores and per-trial seeds, digits,
// predictions, p_correct and needle position), the means, and `meta` (what
// was evaluated: checkpoint, step, attention, device, ...) as "model".
Json niah_json(const NiahResult& result, const Json& meta);
// Reads "protocol" back from such JSON (the prompts can then be rebuilt).
NiahProtocol protocol_from_json(const Json& j);

// One line: "NIAH mean accuracy 0.100 (p_correct 0.101) over 3 contexts x 11
// depths x 10 trials".
std::string niah_summary(const NiahResult& result);

}  // namespace lighthouse::eval
