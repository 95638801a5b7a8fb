/*
 * Per-layer attention implementations and plans (attention.h).
 */
#include "model/attention.h"

#include <ATen/ATen.h>

#include "model/lighthouse_options.h"
#include "ops/checks.h"

namespace lighthouse::model {

const char* to_string(AttentionKind kind) { return kind == AttentionKind::kDense ? "dense" : "lighthouse"; }

at::Tensor DenseAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const AttentionContext&) const {
  // [B, N, H, d] -> the [B, H, N, d] views SDPA takes, and back.
  const bool gqa = q.size(2) != k.size(2);
  return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                          /*scale=*/std::nullopt, /*enable_gqa=*/gqa)
      .transpose(1, 2);
}

std::shared_ptr<const Attention> Attention::dense_form() const { return std::make_shared<const DenseAttention>(); }

at::Tensor LighthouseAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const AttentionContext&) const {
  return lighthouse::attention(q, k, v, options_);
}

std::string LighthouseAttention::describe() const {
  return "lighthouse L=" + std::to_string(options_.levels) + " p=" + std::to_string(options_.pool) +
         " top_k=" + std::to_string(options_.top_k) + " " + to_string(options_.scorer);
}

AttentionPlan attention_plan(const config::ModelConfig& model, const config::LighthouseConfig& lighthouse) {
  LH_CHECK(model.layers > 0, "model.layers must be positive, got ", model.layers);
  const auto dense = std::make_shared<const DenseAttention>();
  std::shared_ptr<const Attention> other = dense;
  if (model.attention != "dense") other = std::make_shared<const LighthouseAttention>(op_options(lighthouse));
  AttentionPlan plan(static_cast<size_t>(model.layers), other);
  for (const int64_t i : config::resolved_dense_layers(model)) plan[static_cast<size_t>(i)] = dense;
  return plan;
}

AttentionPlan dense_plan(int64_t layers) {
  LH_CHECK(layers > 0, "a plan needs a positive number of layers, got ", layers);
  return AttentionPlan(static_cast<size_t>(layers), std::make_shared<const DenseAttention>());
}

AttentionPlan switch_to_dense(const AttentionPlan& plan) {
  AttentionPlan out = plan;
  for (auto& a : out) {
    if (a->kind() == AttentionKind::kLighthouse) a = a->dense_form();
  }
  return out;
}

std::vector<AttentionKind> plan_kinds(const AttentionPlan& plan) {
  std::vector<AttentionKind> out;
  for (const auto& a : plan) out.push_back(a->kind());
  return out;
}

std::string plan_map(const AttentionPlan& plan) {
  std::string s;
  for (const auto& a : plan) s += a->kind() == AttentionKind::kDense ? 'D' : 'L';
  return s;
}

bool any_lighthouse(const AttentionPlan& plan) {
  for (const auto& a : plan) {
    if (a->kind() == AttentionKind::kLighthouse) return true;
  }
  return false;
}

}  // namespace lighthouse::model
