/*
 * `lighthouse bench op --cp W` under torchrun: Lighthouse attention (and,
 * optionally, dense causal attention) under context parallelism over W ranks
 * against the one-device op on the whole sequence. Validates before timing
 * (identical entries, output close to the one-device op's at the smallest
 * valid N); times are medians over runs of the slowest rank (CUDA events or
 * a steady clock, every rank starting together after a barrier). Rank 0
 * prints the table and writes the JSON.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lighthouse::dist {

struct CpBenchArgs {
  int64_t cp = 1;      // W; dp = WORLD_SIZE / W groups run side by side
  std::string device;  // "cpu" or "cuda" (this rank's GPU is cuda:LOCAL_RANK)
  std::vector<int64_t> seq_lens;
  std::vector<int64_t> top_ks;
  int64_t batch = 1, heads = 8, kv_heads = 8, head_dim = 128, levels = 3, pool = 4;
  std::string dtype = "bfloat16";
  std::string backend = "auto";
  bool dense = true;        // also CP dense attention
  int64_t dense_max_n = 0;  // skip dense above this N (0: never)
  bool one_device = true;   // also the one-device op on the whole sequence
  int warmup = 1, repeats = 5;
  int timeout_s = 600;
  std::string json_path;
};

// Runs the benchmark; returns the exit code. Needs torchrun's environment.
int run_cp_bench(const CpBenchArgs& args);

}  // namespace lighthouse::dist
