/*
 * The evaluation harness over a recipe study (train/study.h): after the
 * arms have trained, `lighthouse study` evaluates
 *   - every complete arm's final checkpoint (dense attention: the model the
 *     recipe hands to its user), and
 *   - every switching arm's Stage-1 checkpoint at its switch step twice:
 *     with its Lighthouse layers ("lighthouse-at-switch", the model Stage 1
 *     trained) and with the same weights all dense ("dense-at-switch", what
 *     the dense resume starts from),
 * each with the passkey test (EVAL.md section 3) and loss by position
 * (section 2), and draws the study's figures.
 *
 * Output, in the study directory:
 *   eval/<arm>/<point>/niah.json, niah.png, loss.json, loss_by_position.png
 *       point = final | lighthouse-at-switch | dense-at-switch
 *   eval.json, eval.md      one row per evaluation: arm, point, step,
 *                           attention, passkey mean accuracy and p(right
 *                           digit), held-out loss, loss in the last
 *                           position bucket, seconds
 *   curves.png              validation and training loss of every arm vs
 *                           tokens and vs training wall-clock
 *   loss_by_position.png    every arm's final model and the Lighthouse
 *                           model at each switch, one line each (its data:
 *                           eval/loss_by_position.json)
 * Resumable: an evaluation whose two JSON files exist is read back, not rerun.
 * The same protocol (contexts, depths, trials, seed) and the same validation
 * windows are used for every evaluation, so rows compare directly.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/model_adapter.h"
#include "train/metrics.h"

namespace lighthouse::eval {

struct StudyEvalOptions {
  std::string study_dir;          // holds study.json (train::summarize_study)
  DeviceOptions device;
  std::vector<int64_t> contexts;  // empty: default_contexts(train.seq_len)
  int64_t trials = 20;
  uint64_t seed = 0;
  int64_t loss_windows = 0;       // 0: every validation window
  bool quiet = false;
};

struct StudyEval {
  Json json;          // eval.json
  std::string table;  // eval.md's table
};

// Throws std::runtime_error if study.json is missing or lists no complete arm.
StudyEval evaluate_study(const StudyEvalOptions& options);

}  // namespace lighthouse::eval
