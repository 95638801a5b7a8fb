/*
 * A Llama-3 style byte-level decoder whose layers run either stock causal
 * SDPA ("dense") or Lighthouse attention.
 *
 *   tokens [B, N] -> embed -> L x (x + attn(rmsnorm(x)); x + swiglu(rmsnorm(x)))
 *                 -> rmsnorm -> lm_head -> logits [B, N, V] (fp32)
 *
 * Invariants:
 * - Parameter names, shapes and math equal Hugging Face's LlamaForCausalLM
 *   (RoPE in the rotate-half layout, no biases, untied lm_head), so export is
 *   a rename-free copy and its logits match ours.
 * - Parameters are fp32 (the master weights). With compute dtype bf16, every
 *   matmul and attention call runs in bf16 (weights cast at use, as autocast
 *   does); norms, the residual stream, RoPE angles and the loss stay fp32.
 *   The casts are explicit rather than through autocast so that recompute in
 *   backward (activation checkpointing) runs the very same ops on any thread.
 * - Lighthouse layers call lighthouse::attention on q, k, v in [B, N, H, d]
 *   exactly as projected (no transposes); dense layers call
 *   at::scaled_dot_product_attention(is_causal=true) on the [B, H, N, d] view.
 * - A layer's mode changes only through set_all_dense() (the stage switch):
 *   weights are never touched by it.
 * - No parallelism here; the model is device-agnostic (CPU or CUDA).
 *
 * Vocabulary: ids 0..255 are bytes, 256 BOS, 257 EOS, 258 PAD; the embedding
 * and lm_head are padded to model.vocab_size rows (320 by default) so that
 * matmuls stay aligned; padded ids never occur in data.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lighthouse/lighthouse.h"
#include "config/config.h"

namespace lighthouse::model {

enum class AttentionMode { kDense, kLighthouse };
const char* to_string(AttentionMode mode);

// The weights of one decoder layer (fp32 leaves, or detached copies during
// recompute). Order = the order of kLayerParamNames.
struct LayerWeights {
  at::Tensor input_norm;  // [D]
  at::Tensor wq;          // [H*d, D]
  at::Tensor wk;          // [H_kv*d, D]
  at::Tensor wv;          // [H_kv*d, D]
  at::Tensor wo;          // [D, H*d]
  at::Tensor post_norm;   // [D]
  at::Tensor w_gate;      // [F, D]
  at::Tensor w_up;        // [F, D]
  at::Tensor w_down;      // [D, F]
};

class Llama {
 public:
  // Allocates and initialises the weights on `device` from `seed` (a private
  // generator: the global RNG is not touched). Weights: normal(0, init_std);
  // o_proj and down_proj scaled by 1/sqrt(2 * layers); norms 1.
  Llama(const config::ModelConfig& model, const config::LighthouseConfig& lighthouse, at::Device device, uint64_t seed);

  // logits [B, N, vocab] float32 for tokens int64 [B, N].
  at::Tensor forward(const at::Tensor& tokens) const;
  // Mean next-token cross-entropy of tokens int64 [B, N+1] (inputs are the
  // first N, targets the last N; targets equal to ignore_index, e.g. PAD,
  // do not count). Scalar float32.
  at::Tensor loss(const at::Tensor& tokens, int64_t ignore_index) const;

  // The stage switch: every Lighthouse layer becomes dense. Returns how many
  // layers changed.
  int64_t set_all_dense();
  AttentionMode layer_mode(int64_t layer) const { return modes_.at(layer); }
  const std::vector<AttentionMode>& layer_modes() const { return modes_; }
  bool any_lighthouse() const;

  void set_compute_dtype(at::ScalarType dtype);  // kFloat or kBFloat16
  at::ScalarType compute_dtype() const { return compute_dtype_; }
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }

  // Parameters in a fixed order with Hugging Face names.
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const { return params_; }
  std::vector<at::Tensor> parameters() const;
  int64_t num_parameters() const;
  // Copies `weights` into the parameters. Every name must be present with
  // the parameter's shape and no extra names; otherwise throws a message that
  // names the offending tensor and both shapes.
  void load_weights(const std::map<std::string, at::Tensor>& weights);

  const config::ModelConfig& model_config() const { return model_; }
  const config::LighthouseConfig& lighthouse_config() const { return lighthouse_; }
  at::Device device() const { return device_; }

  // One decoder layer on the residual stream x [B, N, D] (fp32), with RoPE
  // tables cos, sin [N, d]. Public for the checkpoint recompute.
  at::Tensor block(const LayerWeights& w, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                   AttentionMode mode) const;

 private:
  at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, AttentionMode mode) const;
  LayerWeights layer_weights(int64_t layer) const;

  config::ModelConfig model_;
  config::LighthouseConfig lighthouse_;
  lighthouse::Options lh_options_;
  at::Device device_;
  int64_t head_dim_;
  std::vector<AttentionMode> modes_;
  at::ScalarType compute_dtype_ = at::kFloat;
  bool checkpointing_ = false;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  // Index into params_ of the first tensor of each layer (then 9 in order).
  std::vector<size_t> layer_offset_;
};

// Names and shapes of the parameters of a model config, in the model's
// order (Hugging Face names). Export and checkpoint checks use it without
// building a model.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const config::ModelConfig& model);

// RoPE tables for positions 0..N-1, Hugging Face layout: cos, sin [N, d]
// float32 with the d/2 frequencies repeated twice.
std::pair<at::Tensor, at::Tensor> rope_tables(int64_t seq_len, int64_t head_dim, double theta, at::Device device);

}  // namespace lighthouse::model
