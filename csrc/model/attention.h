/*
 * The attention of a decoder layer, as an interface the model calls.
 *
 *   Llama::block(...) -> attention.forward(q, k, v, context) -> o
 *
 * The model owns one Attention object per layer (an AttentionPlan) but never
 * chooses it: attention_plan() builds the plan from the config, and the stage
 * switch swaps the Lighthouse layers' objects for dense ones (switch_to_dense)
 * through Llama::set_attention. Implementations here:
 *   DenseAttention       stock causal SDPA (at::scaled_dot_product_attention,
 *                        is_causal = true, enable_gqa when H != H_kv)
 *   LighthouseAttention  lighthouse::attention with fixed Options
 * Context-parallel forms (a rank holding some chunks of the sequence) are
 * further implementations: they read the rank's global token positions from
 * the AttentionContext and keep their process group themselves.
 *
 * Invariants:
 * - forward takes q [B, N, H, d] and k, v [B, N, H_kv, d] (H % H_kv == 0) in
 *   the compute dtype, exactly as projected and rotated (no transposes), and
 *   returns [B, N, H, d] in the same dtype; rows are causal in the order of
 *   context.positions.
 * - Attention objects are immutable and hold no tensors: they may be shared
 *   between layers and models and used from any thread (the activation
 *   checkpoint's recompute runs them again in backward, bit-identically).
 * - kind() says what the layer computes (dense or Lighthouse) whatever the
 *   implementation (a context-parallel dense layer is still kDense); metrics,
 *   checkpoints and the stage switch go by it.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lighthouse/lighthouse.h"
#include "config/config.h"

namespace lighthouse::model {

enum class AttentionKind { kDense, kLighthouse };
const char* to_string(AttentionKind kind);  // "dense" | "lighthouse"

// What a layer's attention may need besides q, k, v.
struct AttentionContext {
  int64_t layer = 0;     // decoder layer index
  at::Tensor positions;  // int64 [N] on the model's device: the global position of each row
                         // (0..N-1 on one device; a context-parallel rank's chunks otherwise)
};

class Attention {
 public:
  virtual ~Attention() = default;
  // q [B, N, H, d], k, v [B, N, H_kv, d] -> [B, N, H, d], same dtype.
  virtual at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const AttentionContext& context) const = 0;
  virtual AttentionKind kind() const = 0;
  // For logs: "dense SDPA", "lighthouse L=3 p=4 top_k=512 norm", ...
  virtual std::string describe() const = 0;
  // What this layer becomes at the stage switch (asked of kLighthouse
  // layers only): a DenseAttention by default; a context-parallel form
  // returns its context-parallel dense counterpart.
  virtual std::shared_ptr<const Attention> dense_form() const;
};

class DenseAttention final : public Attention {
 public:
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const AttentionContext& context) const override;
  AttentionKind kind() const override { return AttentionKind::kDense; }
  std::string describe() const override { return "dense SDPA (causal)"; }
};

class LighthouseAttention final : public Attention {
 public:
  explicit LighthouseAttention(const Options& options) : options_(options) {}
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const AttentionContext& context) const override;
  AttentionKind kind() const override { return AttentionKind::kLighthouse; }
  std::string describe() const override;
  const Options& options() const { return options_; }

 private:
  Options options_;
};

// One attention object per decoder layer.
using AttentionPlan = std::vector<std::shared_ptr<const Attention>>;

// The plan of a config: model.attention for every layer except
// model.dense_layers, which are dense; Lighthouse layers use the
// [lighthouse] options (op_options).
AttentionPlan attention_plan(const config::ModelConfig& model, const config::LighthouseConfig& lighthouse);
// Every layer dense.
AttentionPlan dense_plan(int64_t layers);
// The stage switch: every layer whose kind is kLighthouse becomes its
// dense_form() (a DenseAttention unless the implementation says otherwise);
// the others are kept as they are (the same objects).
AttentionPlan switch_to_dense(const AttentionPlan& plan);

// Per-layer kinds and a map such as "DLLD" (D dense, L Lighthouse).
std::vector<AttentionKind> plan_kinds(const AttentionPlan& plan);
std::string plan_map(const AttentionPlan& plan);
bool any_lighthouse(const AttentionPlan& plan);

}  // namespace lighthouse::model
