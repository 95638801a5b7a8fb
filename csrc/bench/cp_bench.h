/*
 * The op benchmark under context parallelism (`lighthouse bench op --cp W`,
 * run by torchrun): Lighthouse attention over W ranks (lighthouse_cp.h) on
 * each rank's head-tail chunks, against the one-device op on the whole
 * sequence, and optionally context-parallel dense causal attention.
 *
 * Before timing: identical entries and an output close to the one-device
 * op's at the smallest valid N (the tests prove exactness; this guards the
 * numbers). A timed run starts on every rank together (a barrier), is timed
 * by bench::Timer::once_ms and counts as the slowest rank's time; the median
 * over runs is reported. Every rank returns the same rows; rank 0 prints.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "bench/op_bench.h"
#include "bench/timer.h"
#include "dist/process_group.h"
#include "lighthouse/lighthouse.h"

namespace lighthouse::bench {

// One (N, top_k) measurement; times in ms, 0 where not measured.
struct CpBenchRow {
  int64_t n = 0, top_k = 0, s = 0;
  double cp_fwd = 0, cp_fwd_bwd = 0;        // Lighthouse over the CP group
  double one_fwd = 0, one_fwd_bwd = 0;      // the one-device op on the whole sequence
  double dense_fwd = 0, dense_fwd_bwd = 0;  // dense causal attention over the CP group
};

class CpBench {
 public:
  // Starts the process groups (dp = WORLD_SIZE / cp) on the configured
  // device (CUDA: cuda:LOCAL_RANK), then validates. The config as for
  // OpBench; its first dense backend, if any, runs the CP dense attention.
  // Throws c10::Error without torchrun's environment, or if validation fails.
  CpBench(OpBenchConfig config, int64_t cp, std::chrono::milliseconds timeout);

  const OpBenchConfig& config() const { return c_; }
  const dist::World& world() const { return world_; }
  const at::Device& device() const { return device_; }
  bool is_main() const { return world_.is_main(); }
  const std::string& validation() const { return validation_; }

  // Measures seq_lens[i] (a collective: every rank calls it).
  CpBenchRow run(size_t i);

  Json row_json(const CpBenchRow& row) const;
  Json document(const Json& rows) const;

 private:
  // Median over the configured runs of the slowest rank's time of `fn`.
  double median_ms(const std::function<void()>& fn) const;

  OpBenchConfig c_;
  dist::World world_;
  at::Device device_;
  at::ScalarType dtype_;
  Options options_;
  std::string validation_;
  Timer timer_;
};

}  // namespace lighthouse::bench
