/*
 * `lighthouse bench train`: the training-step benchmark (csrc/bench/
 * train_bench.h) for a preset, Lighthouse and dense, without and with the
 * fused path, in one run; before timing, the fused path's checks
 * (csrc/bench/train_check.h). This file parses the arguments and prints.
 *
 *   lighthouse bench train                                  # paper-530m, both attentions, fused off and on
 *   lighthouse bench train --preset tiny --device cpu --steps 1 --json out.json
 *   lighthouse bench train --preset paper-1m --attention lighthouse --fused on
 *   lighthouse bench train --check-only --device cuda       # the checks alone; exit 1 if one fails
 *
 * Config overrides as for `lighthouse train` (`--train.seq_len 32768`, ...).
 * A configuration that fails (out of memory, say) prints its error and the
 * others still run; the exit code is then 1.
 */
#include <ATen/Context.h>
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench/train_bench.h"
#include "bench/train_check.h"
#include "config/config.h"
#include "overrides.h"

namespace lighthouse::cli {
namespace {

std::string gib(int64_t bytes) {
  char buf[32];
  if (bytes <= 0) return "-";
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

std::string number(double v, const char* f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

bool run_checks(const at::Device& device, at::ScalarType dtype) {
  std::printf("checks of the fused path on %s (csrc/bench/train_check.h):\n", device.str().c_str());
  std::fflush(stdout);
  bool all = true;
  for (const bench::CheckResult& r : bench::run_training_checks(device, dtype)) {
    std::printf("  %-13s %s  %s\n", r.name.c_str(), r.passed ? "ok  " : "FAIL", r.detail.c_str());
    std::fflush(stdout);
    all = all && r.passed;
  }
  std::printf(all ? "all checks passed\n" : "some checks FAILED\n");
  return all;
}

}  // namespace

int bench_train_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::pair<std::string, std::string>> overrides;
  try {
    overrides = take_overrides(args);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  bench::TrainBenchConfig c;
  c.preset = "paper-530m";
  std::string attention = "both", fused = "both", json_path;
  double peak_tflops = 0;
  bool check_only = false, no_check = false, no_profile = false;
  std::string check_dtype;
  CLI::App app{
      "Training-step benchmark: forward, backward and optimizer of a preset's step; tokens/s, MFU, peak "
      "memory and a breakdown by category; Lighthouse and dense, without and with the fused kernels",
      "lighthouse bench train"};
  app.add_option(
         "--preset", c.preset,
         "built-in preset: " +
             [] {
               std::string s;
               for (const auto& n : config::preset_names()) s += (s.empty() ? "" : ", ") + n;
               return s;
             }())
      ->capture_default_str();
  app.add_option("--device", c.device, "cpu or cuda (default: cuda when available)");
  app.add_option("--attention", attention, "lighthouse | dense | both")->capture_default_str();
  app.add_option("--fused", fused, "off | on | both (the before/after comparison in one run)")->capture_default_str();
  app.add_option("--warmup", c.warmup, "untimed steps per configuration")->capture_default_str();
  app.add_option("--steps", c.steps, "timed steps per configuration (median)")->capture_default_str();
  app.add_option("--peak-tflops", peak_tflops, "the GPU's peak for MFU (default: datasheet dense bf16 by name)");
  app.add_flag("--no-profile", no_profile, "skip the profiled step (no breakdown)");
  app.add_flag("--no-check", no_check, "skip the checks before timing");
  app.add_flag("--check-only", check_only, "run the checks only (exit 1 if one fails)");
  app.add_option("--check-dtype", check_dtype,
                 "compute dtype of the checks: float32 | bfloat16 (default: bfloat16 on CUDA, float32 on CPU)");
  app.add_option("--json", json_path, "write every number to this JSON file");
  std::vector<char*> rest = {argv[0]};
  for (auto& a : args) rest.push_back(a.data());
  try {
    app.parse(static_cast<int>(rest.size()), rest.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (c.device.empty()) c.device = at::hasCUDA() ? "cuda" : "cpu";
  const bool cuda = c.device.rfind("cuda", 0) == 0;
  TORCH_CHECK(cuda || c.device == "cpu", "--device must be cpu or cuda, got '", c.device, "'");
  TORCH_CHECK(!cuda || at::hasCUDA(), "--device cuda: no CUDA device available (or this build has no CUDA)");
  TORCH_CHECK(attention == "lighthouse" || attention == "dense" || attention == "both",
              "--attention must be lighthouse, dense or both, got '", attention, "'");
  TORCH_CHECK(fused == "off" || fused == "on" || fused == "both", "--fused must be off, on or both, got '", fused, "'");

  if (check_only || !no_check) {
    TORCH_CHECK(check_dtype.empty() || check_dtype == "float32" || check_dtype == "bfloat16",
                "--check-dtype must be float32 or bfloat16, got '", check_dtype, "'");
    const at::ScalarType dt = check_dtype.empty()        ? at::ScalarType::Undefined
                              : check_dtype == "float32" ? at::kFloat
                                                         : at::kBFloat16;
    const bool ok = run_checks(at::Device(c.device), dt);
    if (check_only || !ok) return ok ? 0 : 1;
  }
  try {
    c.config = config::load_preset(c.preset);
    for (const auto& [key, value] : overrides) config::apply_override(c.config, key, value);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  c.peak_flops = peak_tflops * 1e12;
  c.profile = !no_profile;
  bench::TrainBench b(c);
  std::printf(
      "\ntraining step of %s on %s (%s): context %lld, batch %lld, %s; %d warm-up + %d timed steps "
      "(median); peak for MFU: %.1f TFLOP/s (%s)\n%s\n",
      c.preset.c_str(), b.device().str().c_str(), bench::device_name(b.device()).c_str(),
      static_cast<long long>(c.config.train.seq_len), static_cast<long long>(c.config.train.batch),
      c.config.train.precision.c_str(), c.warmup, c.steps, b.peak_flops() / 1e12, b.peak_source().c_str(),
      bench::method_note().c_str());
  bench::Table t;
  t.column("attention", "", 10).column("fused", "", 5);
  t.group().column("fwd", "ms", 9).column("bwd", "ms", 9).column("optim", "ms", 8).column("step", "ms", 9);
  t.group().column("tokens/s", "", 10).column("TFLOP/s", "model", 8).column("MFU", "", 6).column("peak", "GiB", 7);
  t.print_header();
  std::vector<std::string> attentions =
      attention == "both" ? std::vector<std::string>{"lighthouse", "dense"} : std::vector<std::string>{attention};
  std::vector<bool> fusions = fused == "both" ? std::vector<bool>{false, true} : std::vector<bool>{fused == "on"};
  bench::Json runs = bench::Json::array();
  std::vector<bench::TrainBenchRun> done;
  int failed = 0;
  for (const auto& a : attentions) {
    for (const bool f : fusions) {
      std::fprintf(stderr, "[bench train] %s, fused %s ...\n", a.c_str(), f ? "on" : "off");
      bench::TrainBenchRun r;
      try {
        r = b.run(a, f);
      } catch (const std::exception& e) {
        // One configuration failing (out of memory, say) does not lose the
        // others: its row and JSON entry carry the error, the exit code is 1.
        const std::string what = std::string(e.what()).substr(0, 400);
        std::printf("%10s %5s | failed: %s\n", a.c_str(), f ? "on" : "off", what.substr(0, what.find('\n')).c_str());
        runs.push_back({{"attention", a}, {"fused", f}, {"error", what}});
        if (!json_path.empty()) bench::write_json(json_path, b.document(runs));
        ++failed;
        continue;
      }
      done.push_back(r);
      runs.push_back(b.run_json(r));
      t.print_row({a, f ? "on" : "off", bench::format_ms(r.forward_ms), bench::format_ms(r.backward_ms),
                   bench::format_ms(r.optimizer_ms), bench::format_ms(r.step_ms), number(r.tokens_per_s, "%.0f"),
                   number(r.achieved_flops / 1e12, "%.1f"), r.mfu > 0 ? number(100 * r.mfu, "%.1f%%") : "-",
                   gib(r.peak_bytes)});
      if (!json_path.empty()) bench::write_json(json_path, b.document(runs));
    }
  }
  // The breakdown, one column per configuration.
  if (!no_profile && !done.empty()) {
    std::printf("\nbreakdown of one step (%s, ms; %% of the profiled total)\n",
                done.front().breakdown.device_time ? "GPU kernel time" : "CPU self time");
    bench::Table bt;
    bt.column("category", "", 18);
    for (const auto& r : done)
      bt.group().column(r.attention.substr(0, 5) + (r.fused ? "+fused" : ""), "ms", 10).column("", "%", 5);
    bt.print_header();
    for (int k = 0; k < bench::kCategories; ++k) {
      std::vector<std::string> cells = {bench::category_name(static_cast<bench::Category>(k))};
      for (const auto& r : done) {
        cells.push_back(number(r.breakdown.ms[k], "%.2f"));
        cells.push_back(number(r.breakdown.total_ms > 0 ? 100 * r.breakdown.ms[k] / r.breakdown.total_ms : 0, "%.1f"));
      }
      bt.print_row(cells);
    }
    for (const auto& r : done) {
      std::printf("%s%s: checkpointing %s; layers %s; optimizer %s\n", r.attention.c_str(), r.fused ? " fused" : "",
                  r.checkpointing.c_str(), r.layers.c_str(), r.fused_optimizer ? "fused AdamW" : "AdamW");
    }
  }
  if (failed == 0 && done.size() == 4 && done[0].tokens_per_s > 0) {
    std::printf(
        "\nLighthouse / dense tokens/s: unfused %.2fx, fused %.2fx; fused / unfused: Lighthouse %.2fx, dense %.2fx\n",
        done[0].tokens_per_s / done[2].tokens_per_s, done[1].tokens_per_s / done[3].tokens_per_s,
        done[1].tokens_per_s / done[0].tokens_per_s, done[3].tokens_per_s / done[2].tokens_per_s);
  }
  std::fflush(stdout);
  if (!json_path.empty()) std::printf("wrote %s\n", json_path.c_str());
  if (failed > 0) std::printf("%d configuration(s) FAILED (see above)\n", failed);
  return failed > 0 ? 1 : 0;
}

}  // namespace lighthouse::cli
