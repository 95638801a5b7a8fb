/*
 * AdamW, the learning-rate schedule and grad-norm clipping (optim.h).
 */
#include "train/optim.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "ops/fused.h"

namespace lighthouse::train {

AdamW::AdamW(const std::vector<std::pair<std::string, at::Tensor>>& params, const config::OptimConfig& cfg,
             AdamWImpl impl)
    : cfg_(cfg) {
  bool fusable = !params.empty();
  for (const auto& [name, p] : params) {
    slots_.push_back({name, p, at::zeros_like(p, at::MemoryFormat::Contiguous),
                      at::zeros_like(p, at::MemoryFormat::Contiguous), p.dim() >= 2});
    fusable = fusable && p.scalar_type() == at::kFloat && p.is_contiguous() && p.device() == params[0].second.device();
  }
  fused_ = impl == AdamWImpl::kFused || (impl == AdamWImpl::kAuto && fusable && params[0].second.is_cuda());
  TORCH_CHECK(!fused_ || fusable,
              "fused AdamW needs contiguous float32 parameters on one device; use the unfused implementation");
}

void AdamW::step_fused(double lr) {
  // Parameters without a gradient skip the update but not the count, as in
  // the unfused path.
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
  std::vector<bool> decay;
  for (Slot& s : slots_) {
    if (!s.param.grad().defined()) continue;
    params.push_back(s.param);
    grads.push_back(s.param.grad());
    exp_avgs.push_back(s.exp_avg);
    exp_avg_sqs.push_back(s.exp_avg_sq);
    decay.push_back(s.decay);
  }
  fused::adamw_(params, grads, exp_avgs, exp_avg_sqs, decay, lr, cfg_.beta1, cfg_.beta2, cfg_.weight_decay, cfg_.eps,
                steps_taken_);
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_taken_;
  if (fused_) {
    step_fused(lr);
    return;
  }
  const double bias1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(steps_taken_));
  const double bias2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(steps_taken_));
  const double step_size = lr / bias1;
  for (Slot& s : slots_) {
    const at::Tensor& grad = s.param.grad();
    if (!grad.defined()) continue;
    // Same operations, in the same order, as torch::optim::AdamW::step.
    if (s.decay && cfg_.weight_decay != 0) s.param.mul_(1 - lr * cfg_.weight_decay);
    s.exp_avg.mul_(cfg_.beta1).add_(grad, 1 - cfg_.beta1);
    s.exp_avg_sq.mul_(cfg_.beta2).addcmul_(grad, grad, 1 - cfg_.beta2);
    const at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(cfg_.eps);
    s.param.addcdiv_(s.exp_avg, denom, -step_size);
  }
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> out;
  for (const Slot& s : slots_) {
    out["exp_avg." + s.name] = s.exp_avg;
    out["exp_avg_sq." + s.name] = s.exp_avg_sq;
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state, int64_t steps_taken) {
  TORCH_CHECK(steps_taken >= 0, "optimizer state: negative update count ", steps_taken);
  at::NoGradGuard no_grad;
  for (Slot& s : slots_) {
    const std::pair<std::string, at::Tensor*> moments[] = {{"exp_avg." + s.name, &s.exp_avg},
                                                           {"exp_avg_sq." + s.name, &s.exp_avg_sq}};
    for (const auto& [key, dst] : moments) {
      const auto it = state.find(key);
      TORCH_CHECK(it != state.end(), "optimizer state: missing tensor '", key, "'");
      TORCH_CHECK(it->second.sizes() == dst->sizes(), "optimizer state: tensor '", key, "' has shape ",
                  it->second.sizes(), " but the parameter has shape ", dst->sizes());
      dst->copy_(it->second);
    }
  }
  TORCH_CHECK(state.size() == 2 * slots_.size(), "optimizer state: ", state.size(), " tensors, expected ",
              2 * slots_.size(), " (exp_avg and exp_avg_sq of each parameter)");
  steps_taken_ = steps_taken;
}

double lr_at(const config::Config& cfg, int64_t step) {
  const config::OptimConfig& o = cfg.optim;
  if (o.warmup_steps > 0 && step <= o.warmup_steps) {
    return o.lr * static_cast<double>(step) / static_cast<double>(o.warmup_steps);
  }
  const int64_t decay_steps = cfg.train.steps - o.warmup_steps;
  const double progress =
      decay_steps <= 0 ? 1.0
                       : std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(decay_steps));
  const double floor = o.min_lr_ratio;
  if (o.schedule == "cosine") return o.lr * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress)));
  if (o.schedule == "linear") return o.lr * (1 - (1 - floor) * progress);
  return o.lr;
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  // On CUDA one multi-tensor launch for the norms and one for the scaling
  // (as torch.nn.utils.clip_grad_norm_ with foreach); on CPU one op per
  // tensor, so CPU results stay exactly what they were.
  const bool foreach = grads.front().is_cuda();
  std::vector<at::Tensor> norms;
  if (foreach) {
    norms = at::_foreach_norm(grads, 2);
  } else {
    for (const auto& g : grads) norms.push_back(g.norm(2));
  }
  for (auto& n : norms) n = n.to(at::kFloat);
  const at::Tensor total = at::stack(norms).norm(2);
  const double value = total.item<double>();
  if (max_norm > 0 && std::isfinite(value)) {
    // As torch: clip_coef = max_norm / (norm + 1e-6), clamped to 1, applied on
    // the device without a second synchronisation.
    const at::Tensor coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    if (foreach) {
      at::_foreach_mul_(grads, coef.to(grads.front().scalar_type()));
    } else {
      for (const auto& g : grads) g.mul_(coef.to(g.scalar_type()));
    }
  }
  return value;
}

}  // namespace lighthouse::train
