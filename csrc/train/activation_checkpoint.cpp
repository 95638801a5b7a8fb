/*
 * The reentrant block checkpoint (activation_checkpoint.h).
 */
#include "train/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>

#include "ops/checks.h"

namespace lighthouse::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
constexpr int kWeights = model::LayerWeights::kCount;

model::LayerWeights weights_from(const variable_list& w, size_t first) {
  return {w[first],     w[first + 1], w[first + 2], w[first + 3], w[first + 4],
          w[first + 5], w[first + 6], w[first + 7], w[first + 8]};
}

// Tensor arguments are listed one by one because custom Functions do not
// traverse vectors. Non-tensor state (the model, the layer, the attention
// object's address) goes into saved_data as integers.
class BlockCheckpoint : public torch::autograd::Function<BlockCheckpoint> {
 public:
  static variable_list forward(AutogradContext* ctx, const model::Llama* m, int64_t layer, const at::Tensor& x,
                               const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& positions,
                               const at::Tensor& w0, const at::Tensor& w1, const at::Tensor& w2, const at::Tensor& w3,
                               const at::Tensor& w4, const at::Tensor& w5, const at::Tensor& w6, const at::Tensor& w7,
                               const at::Tensor& w8) {
    const model::Attention& attention = m->attention(layer);
    ctx->saved_data["model"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(m));
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["attention"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(&attention));
    ctx->save_for_backward({x, cos, sin, positions, w0, w1, w2, w3, w4, w5, w6, w7, w8});
    model::AttentionContext context;
    context.layer = layer;
    context.positions = positions;
    return {m->block(model::LayerWeights{w0, w1, w2, w3, w4, w5, w6, w7, w8}, x, {cos, sin}, attention, context)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto* m = reinterpret_cast<const model::Llama*>(static_cast<intptr_t>(ctx->saved_data["model"].toInt()));
    const int64_t layer = ctx->saved_data["layer"].toInt();
    const model::Attention& attention = m->attention(layer);
    LH_CHECK(reinterpret_cast<intptr_t>(&attention) == static_cast<intptr_t>(ctx->saved_data["attention"].toInt()),
             "activation checkpoint of layer ", layer,
             ": the layer's attention changed between forward and backward (set_attention during a step)");
    const variable_list saved = ctx->get_saved_variables();
    at::AutoGradMode grad_mode(true);
    variable_list inputs;  // x, then the 9 weights
    inputs.push_back(saved[0].detach().requires_grad_(true));
    for (int i = 0; i < kWeights; ++i) inputs.push_back(saved[4 + i].detach().requires_grad_(true));
    model::AttentionContext context;
    context.layer = layer;
    context.positions = saved[3];
    const at::Tensor y = m->block(weights_from(inputs, 1), inputs[0], {saved[1], saved[2]}, attention, context);
    const variable_list g = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                  /*create_graph=*/false, /*allow_unused=*/true);
    // One entry per forward argument: model, layer, x, cos, sin, positions, w0..w8.
    variable_list out = {at::Tensor(), at::Tensor(), g[0], at::Tensor(), at::Tensor(), at::Tensor()};
    for (int i = 0; i < kWeights; ++i) out.push_back(g[1 + i]);
    return out;
  }
};

at::Tensor checkpointed_block(const model::Llama& m, const at::Tensor& x, const model::RopeTables& rope,
                              const model::AttentionContext& context) {
  if (!at::GradMode::is_enabled()) return m.run_block(x, rope, context);
  const model::LayerWeights w = m.layer_weights(context.layer);
  return BlockCheckpoint::apply(&m, context.layer, x, rope.cos, rope.sin, context.positions, w.input_norm, w.wq, w.wk,
                                w.wv, w.wo, w.post_norm, w.w_gate, w.w_up, w.w_down)[0];
}

}  // namespace

void apply_activation_checkpointing(model::Llama& model, bool on) {
  model.set_block_runner(on ? model::Llama::BlockRunner(checkpointed_block) : model::Llama::BlockRunner());
}

}  // namespace lighthouse::train
