/*
 * `lighthouse eval niah|loss`: the evaluation protocols of shared/EVAL.md on
 * a checkpoint (csrc/eval/evaluate.h does the work; this file parses).
 *
 *   lighthouse eval niah --checkpoint runs/tiny/two-stage --contexts 1024,2048,4096 --trials 10 --out E
 *   lighthouse eval loss --checkpoint runs/tiny/two-stage --checkpoint runs/tiny/dense --out E
 */
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "eval/evaluate.h"

namespace lighthouse::cli {
namespace {

void device_options(CLI::App* app, eval::DeviceOptions& d) {
  app->add_option("--device", d.device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--precision", d.precision, "auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16")->capture_default_str();
  app->add_option("--threads", d.threads, "CPU threads (0: all cores)")->capture_default_str();
}

const char* kAttentionHelp =
    "dense | lighthouse (the layers outside model.dense_layers); default: as the checkpoint was trained at its step "
    "(dense after the stage switch)";

int eval_main(int argc, char** argv) {
  CLI::App app{"Evaluate a checkpoint (shared/EVAL.md): the passkey test (niah) or held-out loss by position (loss).",
               "lighthouse eval"};
  app.require_subcommand(1);

  eval::NiahJob niah;
  CLI::App* n = app.add_subcommand("niah", "needle in a haystack: passkey retrieval over contexts x depths");
  n->add_option("--checkpoint", niah.checkpoint, "checkpoint, run directory, or a directory holding one run")
      ->required();
  n->add_option("--attention", niah.attention, kAttentionHelp);
  n->add_option("--contexts", niah.contexts,
                "prompt lengths in tokens, e.g. 4096,8192 (default: powers of two from 4096 up to the training "
                "context, plus the training context)")
      ->delimiter(',');
  n->add_option("--depths", niah.depths, "needle depths in percent (default 0,10,...,100)")->delimiter(',');
  n->add_option("--trials", niah.trials, "prompts per (context, depth) cell; digits balanced over 0-9")
      ->capture_default_str();
  n->add_option("--seed", niah.seed, "seed of the prompts")->capture_default_str();
  n->add_option("--batch", niah.batch, "prompts per model call (0: 65536 tokens' worth)")->capture_default_str();
  n->add_option("--out", niah.out_dir, "output directory (niah.json, niah.png)")->required();
  n->add_option("--save-prompts", niah.save_prompts,
                "also write every prompt's token ids to this safetensors file (int64 context_<C> [depths x trials, C])");
  n->add_flag("--no-plot", [&](int64_t) { niah.plot = false; }, "write only the JSON");
  n->add_flag("--quiet", niah.quiet, "no progress line");
  device_options(n, niah.device);

  eval::LossJob loss;
  CLI::App* l = app.add_subcommand("loss", "held-out loss and loss by position; several checkpoints on one plot");
  l->add_option("--checkpoint", loss.checkpoints, "checkpoint or run directory; repeat to compare")->required();
  l->add_option("--attention", loss.attention, kAttentionHelp);
  l->add_option("--seq-len", loss.seq_len, "window length (0: the training context)")->capture_default_str();
  l->add_option("--batches", loss.windows, "validation windows to evaluate (0: all of the split)")
      ->capture_default_str();
  l->add_option("--batch", loss.batch, "windows per model call (0: 65536 tokens' worth)")->capture_default_str();
  l->add_option("--data", loss.data_dir, "packed dataset (default: the checkpoint's data.dir)");
  l->add_option("--out", loss.out_dir, "output directory (loss.json, loss_by_position.png)")->required();
  l->add_flag("--no-plot", [&](int64_t) { loss.plot = false; }, "write only the JSON");
  l->add_flag("--quiet", loss.quiet, "no progress line");
  device_options(l, loss.device);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (n->parsed()) {
    eval::run_niah_job(niah);
  } else {
    eval::run_loss_job(loss);
  }
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(eval, "evaluate a checkpoint: passkey retrieval (niah), loss by position (loss)", eval_main);

}  // namespace lighthouse::cli
