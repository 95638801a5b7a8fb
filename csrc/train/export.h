/*
 * Export of a checkpoint to a Hugging Face Llama directory:
 *
 *   config.json             LlamaForCausalLM config (rope_theta and
 *                           rope_parameters both present, for transformers
 *                           before and after 4.56), byte-level special ids
 *   generation_config.json  bos/eos/pad ids
 *   model.safetensors       the weights under their (already Hugging Face)
 *                           names, __metadata__ {"format": "pt"}
 *
 * Lighthouse is training-only: every checkpoint exports as the dense model
 * (transformers' Llama attention is causal SDPA), whatever the stage.
 * Invariants: the output directory appears only complete (temporary name,
 * then rename); weights are checked against the config's parameter shapes.
 */
#pragma once

#include <string>

namespace lighthouse::train {

struct ExportOptions {
  std::string dtype = "float32";  // float32 | bfloat16 (weights in model.safetensors)
  bool overwrite = false;         // replace an existing output directory
  std::string arm;                // the arm of a directory holding several (resolve_checkpoint)
};

// `checkpoint`: anything resolve_checkpoint accepts (a run directory given
// to `lighthouse train --run-dir`, an arm directory, a checkpoints or a
// checkpoint directory; the newest checkpoint). Returns a summary: the arm
// taken (if `checkpoint` held arms) and what was written.
std::string export_hf(const std::string& checkpoint, const std::string& out_dir, const ExportOptions& options);

}  // namespace lighthouse::train
