/*
 * A Llama-3 style byte-level decoder whose layers' attention is an object
 * chosen outside the model (attention.h): stock causal SDPA, Lighthouse, or
 * later their context-parallel forms.
 *
 *   tokens [B, N], positions [N] -> embed -> L x block -> rmsnorm -> hidden [B, N, D]
 *   block: x + attention(rope(q), rope(k), v) o_proj; then x + swiglu(rmsnorm(x))
 *   hidden -> lm_head -> logits [B, N, V] (fp32)
 *
 * Invariants:
 * - Parameter names, shapes and math equal Hugging Face's LlamaForCausalLM
 *   (RoPE in the rotate-half layout, no biases, untied lm_head), so export is
 *   a rename-free copy and its logits match ours.
 * - Parameters are fp32 (the master weights). With compute dtype bf16, every
 *   matmul and attention call runs in bf16 (weights cast at use, as autocast
 *   does); norms, the residual stream, RoPE angles and the loss stay fp32.
 *   The casts are explicit rather than through autocast so that a block
 *   recomputed in backward (activation checkpointing, csrc/train) runs the
 *   very same ops on any thread.
 * - RoPE rotates each row by its position: positions int64 [N] (default
 *   0..N-1) give the tables, so a context-parallel rank's chunks, which do
 *   not start at 0 and need not be contiguous, rotate as in the whole
 *   sequence. Positions are exact as fp32 up to 2^24.
 * - The attention plan changes only through set_attention (e.g. the stage
 *   switch, switch_to_dense): weights are never touched by it.
 * - forward runs each block through the block runner (default: block()
 *   directly); training code may wrap blocks (activation checkpointing) by
 *   setting another runner. The model itself has no training policy and no
 *   parallelism; it is device-agnostic (CPU or CUDA).
 *
 * Vocabulary: ids 0..255 are bytes, 256 BOS, 257 EOS, 258 PAD; the embedding
 * and lm_head are padded to model.vocab_size rows (320 by default) so that
 * matmuls stay aligned; padded ids never occur in data.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "model/attention.h"

namespace lighthouse::model {

// The weights of one decoder layer (fp32 leaves, or detached copies during
// recompute). Order = the order of the layer's Hugging Face names.
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
  static constexpr int kCount = 9;
};

// RoPE tables of the rows of a call: cos, sin [N, d] float32.
struct RopeTables {
  at::Tensor cos, sin;
};

// Summed next-token cross-entropy and the number of targets it counts
// (targets equal to ignore_index do not count). The mean is sum / count; a
// step over several micro-batches or processes divides the total sum by
// the total count, which is exact however the rows were split.
struct TokenLoss {
  at::Tensor sum;     // float32 scalar on the model's device (differentiable)
  int64_t count = 0;  // counted targets
};
// sum / count: float32 scalar, equal bit for bit to cross_entropy's mean.
at::Tensor mean_loss(const TokenLoss& loss);

class Llama {
 public:
  // Allocates and initialises the weights on `device` from `seed` (a private
  // generator: the global RNG is not touched). Weights: normal(0, init_std);
  // o_proj and down_proj scaled by 1/sqrt(2 * layers); norms 1.
  // `attention` has one entry per layer (attention_plan(config) for the
  // config's choice).
  Llama(const config::ModelConfig& model, AttentionPlan attention, at::Device device, uint64_t seed);

  // Final hidden states [B, N, D] after the final RMSNorm, in the compute
  // dtype (what lm_head reads), for tokens int64 [B, N] at positions int64
  // [N] (undefined: 0..N-1).
  at::Tensor hidden(const at::Tensor& tokens, const at::Tensor& positions = {}) const;
  // lm_head on hidden rows [..., D] -> float32 logits [..., V]. Rows may be a
  // selection of hidden()'s (e.g. one position per sequence).
  at::Tensor logits(const at::Tensor& hidden) const;
  // logits(hidden(tokens, positions)): [B, N, V] float32.
  at::Tensor forward(const at::Tensor& tokens, const at::Tensor& positions = {}) const;

  // Cross-entropy of predicting targets int64 [B, N] from inputs int64
  // [B, N] at positions [N] (undefined: 0..N-1).
  TokenLoss token_loss(const at::Tensor& inputs, const at::Tensor& targets, int64_t ignore_index,
                       const at::Tensor& positions = {}) const;
  // The same for tokens int64 [B, N+1]: inputs the first N, targets the last N.
  TokenLoss next_token_loss(const at::Tensor& tokens, int64_t ignore_index) const;
  // Mean next-token cross-entropy of tokens [B, N+1]: sum / count. Scalar float32.
  at::Tensor loss(const at::Tensor& tokens, int64_t ignore_index) const;

  // Attention: one object per layer; size must equal model.layers.
  void set_attention(AttentionPlan plan);
  const AttentionPlan& attention_plan() const { return attention_; }
  const Attention& attention(int64_t layer) const;
  std::vector<AttentionKind> layer_kinds() const { return plan_kinds(attention_); }
  bool any_lighthouse() const { return model::any_lighthouse(attention_); }

  void set_compute_dtype(at::ScalarType dtype);  // kFloat or kBFloat16
  at::ScalarType compute_dtype() const { return compute_dtype_; }

  // Parameters in a fixed order with Hugging Face names.
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const { return params_; }
  std::vector<at::Tensor> parameters() const;
  int64_t num_parameters() const;
  // Copies `weights` into the parameters. Every name must be present with
  // the parameter's shape and no extra names; otherwise throws a message that
  // names the offending tensor and both shapes.
  void load_weights(const std::map<std::string, at::Tensor>& weights);

  const config::ModelConfig& model_config() const { return model_; }
  at::Device device() const { return device_; }
  int64_t num_layers() const { return model_.layers; }

  // Blocks, for code that wraps them (activation checkpointing).
  // The parameters of layer `layer`.
  LayerWeights layer_weights(int64_t layer) const;
  // One decoder layer on the residual stream x [B, N, D] (fp32) with weights
  // `w`, RoPE tables of its rows and the layer's attention.
  at::Tensor block(const LayerWeights& w, const at::Tensor& x, const RopeTables& rope, const Attention& attention,
                   const AttentionContext& context) const;
  // Runs layer context.layer on x inside forward; must compute
  // block(layer_weights(layer), x, rope, attention(layer), context).
  using BlockRunner = std::function<at::Tensor(const Llama& model, const at::Tensor& x, const RopeTables& rope,
                                               const AttentionContext& context)>;
  void set_block_runner(BlockRunner runner);  // {}: block() directly
  // The default runner's computation.
  at::Tensor run_block(const at::Tensor& x, const RopeTables& rope, const AttentionContext& context) const;

 private:
  at::Tensor positions_for(int64_t seq_len, const at::Tensor& positions) const;

  config::ModelConfig model_;
  AttentionPlan attention_;
  at::Device device_;
  int64_t head_dim_;
  at::ScalarType compute_dtype_ = at::kFloat;
  BlockRunner runner_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  // Index into params_ of the first tensor of each layer (then 9 in order).
  std::vector<size_t> layer_offset_;
};

// Names and shapes of the parameters of a model config, in the model's
// order (Hugging Face names). Export and checkpoint checks use it without
// building a model.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const config::ModelConfig& model);

// RoPE tables for positions int64 [N] (on the tables' device), Hugging Face
// layout: cos, sin [N, d] float32 with the d/2 frequencies repeated twice.
RopeTables rope_tables(const at::Tensor& positions, int64_t head_dim, double theta);
// The same for positions 0..N-1 on `device`.
RopeTables rope_tables(int64_t seq_len, int64_t head_dim, double theta, at::Device device);

}  // namespace lighthouse::model
