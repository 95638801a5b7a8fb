/*
 * Checkpoint segments, the plan's block runner and the run's checkpointing
 * (activation_checkpoint.h).
 */
#include "train/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <limits>
#include <optional>

#include "ops/checks.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace lighthouse::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
constexpr int kWeights = model::LayerWeights::kCount;

model::LayerWeights weights_from(const std::vector<at::Tensor>& w, size_t first) {
  return {w[first],     w[first + 1], w[first + 2], w[first + 3], w[first + 4],
          w[first + 5], w[first + 6], w[first + 7], w[first + 8]};
}

std::vector<at::Tensor> weight_list(const model::LayerWeights& w) {
  return {w.input_norm, w.wq, w.wk, w.wv, w.wo, w.post_norm, w.w_gate, w.w_up, w.w_down};
}

model::AttentionContext context_of(int64_t layer, const at::Tensor& positions) {
  model::AttentionContext c;
  c.layer = layer;
  c.positions = positions;
  return c;
}

// Layers [first, first + count) as one Function. Non-tensor state (the
// model, the layers, the attention objects' addresses) goes into saved_data
// as integers; the weights travel as one TensorList (one gradient each); the
// RoPE tables are optional (the fused path has none).
class SegmentCheckpoint : public torch::autograd::Function<SegmentCheckpoint> {
 public:
  static variable_list forward(AutogradContext* ctx, const model::Llama* m, int64_t first, int64_t count,
                               const at::Tensor& x, const std::optional<at::Tensor>& cos,
                               const std::optional<at::Tensor>& sin, const at::Tensor& positions,
                               at::TensorList weights) {
    std::vector<int64_t> attention_ids;
    for (int64_t j = 0; j < count; ++j) {
      attention_ids.push_back(static_cast<int64_t>(reinterpret_cast<intptr_t>(&m->attention(first + j))));
    }
    ctx->saved_data["model"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(m));
    ctx->saved_data["first"] = first;
    ctx->saved_data["count"] = count;
    ctx->saved_data["attention"] = attention_ids;
    std::vector<at::Tensor> saved = {x, cos.value_or(at::Tensor()), sin.value_or(at::Tensor()), positions};
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    const std::vector<at::Tensor> w(weights.begin(), weights.end());
    const model::RopeTables rope{cos.value_or(at::Tensor()), sin.value_or(at::Tensor())};
    at::Tensor y = x;
    for (int64_t j = 0; j < count; ++j) {
      y = m->block(weights_from(w, kWeights * j), y, rope, m->attention(first + j), context_of(first + j, positions));
    }
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto* m = reinterpret_cast<const model::Llama*>(static_cast<intptr_t>(ctx->saved_data["model"].toInt()));
    const int64_t first = ctx->saved_data["first"].toInt();
    const int64_t count = ctx->saved_data["count"].toInt();
    const std::vector<int64_t> attention_ids = ctx->saved_data["attention"].toIntVector();
    for (int64_t j = 0; j < count; ++j) {
      LH_CHECK(reinterpret_cast<intptr_t>(&m->attention(first + j)) == static_cast<intptr_t>(attention_ids[j]),
               "activation checkpoint of layer ", first + j,
               ": the layer's attention changed between forward and backward (set_attention during a step)");
    }
    const variable_list saved = ctx->get_saved_variables();
    const model::RopeTables rope{saved[1], saved[2]};
    const at::Tensor& positions = saved[3];
    const std::vector<at::Tensor> w(saved.begin() + 4, saved.end());
    // The inputs of the segment's later blocks, without a graph.
    std::vector<at::Tensor> xs = {saved[0]};
    {
      at::NoGradGuard no_grad;
      RECORD_USER_SCOPE("lh::recompute");
      for (int64_t j = 0; j + 1 < count; ++j) {
        xs.push_back(m->block(weights_from(w, kWeights * j), xs.back(), rope, m->attention(first + j),
                              context_of(first + j, positions)));
      }
    }
    at::Tensor g = grad_out[0];
    variable_list weight_grads(kWeights * count);
    for (int64_t j = count - 1; j >= 0; --j) {
      at::AutoGradMode grad_mode(true);
      variable_list inputs = {xs[j].detach().requires_grad_(true)};
      for (int i = 0; i < kWeights; ++i) inputs.push_back(w[kWeights * j + i].detach().requires_grad_(true));
      at::Tensor y;
      {
        RECORD_USER_SCOPE("lh::recompute");
        y = m->block(weights_from(inputs, 1), inputs[0], rope, m->attention(first + j),
                     context_of(first + j, positions));
      }
      const variable_list grads = torch::autograd::grad({y}, inputs, {g}, /*retain_graph=*/false,
                                                        /*create_graph=*/false, /*allow_unused=*/true);
      g = grads[0];
      for (int i = 0; i < kWeights; ++i) weight_grads[kWeights * j + i] = grads[1 + i];
      xs.pop_back();
    }
    // One entry per forward argument: model, first, count, x, cos, sin,
    // positions, then every weight.
    variable_list out = {at::Tensor(), at::Tensor(), at::Tensor(), g, at::Tensor(), at::Tensor(), at::Tensor()};
    out.insert(out.end(), weight_grads.begin(), weight_grads.end());
    return out;
  }
};

std::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

// The plan's block runner: keep and selective layers run directly (the
// model knows which are selective); a full layer that stores its input runs
// its whole segment, and the segment's other layers pass their input (the
// segment's output) through.
model::Llama::BlockRunner plan_runner(const CheckpointPlan& plan) {
  return [plan](const model::Llama& m, const at::Tensor& x, const model::RopeTables& rope,
                const model::AttentionContext& context) {
    const int64_t l = context.layer;
    if (!at::GradMode::is_enabled() || plan.layers[l] != LayerRecompute::kFull) return m.run_block(x, rope, context);
    if (!plan.stores_input[l]) return x;
    int64_t count = 1;
    const int64_t L = static_cast<int64_t>(plan.layers.size());
    while (l + count < L && plan.layers[l + count] == LayerRecompute::kFull && !plan.stores_input[l + count]) ++count;
    std::vector<at::Tensor> weights;
    for (int64_t j = 0; j < count; ++j) {
      const std::vector<at::Tensor> w = weight_list(m.layer_weights(l + j));
      weights.insert(weights.end(), w.begin(), w.end());
    }
    return SegmentCheckpoint::apply(&m, l, count, x, optional_of(rope.cos), optional_of(rope.sin), context.positions,
                                    at::TensorList(weights))[0];
  };
}

double device_memory_bytes(const at::Device& device) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.index() >= 0 ? device.index() : at::cuda::current_device();
    return static_cast<double>(at::cuda::getDeviceProperties(index)->totalGlobalMem);
  }
#endif
  (void)device;
  return std::numeric_limits<double>::infinity();
}

}  // namespace

void apply_checkpoint_plan(model::Llama& model, const CheckpointPlan& plan) {
  const int64_t L = model.num_layers();
  LH_CHECK(static_cast<int64_t>(plan.layers.size()) == L && static_cast<int64_t>(plan.stores_input.size()) == L,
           "checkpoint plan: ", static_cast<int64_t>(plan.layers.size()), " layers for a model of ", L);
  std::vector<bool> selective(L, false);
  bool any_full = false;
  for (int64_t l = 0; l < L; ++l) {
    const LayerRecompute r = plan.layers[l];
    LH_CHECK(r != LayerRecompute::kSelective || model.fused(), "checkpoint plan: layer ", l,
             " is selective, which needs the fused path (train.fused)");
    LH_CHECK(
        r != LayerRecompute::kFull || plan.stores_input[l] || (l > 0 && plan.layers[l - 1] == LayerRecompute::kFull),
        "checkpoint plan: layer ", l, " does not store its input but follows no full layer");
    // Inside a full layer's recompute the fused block runs selectively too.
    selective[l] = model.fused() && r != LayerRecompute::kNone;
    any_full = any_full || r == LayerRecompute::kFull;
  }
  model.set_selective_recompute(model.fused() ? selective : std::vector<bool>());
  model.set_block_runner(any_full ? plan_runner(plan) : model::Llama::BlockRunner());
}

void apply_activation_checkpointing(model::Llama& model, bool on) {
  CheckpointPlan plan;
  plan.layers.assign(model.num_layers(), on ? LayerRecompute::kFull : LayerRecompute::kNone);
  plan.stores_input.assign(model.num_layers(), true);
  apply_checkpoint_plan(model, plan);
}

std::string configure_checkpointing(model::Llama& model, const config::Config& cfg, const at::Device& device) {
  if (!cfg.train.activation_checkpointing) {
    apply_activation_checkpointing(model, false);
    return "none";
  }
  if (!model.fused()) {
    apply_activation_checkpointing(model, true);
    return "full, every layer";
  }
  std::vector<bool> lighthouse;
  for (const auto kind : model.layer_kinds()) lighthouse.push_back(kind == model::AttentionKind::kLighthouse);
  const int64_t dtype_bytes = static_cast<int64_t>(at::elementSize(model.compute_dtype()));
  const MemoryModel mm = memory_model(cfg, lighthouse, dtype_bytes, model.num_parameters());
  const double budget = cfg.train.memory_budget_gb > 0 ? cfg.train.memory_budget_gb * 1024.0 * 1024.0 * 1024.0
                                                       : 0.9 * device_memory_bytes(device);
  const CheckpointPlan plan = plan_checkpointing(mm, budget, /*fused=*/true);
  apply_checkpoint_plan(model, plan);
  return plan.describe();
}

}  // namespace lighthouse::train
