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
};

// `checkpoint`: a checkpoint, checkpoints or run directory (newest
// checkpoint). Returns a one-line summary.
std::string export_hf(const std::string& checkpoint, const std::string& out_dir, const ExportOptions& options);

}  // namespace lighthouse::train
