/*
 * Checkpoint -> Hugging Face Llama directory (export.h). Paths go through
 * io/files.h, never std::filesystem (see checkpoint.cpp).
 */
#include "train/export.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/tokenizer.h"
#include "io/files.h"
#include "io/safetensors_torch.h"
#include "model/llama.h"
#include "train/checkpoint.h"

namespace lighthouse::train {
using Json = nlohmann::ordered_json;

namespace {

Json hf_config(const config::Config& c, const std::string& dtype) {
  const config::ModelConfig& m = c.model;
  return Json{
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", m.vocab_size},
      {"hidden_size", m.d_model},
      {"intermediate_size", m.ffn_hidden},
      {"num_hidden_layers", m.layers},
      {"num_attention_heads", m.heads},
      {"num_key_value_heads", m.kv_heads},
      {"head_dim", config::head_dim(m)},
      {"hidden_act", "silu"},
      {"max_position_embeddings", c.train.seq_len},
      {"initializer_range", m.init_std},
      {"rms_norm_eps", m.norm_eps},
      {"rope_theta", m.rope_theta},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", m.rope_theta}}},
      {"rope_scaling", nullptr},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"mlp_bias", false},
      {"pretraining_tp", 1},
      {"tie_word_embeddings", false},
      {"use_cache", true},
      {"bos_token_id", data::kBos},
      {"eos_token_id", data::kEos},
      {"pad_token_id", data::kPad},
      {"torch_dtype", dtype},
      {"dtype", dtype},
  };
}

}  // namespace

std::string export_hf(const std::string& checkpoint, const std::string& out_dir, const ExportOptions& opt) {
  if (opt.dtype != "float32" && opt.dtype != "bfloat16") {
    throw std::runtime_error("export: --dtype must be float32 or bfloat16, got '" + opt.dtype + "'");
  }
  const CheckpointRef ref = resolve_checkpoint(checkpoint, opt.arm);
  const std::string& dir = ref.checkpoint;
  const Checkpoint ckpt = load_checkpoint(dir, /*with_optimizer=*/false);

  // The weights must be exactly the config's parameters.
  io::NamedTensors tensors;
  const auto shapes = model::parameter_shapes(ckpt.config.model);
  if (ckpt.weights.size() != shapes.size()) {
    throw CheckpointError("checkpoint " + dir + " has " + std::to_string(ckpt.weights.size()) +
                          " tensors, its config describes " + std::to_string(shapes.size()));
  }
  const at::ScalarType dtype = opt.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  for (const auto& [name, shape] : shapes) {
    const auto it = ckpt.weights.find(name);
    if (it == ckpt.weights.end()) throw CheckpointError("checkpoint " + dir + " lacks tensor '" + name + "'");
    if (it->second.sizes().vec() != shape) {
      throw CheckpointError("checkpoint " + dir + ": tensor '" + name + "' does not have its config's shape");
    }
    tensors.emplace_back(name, it->second.to(dtype));
  }

  std::string out = out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (io::path_exists(out) && !opt.overwrite) {
    throw std::runtime_error("export: " + out_dir + " exists; choose another directory or pass --overwrite");
  }
  const size_t slash = out.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : out.substr(0, slash);
  const std::string name = slash == std::string::npos ? out : out.substr(slash + 1);
  io::make_dirs(parent);
  const std::string tmp = parent + "/.tmp-" + name + "-" + std::to_string(getpid());
  io::remove_tree(tmp);
  io::make_dirs(tmp);
  io::save_safetensors(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
  io::write_file_atomic(tmp + "/config.json", hf_config(ckpt.config, opt.dtype).dump(2) + "\n");
  const Json gen = {{"bos_token_id", data::kBos}, {"eos_token_id", data::kEos}, {"pad_token_id", data::kPad}};
  io::write_file_atomic(tmp + "/generation_config.json", gen.dump(2) + "\n");
  io::remove_tree(out);
  io::rename_path(tmp, out);

  int64_t n = 0;
  for (const auto& [name, t] : tensors) n += t.numel();
  const std::string arm = describe_arm_choice(ref, checkpoint);
  return (arm.empty() ? "" : "using " + arm + "\n") + "exported " + dir + " (step " + std::to_string(ckpt.step) + ", " +
         std::to_string(n) + " parameters, " + opt.dtype + ") to " + out_dir + " as a dense LlamaForCausalLM";
}

}  // namespace lighthouse::train
