/*
 * `lighthouse logits CKPT --tokens IN --out OUT`: our model's logits for
 * given token ids, for checking an export against transformers
 * (tests/python/test_export.py) or inspecting a checkpoint.
 *
 * IN: a safetensors file with an int64 tensor "input_ids" [B, N].
 * OUT: a safetensors file with the float32 tensor "logits" [B, N, vocab].
 * Runs on CPU in fp32; every layer dense unless --attention checkpoint
 * (the layers' attention at the checkpoint's step: its config's plan, all
 * dense after the stage switch). CKPT: as for `lighthouse export` (a
 * --run-dir directory takes its main run unless --arm names one).
 */
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "commands.h"
#include "io/safetensors_torch.h"
#include "model/llama.h"
#include "ops/checks.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace lighthouse::cli {
namespace {

int logits_main(int argc, char** argv) {
  std::string checkpoint, in, out, attention = "dense", arm;
  CLI::App app{"Logits of a checkpoint's model for token ids (fp32, CPU)", "lighthouse logits"};
  app.add_option("checkpoint", checkpoint,
                 "a --run-dir directory, a run directory or a checkpoint directory (newest checkpoint)")
      ->required();
  app.add_option("--arm", arm, "which run of a --run-dir directory (default: the main run)");
  app.add_option("--tokens", in, "safetensors file with int64 input_ids [B, N]")->required();
  app.add_option("--out", out, "safetensors file to write float32 logits [B, N, vocab]")->required();
  app.add_option("--attention", attention, "dense (as exported) | checkpoint (the checkpoint's layer modes)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  LH_CHECK(attention == "dense" || attention == "checkpoint", "--attention must be dense or checkpoint, got '",
           attention, "'");
  const train::CheckpointRef ref = train::resolve_checkpoint(checkpoint, arm);
  const std::string& dir = ref.checkpoint;
  const std::string took = train::describe_arm_choice(ref, checkpoint);
  if (!took.empty()) std::printf("using %s\n", took.c_str());
  const train::Checkpoint ckpt = train::load_checkpoint(dir, /*with_optimizer=*/false);
  model::Llama m(
      ckpt.config.model,
      attention == "dense" ? model::dense_plan(ckpt.config.model.layers) : train::plan_at(ckpt.config, ckpt.step),
      at::kCPU, 0);
  m.load_weights(ckpt.weights);

  at::Tensor ids;
  for (const auto& [name, t] : io::load_safetensors(in)) {
    if (name == "input_ids") ids = t;
  }
  LH_CHECK(ids.defined(), in, " has no tensor 'input_ids'");
  LH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "input_ids must be int64 [B, N], got ", ids.scalar_type(),
           " ", ids.sizes());
  LH_CHECK(
      ids.numel() == 0 || (ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < m.model_config().vocab_size),
      "input_ids must be in [0, ", m.model_config().vocab_size, ")");
  at::NoGradGuard no_grad;
  const at::Tensor logits = m.forward(ids);
  io::save_safetensors(out, {{"logits", logits.contiguous()}}, {{"format", "pt"}});
  std::printf("wrote logits %s of %s (step %lld, %s attention) to %s\n", c10::str(logits.sizes()).c_str(), dir.c_str(),
              static_cast<long long>(ckpt.step), m.any_lighthouse() ? "Lighthouse" : "dense", out.c_str());
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(logits, "our model's logits for token ids (checks an export)", logits_main);

}  // namespace lighthouse::cli
