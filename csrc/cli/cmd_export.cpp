/*
 * `lighthouse export CKPT OUT`: a checkpoint (or the newest of a run) as a
 * Hugging Face LlamaForCausalLM directory (csrc/train/export.h).
 *
 * CKPT: the directory given to `lighthouse train --run-dir` (its main run,
 * the arm named in the output; --arm dense for the baseline), a run
 * directory, its checkpoints/ or one checkpoint directory.
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "commands.h"
#include "train/export.h"

namespace lighthouse::cli {
namespace {

int export_main(int argc, char** argv) {
  std::string checkpoint, out;
  train::ExportOptions opt;
  CLI::App app{
      "Export a checkpoint as a Hugging Face Llama directory (config.json, model.safetensors) that "
      "transformers' LlamaForCausalLM loads. Always the dense model: Lighthouse is training-only.",
      "lighthouse export"};
  app.add_option("checkpoint", checkpoint,
                 "a --run-dir directory, a run directory or a checkpoint directory (newest checkpoint)")
      ->required();
  app.add_option("out", out, "output directory")->required();
  app.add_option("--dtype", opt.dtype, "float32 | bfloat16")->capture_default_str();
  app.add_flag("--overwrite", opt.overwrite, "replace an existing output directory");
  app.add_option("--arm", opt.arm,
                 "which run of a --run-dir directory (two-stage, lighthouse, dense; default: the main run)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::printf("%s\n", train::export_hf(checkpoint, out, opt).c_str());
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(export, "export a checkpoint to a Hugging Face Llama directory", export_main);

}  // namespace lighthouse::cli
