/*
 * `lighthouse train`: pre-train the byte-level Llama with Lighthouse
 * attention (csrc/train/trainer.h).
 *
 *   lighthouse train --preset tiny                 # the two-stage demo + dense baseline
 *   lighthouse train --preset gpu-small --train.steps 200
 *   lighthouse train --config my.toml --model.layers 8
 *   lighthouse train --resume runs/tiny            # continue every run of the main job (both arms)
 *   lighthouse train --resume runs/tiny/two-stage  # continue one run from its newest checkpoint
 *   lighthouse train --resume runs/x/checkpoints/step_000060 --attention dense --run-dir runs/x-stage2
 *
 * --resume takes the directory given to --run-dir (every arm in it
 * continues where it stopped, the dense baseline included, and the
 * comparison covers the whole runs), one arm's run directory, its
 * checkpoints/ directory or one checkpoint directory.
 *
 * Under torchrun (README, Multi-GPU) every process runs this command with
 * the same arguments; parallel.dp x parallel.cp must equal the number of
 * processes (csrc/dist/train_parallel.h). Only rank 0 writes and prints.
 *
 *   torchrun --nproc-per-node 2 --no-python ./build/lighthouse train --preset tiny \
 *       --parallel.dp 2 --train.batch 2
 *   torchrun --nproc-per-node 2 --no-python ./build/lighthouse train --preset tiny \
 *       --parallel.cp 2 --lighthouse.top_k 512     # tiny's top_k 128 is one tile: no CP split
 *
 * Config: a preset (configs/<name>.toml, built in) or a TOML file, then
 * `--section.key value` overrides (also `--section.key=value`). A resume
 * without --preset/--config uses the checkpoint's own config. The config is
 * validated before anything runs; deterministic mode sets its environment
 * before the first tensor operation.
 */
#include <ATen/Context.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "overrides.h"
#include "io/files.h"
#include "config/config.h"
#include "dist/process_group.h"
#include "dist/train_parallel.h"
#include "eval/in_training.h"
#include "train/checkpoint.h"
#include "train/recipe.h"
#include "train/runtime.h"
#include "train/trainer.h"

namespace lighthouse::cli {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

int train_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto overrides = take_overrides(args);

  std::string preset, config_file, resume, attention, device, run_dir;
  int64_t steps = 0, stop_after = 0;
  bool deterministic = false, no_baseline = false, print_config = false, list_keys = false;
  CLI::App app{
      "Pre-train a byte-level Llama with Lighthouse attention: the two-stage recipe (Lighthouse, then "
      "dense) and, with train.baseline, a dense baseline of the same token budget.",
      "lighthouse train"};
  app.add_option("--preset", preset, "built-in preset: " + join(config::preset_names()) + " (default: tiny)");
  app.add_option("--config", config_file, "a TOML config file instead of a preset");
  app.add_option("--resume", resume,
                 "continue: a --run-dir directory (every run in it), one run's directory, or a checkpoint");
  app.add_option("--attention", attention,
                 "lighthouse | dense: attention of the non-dense layers "
                 "(dense on --resume = the stage switch)");
  app.add_flag("--deterministic", deterministic, "bit-exact reruns (train.deterministic)");
  app.add_option("--device", device, "auto | cpu | cuda | cuda:N (train.device)");
  app.add_option("--steps", steps, "train.steps");
  app.add_option("--run-dir", run_dir, "output directory (default: train.run_dir; on --resume: the checkpoint's run)");
  app.add_option("--stop-after", stop_after,
                 "stop with a checkpoint after this step (the schedule still spans train.steps)");
  app.add_flag("--no-baseline", no_baseline, "skip the dense baseline (train.baseline = false)");
  app.add_flag("--print-config", print_config, "print the resolved config as TOML and exit");
  app.add_flag("--list-keys", list_keys, "list every config key with its type and resolved value, and exit");
  app.footer(
      "Any config key is an option: --section.key value (e.g. --model.layers 8, --optim.lr 1e-3,\n"
      "--model.dense_layers 0,-1). `lighthouse train --preset tiny --list-keys` lists them.");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (!preset.empty() && !config_file.empty()) throw config::ConfigError("give --preset or --config, not both");
  // --resume R: one run (R holds a checkpoint: R is a run, checkpoints or
  // checkpoint directory) or every arm of a --run-dir directory; the config
  // defaults to the resumed (main) arm's.
  std::string resume_dir;
  bool resume_arms = false;
  if (!resume.empty()) {
    resume_dir = train::latest_checkpoint(resume);
    if (resume_dir.empty()) {
      const train::CheckpointRef ref = train::resolve_checkpoint(resume);  // throws saying what it looked for
      resume_dir = ref.checkpoint;
      resume_arms = true;
    }
  }
  config::Config cfg;
  if (!config_file.empty()) {
    cfg = config::parse_toml(io::read_file(config_file), config_file);
  } else if (!preset.empty() || resume_dir.empty()) {
    cfg = config::load_preset(preset.empty() ? "tiny" : preset);
  } else {
    cfg = train::checkpoint_config(resume_dir);
  }
  for (const auto& [key, value] : overrides) config::apply_override(cfg, key, value);
  if (!attention.empty()) config::apply_override(cfg, "model.attention", attention);
  if (!device.empty()) cfg.train.device = device;
  if (steps > 0) cfg.train.steps = steps;
  if (deterministic) cfg.train.deterministic = true;
  if (no_baseline) cfg.train.baseline = false;
  if (!run_dir.empty() && resume_dir.empty()) cfg.train.run_dir = run_dir;
  config::validate(cfg);

  if (print_config) {
    std::fputs(config::to_toml(cfg).c_str(), stdout);
    return 0;
  }
  if (list_keys) {
    std::fputs(config::describe_keys(cfg).c_str(), stdout);
    return 0;
  }
  if (cfg.train.deterministic) train::deterministic_env();

  // Under torchrun: this process's groups (one process otherwise); each
  // rank takes the GPU of its LOCAL_RANK. Rank 0 packs the corpus while the
  // others wait.
  const dist::Env env = dist::read_env();
  if (env.distributed && cfg.train.device != "cpu" && at::hasCUDA() &&
      (cfg.train.device == "auto" || cfg.train.device == "cuda")) {
    cfg.train.device = dist::local_device(env, at::kCUDA).str();
  }
  const bool cuda = cfg.train.device != "cpu" && (cfg.train.device != "auto" || at::hasCUDA());
  const dist::World world =
      dist::init(cuda ? at::Device(cfg.train.device == "auto" ? "cuda" : cfg.train.device) : at::Device(at::kCPU),
                 {cfg.parallel.dp, cfg.parallel.cp,
                  std::chrono::milliseconds(static_cast<int64_t>(cfg.parallel.timeout_s * 1000))});
  if (world.distributed()) {
    if (world.is_main()) train::ensure_packed(cfg);
    dist::barrier(world.world, "train: waiting for rank 0 to pack the corpus");
  }

  train::RunOptions opt = dist::parallel_run_options(world, {});
  opt.stop_after = stop_after;
  // Evaluation inside the run (eval.niah_every passes, loss by position at
  // the end): in one process, and under data parallelism alone on rank 0,
  // which holds the whole model (the trainer builds the observer on the
  // primary rank only; the other ranks wait for it at the next all-reduce,
  // so a pass must finish within parallel.timeout_s). Not under CP: there the
  // model's layers take this rank's chunks, not whole prompts.
  if (!world.distributed() || world.layout.cp == 1) {
    opt.observer = eval::training_observer();
  } else if (cfg.eval.niah_every > 0 && world.is_main()) {
    std::fprintf(stderr,
                 "note: eval.niah_every is ignored under context parallelism (parallel.cp = %lld); run `lighthouse "
                 "eval niah` on the checkpoint\n",
                 static_cast<long long>(world.layout.cp));
  }
  if (resume_arms) {
    opt.resume = resume;
    opt.run_dir = run_dir;
    train::run_recipe(cfg, opt);
    return 0;
  }
  if (!resume_dir.empty()) {
    opt.resume = resume_dir;
    opt.run_dir = run_dir;  // "" = the checkpoint's run
    opt.label = train::run_label(cfg);
    const train::RunResult r = train::with_history(train::run_training(cfg, opt));
    if (!opt.primary) return 0;
    std::printf("\n%s", train::format_comparison(train::compare_runs(r, nullptr), r, nullptr).c_str());
    std::printf("  run: %s\n", r.run_dir.c_str());
    return 0;
  }
  train::run_recipe(cfg, opt);
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(train, "pre-train: the two-stage Lighthouse recipe and a dense baseline", train_main);

}  // namespace lighthouse::cli
