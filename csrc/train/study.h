/*
 * `lighthouse study`: the paper's recipe as one resumable command. From one
 * base config (model with Lighthouse layers, train.steps = S, the schedule;
 * the base's own stage2 setting is ignored) and switch fractions f
 * (default the paper's 0.625, 0.6875, 0.75), it runs
 *   - dense:        every layer dense, steps 1..S;
 *   - stage1:       ONE Lighthouse run, steps 1..K_max, with a checkpoint at
 *                   every switch step K_f = config::switch_step(f of S),
 *                   snapshotted (hard links) into branches/step_K;
 *   - switch-<f>:   per fraction, the dense tail K_f+1..S resumed from the
 *                   Stage-1 checkpoint at K_f (same weights, optimizer state,
 *                   data position and RNG): the two-stage run switching at K_f
 *                   without retraining Stage 1;
 * all with the same seed, so every arm sees the same batch at every step
 * (weights at step 0 and data order depend only on train.seed).
 *
 * Resumable and idempotent: every arm continues from its newest checkpoint
 * and finished arms are skipped, so the study can run in pieces
 * (time_limit_s stops the running arm with a checkpoint; exit code 3 from the
 * command) or in the background. Re-running with another config or other
 * fractions in the same directory is refused.
 *
 * Output directory:
 *   study.toml                 the base config (the study's identity)
 *   dense/ stage1/ switch-<f>/ run directories (metrics.jsonl, val.jsonl, checkpoints/)
 *   switch-<f>/switch.json     validation loss at K_f of the Stage-1 weights with
 *                              Lighthouse layers and with the same weights dense
 *   branches/step_<K>/         the Stage-1 checkpoints the tails branch from
 *   arms/<arm>/                per arm (dense, switch-<f>) its curves over steps
 *                              1..S as one run: metrics.jsonl and val.jsonl with
 *                              elapsed_s = cumulative training-step seconds
 *                              (for `lighthouse plot`-style figures)
 *   study.json, study.md       per arm: training loss per step, validation loss
 *                              at every eval.every step, at the switch both ways
 *                              and at S, training-step wall-clock, the switch's
 *                              jump and recovery (recipe.h definitions, against
 *                              the dense arm), final validation loss at equal tokens
 * Wall-clock of an arm = the seconds of its training steps (evaluation and
 * checkpoints excluded); a switching arm's = Stage-1 steps 1..K_f + its tail.
 * The first step of every process segment (which includes one-time set-up)
 * is counted at the median step time of its attention kind in that arm
 * ("train_seconds"; "train_seconds_raw" keeps the measured sum).
 *
 * Evaluation harness (issue 9) and `lighthouse plot`: not in this build's
 * main yet; study.json lists each arm's final checkpoint and the Stage-1
 * checkpoint at its switch ("checkpoints") for them, and arms/ holds the
 * curves in the run-directory format the plot reads.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "train/metrics.h"

namespace lighthouse::model {
class Llama;
}

namespace lighthouse::train {

struct StudyPlan {
  int64_t steps = 0;                  // S
  std::vector<double> fractions;      // ascending, distinct
  std::vector<int64_t> switch_steps;  // K_f, same order
  config::Config base, dense, stage1;
  std::vector<config::Config> tails;  // stage2.start_step = K_f
  int64_t total_steps() const;        // of all arms: S + K_max + sum(S - K_f)
};

// Throws config::ConfigError naming the problem: no Lighthouse layer in the
// base, a fraction outside (0, 1), duplicate fractions, a switch step of 0
// or S (too few steps for that fraction).
StudyPlan plan_study(const config::Config& base, std::vector<double> fractions);

// Arm directory names.
std::string switch_arm_name(double fraction);  // "switch-0.625"

struct StudyOptions {
  std::string out_dir;      // "" = base train.run_dir
  double time_limit_s = 0;  // stop (with checkpoints) once the study has run this long; 0: none
  bool quiet = false;       // no progress lines (tests)
  // Test hook, forwarded to every arm's run (RunOptions::after_backward).
  std::function<void(const std::string& arm, int64_t step, model::Llama& model)> after_backward;
};

struct StudyReport {
  bool complete = false;  // every arm ran to S
  Json json;              // study.json
  std::string table;      // study.md's table
};

// Runs (or continues) the study, then writes and returns the report.
StudyReport run_study(const StudyPlan& plan, const StudyOptions& options);

// The report from the arms' files alone (what has run so far); writes
// study.json, study.md and arms/.
StudyReport summarize_study(const StudyPlan& plan, const std::string& out_dir);

}  // namespace lighthouse::train
