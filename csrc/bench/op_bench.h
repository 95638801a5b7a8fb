/*
 * The op benchmark: Lighthouse attention against stock dense causal SDPA in
 * the same process, on CPU or CUDA (`lighthouse bench`, csrc/cli/cmd_bench.cpp).
 *
 * For each (N, top_k): forward and forward+backward time of Lighthouse, of
 * dense SDPA (the stock kernels a dense model would call, on [B, N, H, d]
 * inputs viewed as [B, H, N, d]), and of the op's inner SDPA alone on S
 * tokens (the floor: Lighthouse runs that very call); optionally each stage
 * alone (include/lighthouse/stages.h) and, on CUDA, peak memory. Before any
 * timing the op is validated (on CUDA against its CPU twin). Times are
 * medians (bench::Timer). Inputs are seeded (at::manual_seed(0) once, before
 * validation), so a rerun measures the same tensors. Lighthouse and its
 * floor are timed alternately, and their ratio is the median of the
 * per-pair ratios.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bench/report.h"
#include "bench/timer.h"
#include "lighthouse/lighthouse.h"

namespace lighthouse::bench {

// Every setting of a run, defaults resolved (the CLI fills these).
struct OpBenchConfig {
  std::string device;  // "cpu", "cuda" or "cuda:N"
  std::vector<int64_t> seq_lens;
  std::vector<int64_t> top_ks;  // one, or one per sequence length
  int64_t batch = 1;
  int64_t heads = 4;
  int64_t kv_heads = 4;
  int64_t head_dim = 64;
  int64_t levels = 3;
  int64_t pool = 4;
  std::string dtype = "float32";  // float32 | bfloat16 | float16 | float64 (or fp32, bf16, ...)
  std::string scorer = "norm";
  std::string backend = "auto";              // inner SDPA of Lighthouse
  std::vector<std::string> dense_backends;   // dense baselines; empty: none
  int warmup = 1;
  int repeats = 3;
  int64_t dense_max_n = 0;  // skip the dense baselines above this N; 0: never
  bool stages = false;      // also time each stage alone
};

// One (N, top_k) measurement; times in ms, 0 where not measured.
struct OpBenchRow {
  int64_t n = 0, top_k = 0, s = 0;
  double lh_fwd = 0, lh_fwd_bwd = 0;        // Lighthouse
  double floor_fwd = 0, floor_fwd_bwd = 0;  // inner SDPA on S tokens
  // Lighthouse over the floor: the median of per-pair ratios, the two timed
  // alternately (bench::Timer::paired_median_ms).
  double over_floor_fwd = 0, over_floor_fwd_bwd = 0;
  std::vector<std::pair<double, double>> dense;  // per dense backend: fwd, fwd+bwd
  int64_t lh_peak_bytes = 0, dense_peak_bytes = 0;  // CUDA only
  std::vector<std::pair<std::string, double>> stages;  // name, ms
};

at::ScalarType parse_dtype(const std::string& name);  // throws c10::Error naming it

class OpBench {
 public:
  // Resolves the device and options, seeds the inputs and validates the op
  // (throws c10::Error if it fails).
  explicit OpBench(OpBenchConfig config);

  const OpBenchConfig& config() const { return c_; }
  const at::Device& device() const { return device_; }
  const std::vector<SdpaBackend>& dense_backends() const { return dense_; }
  // The one-line result of the validation.
  const std::string& validation() const { return validation_; }
  // The inner SDPA backend `auto` resolves to for these inputs.
  const std::string& backend_used() const { return backend_used_; }

  // Measures seq_lens[i].
  OpBenchRow run(size_t i);

  // A row as JSON, and the whole document around the rows so far.
  Json row_json(const OpBenchRow& row) const;
  Json document(const Json& rows) const;

 private:
  OpBenchConfig c_;
  at::Device device_;
  at::ScalarType dtype_;
  Options options_;
  std::vector<SdpaBackend> dense_;
  Timer timer_;
  std::string validation_, backend_used_;
};

}  // namespace lighthouse::bench
