/*
 * The optimizer side of a training step: AdamW, the learning-rate schedule
 * and global gradient-norm clipping.
 *
 * AdamW performs the update of torch::optim::AdamW (decoupled weight decay,
 * bias-corrected moments) with its state kept in plain named tensors, so
 * that a checkpoint stores and restores it without optimizer internals.
 * Weight decay applies to matrices (embedding, projections, lm_head), not to
 * norm gains. Two implementations of the same update:
 *  - unfused: per parameter, exactly torch::optim::AdamW's tensor ops (bit
 *    for bit: tests/cpp/train/test_optim.cpp); the default on CPU;
 *  - fused: our multi-tensor kernel (fused::adamw_, one launch per 48
 *    tensors, one pass over each parameter, gradient and moment) on the fp32
 *    master weights; the default on CUDA. It rounds each operation as the
 *    unfused update does (scalars in double, then fp32), so it equals the
 *    unfused update within the tolerance rule (test_optim on CPU,
 *    tests/gpu/test_fused_train.py on CUDA), and CPU and CUDA agree bit for
 *    bit (tests/gpu/test_fused_cuda.py). It replaced ATen's at::_fused_adamw_,
 *    which on CUDA rounds differently enough to break the rule (H200,
 *    2026-12-01: error 6.5e-6 against a bound of 3.8e-6).
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace lighthouse::train {

// Which implementation AdamW::step runs; kAuto: fused when every parameter
// is an fp32 CUDA tensor on one device, unfused otherwise.
enum class AdamWImpl { kAuto, kUnfused, kFused };

class AdamW {
 public:
  // `params`: named leaves (the model's named_parameters()). Moments are
  // allocated as zeros like each parameter.
  AdamW(const std::vector<std::pair<std::string, at::Tensor>>& params, const config::OptimConfig& cfg,
        AdamWImpl impl = AdamWImpl::kAuto);

  // One update with learning rate `lr` from the parameters' .grad().
  // A parameter without a gradient is left alone (its moments too).
  void step(double lr);

  // Updates taken so far (bias correction uses it).
  int64_t steps_taken() const { return steps_taken_; }
  // Whether step() runs the fused multi-tensor kernel.
  bool fused() const { return fused_; }

  // "exp_avg.<name>" and "exp_avg_sq.<name>" for every parameter.
  std::map<std::string, at::Tensor> state() const;
  // Restores state() output and the update count; every tensor must be
  // present with its parameter's shape (throws naming the tensor otherwise).
  void load_state(const std::map<std::string, at::Tensor>& state, int64_t steps_taken);

 private:
  struct Slot {
    std::string name;
    at::Tensor param, exp_avg, exp_avg_sq;
    bool decay;
  };
  void step_fused(double lr);

  std::vector<Slot> slots_;
  config::OptimConfig cfg_;
  int64_t steps_taken_ = 0;
  bool fused_ = false;
};

// Learning rate of (1-based) step `step`: linear warm-up from 0 over
// optim.warmup_steps, then optim.schedule down to lr * min_lr_ratio at
// train.steps.
double lr_at(const config::Config& cfg, int64_t step);

// The global L2 norm of all gradients (as torch.nn.utils.clip_grad_norm_);
// if max_norm > 0 and the norm is finite, scales the gradients so that the
// norm is at most max_norm. Returns the norm before clipping (inf or nan if
// any gradient is not finite). Parameters without a gradient are skipped.
// On CUDA through multi-tensor (foreach) kernels.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace lighthouse::train
