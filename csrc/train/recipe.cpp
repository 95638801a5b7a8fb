/*
 * The main job and the two-stage vs dense comparison (recipe.h). Paths go
 * through io/files.h, never std::filesystem (see checkpoint.cpp).
 */
#include "train/recipe.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "eval/plot.h"
#include "io/files.h"
#include "train/checkpoint.h"

namespace lighthouse::train {

namespace {

// Loss of `r` at (global) step s; NaN if that step is not in r.
double loss_at(const RunResult& r, int64_t s) {
  const int64_t i = s - r.first_step;
  if (i < 0 || i >= static_cast<int64_t>(r.losses.size())) return std::nan("");
  return r.losses[static_cast<size_t>(i)];
}

// Median (mean of the middle two for an even count); NaN if empty.
double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string f4(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", v);
  return b;
}

std::string gib(int64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return b;
}

}  // namespace

Comparison compare_runs(const RunResult& main, const RunResult* baseline, int64_t window) {
  Comparison c;
  c.has_baseline = baseline != nullptr;
  const int64_t k = main.switch_step;
  if (k <= 0 || k >= main.last_step) return c;
  c.has_switch = true;
  c.switch_step = k;
  c.val_before = main.switch_val_before;
  c.val_after = main.switch_val_after;
  c.val_jump = c.val_after - c.val_before;
  std::vector<double> losses, gaps;
  for (int64_t s = std::max(main.first_step, k - window + 1); s <= k; ++s) {
    losses.push_back(loss_at(main, s));
    if (baseline) gaps.push_back(loss_at(main, s) - loss_at(*baseline, s));
  }
  c.window = static_cast<int64_t>(losses.size());
  c.pre_switch_loss = median(losses);
  c.loss_after_switch = loss_at(main, k + 1);
  if (baseline) {
    c.pre_switch_gap = median(gaps);
    c.gap_after_switch = c.loss_after_switch - loss_at(*baseline, k + 1);
    c.train_jump = c.gap_after_switch - c.pre_switch_gap;
  } else {
    c.train_jump = c.loss_after_switch - c.pre_switch_loss;
  }
  for (int64_t s = k + 1; s <= main.last_step; ++s) {
    const double l = loss_at(main, s);
    if (baseline) {
      const double gap = l - loss_at(*baseline, s);
      if (c.recovered_step < 0 && gap <= c.pre_switch_gap) c.recovered_step = s;
      if (c.below_baseline_step < 0 && gap <= 0) c.below_baseline_step = s;
    } else if (c.recovered_step < 0 && l <= c.pre_switch_loss) {
      c.recovered_step = s;
    }
  }
  return c;
}

std::string format_comparison(const Comparison& c, const RunResult& main, const RunResult* base) {
  std::string out;
  char line[256];
  const auto row = [&](const char* name, const std::string& a, const std::string& b) {
    std::snprintf(line, sizeof line, "  %-26s %-33s %s\n", name, a.c_str(), b.c_str());
    out += line;
  };
  const std::string main_name = main.label + " (" + main.attention + ")";
  row("", main_name, base ? base->label + " (dense)" : "");
  row("steps (tokens)", std::to_string(main.last_step) + " (" + format_count(static_cast<double>(main.tokens)) + ")",
      base ? std::to_string(base->last_step) + " (" + format_count(static_cast<double>(base->tokens)) + ")" : "");
  row("final validation loss", f4(main.final_val_loss), base ? f4(base->final_val_loss) : "");
  row("wall-clock", format_duration(main.wall_seconds), base ? format_duration(base->wall_seconds) : "");
  row("train tokens/s, stage 1", main.stage1_tokens_per_s > 0 ? format_count(main.stage1_tokens_per_s) : "-",
      base ? format_count(base->stage1_tokens_per_s) : "");
  if (main.stage2_tokens_per_s > 0) row("train tokens/s, stage 2", format_count(main.stage2_tokens_per_s), "");
  if (main.niah_accuracy >= 0 || (base && base->niah_accuracy >= 0)) {
    const auto niah = [](const RunResult& r) {
      return r.niah_accuracy < 0 ? std::string("-")
                                 : f4(r.niah_accuracy) + " (p right digit " + f4(r.niah_p_correct) + ")";
    };
    row("passkey accuracy (mean)", niah(main), base ? niah(*base) : "");
  }
  if (main.peak_memory_bytes > 0) {
    row("peak memory", gib(main.peak_memory_bytes), base ? gib(base->peak_memory_bytes) : "");
  }
  if (c.has_switch) {
    const auto k = static_cast<long long>(c.switch_step);
    std::snprintf(line, sizeof line,
                  "  switch after step %lld: validation loss %.4f with Lighthouse -> %.4f with the same weights "
                  "dense: %+.4f nats\n",
                  k, c.val_before, c.val_after, c.val_jump);
    out += line;
    if (c.has_baseline) {
      std::snprintf(line, sizeof line,
                    "  training loss minus the baseline's on the same batch: %+.4f (median of steps %lld-%lld), "
                    "%+.4f at step %lld: jump %+.4f nats\n",
                    c.pre_switch_gap, k - c.window + 1, k, c.gap_after_switch, k + 1, c.train_jump);
    } else {
      std::snprintf(line, sizeof line,
                    "  training loss %.4f (median of steps %lld-%lld) -> %.4f at step %lld: jump %+.4f nats\n",
                    c.pre_switch_loss, k - c.window + 1, k, c.loss_after_switch, k + 1, c.train_jump);
    }
    out += line;
    if (c.recovered_step > 0) {
      std::snprintf(line, sizeof line, "  recovered after %lld step%s (step %lld: %s)\n",
                    static_cast<long long>(c.recovered_step) - k, c.recovered_step - k == 1 ? "" : "s",
                    static_cast<long long>(c.recovered_step),
                    c.has_baseline ? "gap to the baseline back at its pre-switch median"
                                   : "training loss back at its pre-switch median");
    } else {
      std::snprintf(line, sizeof line, "  not recovered within the run (%lld dense steps)\n",
                    static_cast<long long>(main.last_step) - k);
    }
    out += line;
    if (c.has_baseline) {
      if (c.below_baseline_step > 0) {
        std::snprintf(line, sizeof line, "  at or below the dense baseline first at step %lld\n",
                      static_cast<long long>(c.below_baseline_step));
      } else {
        std::snprintf(line, sizeof line, "  above the dense baseline at every dense step\n");
      }
      out += line;
    }
  }
  return out;
}

Json comparison_json(const Comparison& c, const RunResult& main, const RunResult* base) {
  const auto run = [](const RunResult& r) {
    Json j{{"label", r.label},
                {"attention", r.attention},
                {"run_dir", r.run_dir},
                {"steps", r.last_step},
                {"tokens", r.tokens},
                {"final_val_loss", r.final_val_loss},
                {"wall_seconds", r.wall_seconds},
                {"train_seconds", r.train_seconds},
                {"stage1_tokens_per_s", r.stage1_tokens_per_s},
                {"stage2_tokens_per_s", r.stage2_tokens_per_s},
                {"peak_memory_bytes", r.peak_memory_bytes},
                {"skipped_steps", r.skipped_steps},
                {"time_limited", r.time_limited}};
    if (r.niah_accuracy >= 0) {
      j["niah_mean_accuracy"] = r.niah_accuracy;
      j["niah_mean_p_correct"] = r.niah_p_correct;
    }
    return j;
  };
  Json j = {{"main", run(main)}};
  if (base) j["baseline"] = run(*base);
  if (c.has_switch) {
    j["switch"] = {{"after_step", c.switch_step},
                   {"val_loss_lighthouse", c.val_before},
                   {"val_loss_dense", c.val_after},
                   {"val_jump", c.val_jump},
                   {"window", c.window},
                   {"pre_switch_loss_median", c.pre_switch_loss},
                   {"loss_after_switch", c.loss_after_switch},
                   {"train_jump", c.train_jump},
                   {"recovered_step", c.recovered_step},
                   {"steps_to_recover", c.recovered_step > 0 ? c.recovered_step - c.switch_step : -1}};
    if (base) {
      j["switch"]["pre_switch_gap_median"] = c.pre_switch_gap;
      j["switch"]["gap_after_switch"] = c.gap_after_switch;
      j["switch"]["below_baseline_step"] = c.below_baseline_step;
    }
  }
  return j;
}

std::string run_recipe(const config::Config& cfg, const RunOptions& opt) {
  const bool resuming = !opt.resume.empty();
  if (resuming && !opt.run_dir.empty() && opt.run_dir != opt.resume) {
    throw CheckpointError("resuming the runs of " + opt.resume + " continues them in place; drop --run-dir " +
                          opt.run_dir);
  }
  const std::string root = resuming ? opt.resume : opt.run_dir.empty() ? cfg.train.run_dir : opt.run_dir;
  ensure_packed(cfg);  // before the clocks of both runs start
  // One arm in <root>/<label>: resumed where its newest checkpoint stopped
  // (its earlier steps read back from its metrics), or trained from the start.
  const auto run_arm = [&](const config::Config& c, const std::string& label) {
    RunOptions o = opt;
    o.label = label;
    o.run_dir = root + "/" + label;
    o.resume = resuming && !latest_checkpoint(o.run_dir).empty() ? o.run_dir : "";
    const RunResult r = run_training(c, o);
    return o.resume.empty() ? r : with_history(r);
  };
  const RunResult main = run_arm(cfg, run_label(cfg));

  std::optional<RunResult> base;
  if (cfg.train.baseline && config::uses_lighthouse(cfg)) {
    config::Config dense = cfg;
    dense.model.attention = "dense";
    dense.stage2.start_step = 0;  // no switch (wins over stage2.start_fraction)
    base = run_arm(dense, "dense");
  }
  const RunResult* b = base ? &*base : nullptr;
  const Comparison c = compare_runs(main, b);
  const std::string table = format_comparison(c, main, b);
  if (!opt.primary) return table;  // the other processes of a parallel run write and print nothing
  io::write_file_atomic(root + "/comparison.json", comparison_json(c, main, b).dump(2) + "\n");
  std::printf("\n%s\n%s",
              b ? "Two-stage Lighthouse recipe vs dense baseline (same data, same token budget)" : "Run summary",
              table.c_str());
  std::printf("  metrics: %s/*/metrics.jsonl, val.jsonl; comparison: %s/comparison.json\n", root.c_str(), root.c_str());
  const std::string why = eval::plot_runs({root}, root + "/curves.png");
  if (why.empty()) {
    std::printf("  curves (loss vs tokens and wall-clock): %s/curves.png\n", root.c_str());
  } else {
    std::printf("  no curves plot: %s\n", why.c_str());
  }
  std::fflush(stdout);
  return table;
}

}  // namespace lighthouse::train
