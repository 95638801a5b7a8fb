/*
 * The training-step benchmark (`lighthouse bench train`, issue 14): a
 * preset's step (one micro-batch: forward with the loss, backward, gradient
 * clipping and AdamW) timed phase by phase on CPU or CUDA, Lighthouse and
 * dense, without and with the fused kernels, in one process.
 *
 * Per configuration: the model is built as the trainer builds it (compute
 * dtype from train.precision, the activation checkpoint plan of
 * train/memory_plan.h when fused, else the preset's full checkpointing),
 * `warmup` untimed steps, then `steps` timed steps (CUDA events, or a steady
 * clock on CPU, per phase; medians), the peak memory of the timed steps, and
 * one more step under the profiler for the breakdown by category
 * (train_profile.h). Tokens are random bytes (seeded): throughput does not
 * depend on them. Model FLOPs and MFU: train_flops.h.
 *
 * "lighthouse" is the preset's Stage-1 layout (its dense_layers stay dense);
 * "dense" makes every layer dense SDPA.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "bench/report.h"
#include "bench/train_flops.h"
#include "bench/train_profile.h"
#include "config/config.h"

namespace lighthouse::bench {

struct TrainBenchConfig {
  config::Config config;  // the preset with overrides applied (grad_accum is taken as 1)
  std::string preset;     // for reports
  std::string device;     // "cpu", "cuda" or "cuda:N"
  int warmup = 1;
  int steps = 2;
  bool profile = true;
  double peak_flops = 0;  // FLOP/s for MFU; 0: the datasheet peak of the device (0 on CPU: no MFU)
};

struct TrainBenchRun {
  std::string attention;  // "lighthouse" | "dense"
  bool fused = false;
  std::string layers;                                                     // "DDLL...L" (D dense, L Lighthouse)
  std::string checkpointing;                                              // the plan, or "none" / "full"
  bool fused_optimizer = false;                                           // fused::adamw_ (train/optim.h)
  int64_t tokens = 0;                                                     // per step
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0, step_ms = 0;  // medians
  double tokens_per_s = 0;
  StepFlops flops;
  double achieved_flops = 0;   // model FLOP/s
  double mfu = 0;              // achieved / peak; 0 without a peak
  int64_t peak_bytes = 0;      // CUDA: allocator peak during the timed steps
  std::vector<double> losses;  // every step's, warm-up included
  bool profiled = false;
  Breakdown breakdown;
};

class TrainBench {
 public:
  explicit TrainBench(TrainBenchConfig config);

  // One configuration: "lighthouse" or "dense", without or with the fused path.
  TrainBenchRun run(const std::string& attention, bool fused);

  Json run_json(const TrainBenchRun& run) const;
  Json document(const Json& runs) const;

  const at::Device& device() const { return device_; }
  double peak_flops() const { return peak_flops_; }
  const std::string& peak_source() const { return peak_source_; }

 private:
  TrainBenchConfig c_;
  at::Device device_;
  double peak_flops_ = 0;
  std::string peak_source_;
};

// The FLOP formula and categories as text, for reports.
std::string method_note();

}  // namespace lighthouse::bench
