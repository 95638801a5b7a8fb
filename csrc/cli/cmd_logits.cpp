/*
 * `lighthouse logits CKPT --tokens IN --out OUT`: our model's logits for
 * given token ids, for checking an export against transformers
 * (tests/python/test_export.py) or inspecting a checkpoint.
 *
 * IN: a safetensors file with an int64 tensor "input_ids" [B, N].
 * OUT: a safetensors file with the float32 tensor "logits" [B, N, vocab].
 * Runs on CPU in fp32; every layer dense unless --attention checkpoint
 * (the layer modes of the checkpoint's config and step).
 */
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "commands.h"
#include "io/safetensors_torch.h"
#include "model/llama.h"
#include "train/checkpoint.h"

namespace lighthouse::cli {
namespace {

int logits_main(int argc, char** argv) {
  std::string checkpoint, in, out, attention = "dense";
  CLI::App app{"Logits of a checkpoint's model for token ids (fp32, CPU)", "lighthouse logits"};
  app.add_option("checkpoint", checkpoint, "checkpoint directory, or a run directory (newest checkpoint)")->required();
  app.add_option("--tokens", in, "safetensors file with int64 input_ids [B, N]")->required();
  app.add_option("--out", out, "safetensors file to write float32 logits [B, N, vocab]")->required();
  app.add_option("--attention", attention, "dense (as exported) | checkpoint (the checkpoint's layer modes)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  TORCH_CHECK(attention == "dense" || attention == "checkpoint", "--attention must be dense or checkpoint, got '",
              attention, "'");
  const std::string dir = train::latest_checkpoint(checkpoint);
  if (dir.empty()) throw train::CheckpointError("no complete checkpoint in " + checkpoint);
  const train::Checkpoint ckpt = train::load_checkpoint(dir, /*with_optimizer=*/false);
  model::Llama m(ckpt.config.model, ckpt.config.lighthouse, at::kCPU, 0);
  m.load_weights(ckpt.weights);
  const int64_t switch_at = config::switch_step(ckpt.config);
  const bool switched = switch_at > 0 && ckpt.step >= switch_at;
  if (attention == "dense" || switched) m.set_all_dense();

  at::Tensor ids;
  for (const auto& [name, t] : io::load_safetensors(in)) {
    if (name == "input_ids") ids = t;
  }
  TORCH_CHECK(ids.defined(), in, " has no tensor 'input_ids'");
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "input_ids must be int64 [B, N], got ",
              ids.scalar_type(), " ", ids.sizes());
  TORCH_CHECK(
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
