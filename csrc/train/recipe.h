/*
 * The main job: the two-stage recipe and a dense-only baseline of the same
 * token budget (same seed: same weights at step 0 and the same batch at
 * every step), and their comparison.
 *
 * Definitions used in the comparison (k = the last Stage-1 step, window w =
 * the 10 steps k-w+1 .. k):
 * - validation jump: validation loss of the step-k weights with every layer
 *   dense minus with the Lighthouse layers (same weights, same held-out
 *   batches: the switch's cost without batch noise).
 * - gap(s) = loss(s) - baseline loss(s): both runs train on the very same
 *   batch at step s, so the gap is free of batch-to-batch noise (single
 *   batches vary by more than a nat on this corpus).
 * - training jump: gap(k+1) minus the median gap over the window (without a
 *   baseline: loss(k+1) minus the median loss over the window).
 * - recovered at step r: the first r > k with gap(r) <= the window's median
 *   gap, i.e. the run is back where it stood relative to the dense baseline
 *   before the switch (without a baseline: loss(r) <= the window's median
 *   loss); steps to recover = r - k, so 1 means the first dense step was
 *   already back.
 * - at/below baseline from step b: the first b > k with gap(b) <= 0.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace lighthouse::train {

struct Comparison {
  bool has_switch = false;
  bool has_baseline = false;
  int64_t switch_step = 0;  // k
  int64_t window = 0;       // steps in the window (fewer if the run is short)
  double val_before = 0;    // validation loss at k, Lighthouse layers
  double val_after = 0;     // the same weights, all dense
  double val_jump = 0;
  double pre_switch_loss = 0;    // median training loss over the window
  double loss_after_switch = 0;  // step k+1
  double pre_switch_gap = 0;     // median gap over the window (baseline runs)
  double gap_after_switch = 0;   // gap at k+1 (baseline runs)
  double train_jump = 0;
  int64_t recovered_step = -1;  // -1: not within the run
  int64_t below_baseline_step = -1;
};

Comparison compare_runs(const RunResult& main, const RunResult* baseline, int64_t window = 10);

// The table printed at the end of the main job, and the same as JSON.
std::string format_comparison(const Comparison& c, const RunResult& main, const RunResult* baseline);
Json comparison_json(const Comparison& c, const RunResult& main, const RunResult* baseline);

// `lighthouse train`'s job: the configured run in <run_dir>/<label>, then,
// if train.baseline and the run uses Lighthouse, the dense baseline in
// <run_dir>/dense; prints the comparison and writes
// <run_dir>/comparison.json. Returns the comparison text.
// With options.resume = such a <run_dir> (recipe_arms lists its arms), each
// arm continues from its newest checkpoint (an arm without one starts), the
// steps before come from its metrics, and the comparison covers whole runs.
std::string run_recipe(const config::Config& config, const RunOptions& options);

}  // namespace lighthouse::train
