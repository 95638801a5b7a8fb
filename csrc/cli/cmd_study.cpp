/*
 * `lighthouse study`: the recipe study (train/study.h): a dense baseline,
 * one Stage-1 Lighthouse run and a dense tail per switch fraction branched
 * from its checkpoints, compared at equal tokens.
 *
 *   lighthouse study --preset study --out runs/study                 # everything
 *   lighthouse study --preset study --out runs/study --time-limit 540 # a piece; again to continue
 *   lighthouse study --preset tiny --fractions 0.5,0.75 --train.steps 40
 *   lighthouse study --preset study --out runs/study --report         # the table from what has run
 *
 * Exit code 0: the study is complete (study.json, study.md written); 3: the
 * time limit stopped it with every arm checkpointed (run the same command
 * again to continue); 1: an error.
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "config/config.h"
#include "io/files.h"
#include "overrides.h"
#include "train/runtime.h"
#include "train/study.h"

namespace lighthouse::cli {
namespace {

std::vector<double> parse_fractions(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw config::ConfigError("--fractions: '" + item + "' is not a number (give e.g. 0.625,0.6875,0.75)");
    out.push_back(v);
  }
  return out;
}

int study_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto overrides = take_overrides(args);
  std::string preset, config_file, out, fractions = "0.625,0.6875,0.75", device;
  double time_limit = 0;
  int64_t steps = 0;
  bool report_only = false, deterministic = false, quiet = false, print_plan = false;
  CLI::App app{
      "The recipe study: a dense baseline, ONE Stage-1 Lighthouse run with a checkpoint at every switch "
      "fraction, and a dense tail per fraction resumed from it (same seed and data order), compared at equal "
      "tokens. Resumable: run it again to continue.",
      "lighthouse study"};
  app.add_option("--preset", preset, "built-in preset (e.g. study, tiny)");
  app.add_option("--config", config_file, "a TOML config file instead of a preset");
  app.add_option("--fractions", fractions, "switch points as fractions of train.steps")->capture_default_str();
  app.add_option("--out", out, "study directory (default: train.run_dir)");
  app.add_option("--time-limit", time_limit,
                 "stop every arm with a checkpoint once the study has run this many seconds (exit code 3); "
                 "0: no limit")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--steps", steps, "train.steps of every arm");
  app.add_option("--device", device, "auto | cpu | cuda | cuda:N (train.device)");
  app.add_flag("--deterministic", deterministic, "bit-exact reruns (train.deterministic)");
  app.add_flag("--report", report_only, "write and print the report from what has run; train nothing");
  app.add_flag("--print-plan", print_plan, "print the arms and their steps and exit");
  app.add_flag("-q,--quiet", quiet, "no progress lines");
  app.footer("Any config key is an option: --section.key value (see `lighthouse train --list-keys`).");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!preset.empty() && !config_file.empty()) throw config::ConfigError("give --preset or --config, not both");
  if (preset.empty() && config_file.empty()) throw config::ConfigError("give --preset NAME or --config FILE");
  config::Config cfg = config_file.empty() ? config::load_preset(preset)
                                           : config::parse_toml(io::read_file(config_file), config_file);
  for (const auto& [key, value] : overrides) config::apply_override(cfg, key, value);
  if (!device.empty()) cfg.train.device = device;
  if (steps > 0) cfg.train.steps = steps;
  if (deterministic) cfg.train.deterministic = true;
  const train::StudyPlan plan = train::plan_study(cfg, parse_fractions(fractions));
  const std::string dir = out.empty() ? cfg.train.run_dir : out;

  if (print_plan) {
    std::printf("study in %s: %lld steps per arm, %lld steps in all\n", dir.c_str(),
                static_cast<long long>(plan.steps), static_cast<long long>(plan.total_steps()));
    std::printf("  dense      steps 1-%lld, all layers dense\n", static_cast<long long>(plan.steps));
    std::printf("  stage1     steps 1-%lld, Lighthouse (checkpoints at", static_cast<long long>(plan.switch_steps.back()));
    for (int64_t k : plan.switch_steps) std::printf(" %lld", static_cast<long long>(k));
    std::printf(")\n");
    for (size_t i = 0; i < plan.fractions.size(); ++i)
      std::printf("  %-10s steps %lld-%lld dense, from the Stage-1 checkpoint at step %lld\n",
                  train::switch_arm_name(plan.fractions[i]).c_str(), static_cast<long long>(plan.switch_steps[i] + 1),
                  static_cast<long long>(plan.steps), static_cast<long long>(plan.switch_steps[i]));
    return 0;
  }
  train::StudyReport report;
  if (report_only) {
    report = train::summarize_study(plan, dir);
  } else {
    if (cfg.train.deterministic) train::deterministic_env();
    train::StudyOptions opt;
    opt.out_dir = dir;
    opt.time_limit_s = time_limit;
    opt.quiet = quiet;
    report = train::run_study(plan, opt);
  }
  std::printf("%s\nstudy %s: %s/study.json, %s/study.md\n", report.table.c_str(),
              report.complete ? "complete" : "incomplete", dir.c_str(), dir.c_str());
  return report.complete || report_only ? 0 : 3;
}

}  // namespace

LIGHTHOUSE_COMMAND(study, "the recipe study: dense vs two-stage arms branched from one Stage-1 run", study_main);

}  // namespace lighthouse::cli
