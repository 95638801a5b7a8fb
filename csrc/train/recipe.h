/*
 * The main job: the two-stage recipe and a dense-only baseline of the same
 * token budget (same seed: same weights at step 0 and the same batch at
 * every step), and their comparison.
 *
 * Definitions used in the comparison (window w = 10 steps, k = the last
 * Stage-1 step):
 * - pre-switch loss: mean training loss of steps k-w+1 .. k.
 * - jump: loss at step k+1 (the first dense step) minus the pre-switch loss.
 * - gap(s) = loss(s) - baseline loss(s): both runs train on the very same
 *   batch at step s, so the gap is free of batch-to-batch noise.
 * - recovered at step r: the first r > k with gap(r) <= the mean gap over
 *   steps k-w+1 .. k, i.e. the run is back where it stood relative to the
 *   dense baseline before the switch; steps to recover = r - k. Without a
 *   baseline: the first r > k with loss(r) <= the pre-switch loss.
 * - at/below baseline from step b: the first b > k with gap(b) <= 0.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/config.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace lighthouse::train {

struct Comparison {
  bool has_switch = false;
  bool has_baseline = false;
  int64_t switch_step = 0;  // k
  int64_t window = 0;
  double pre_switch_loss = 0;
  double loss_after_switch = 0;  // step k+1
  double jump = 0;
  double pre_switch_gap = 0;     // baseline runs only
  int64_t recovered_step = -1;   // -1: not within the run
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
std::string run_recipe(const config::Config& config, const RunOptions& options);

}  // namespace lighthouse::train
