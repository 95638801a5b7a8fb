/*
 * Where and how a run computes: device, compute dtype, CPU threads,
 * determinism; plus RNG state for checkpoints (memory statistics:
 * csrc/device/device.h).
 *
 * CUDA is reached only through device-generic ATen APIs (the accelerator
 * hooks, the default generator of a device, the caching allocator's stats),
 * so this file builds identically with and without a CUDA toolkit.
 *
 * Deterministic mode (bit-exact CPU reruns on one machine): a fixed number of
 * intra-op threads (reductions split by thread count), deterministic ATen
 * algorithms, and MKL's conditional numerical reproducibility. MKL picks its
 * code path (and with it the rounding) per CPU and per memory alignment
 * unless MKL_CBWR is set before its first call, so deterministic_env() must
 * run at process start; ATEN_CPU_CAPABILITY is pinned likewise so that
 * ATen's own vectorised kernels take the same path on every x86-64 machine
 * with AVX2. On CUDA it also sets CUBLAS_WORKSPACE_CONFIG; cuDNN/flash SDPA
 * backward may still refuse deterministic mode (then it is an error).
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "config/config.h"
#include "device/device.h"

namespace lighthouse::train {

// Sets the environment variables deterministic mode needs (MKL_CBWR,
// ATEN_CPU_CAPABILITY, CUBLAS_WORKSPACE_CONFIG) unless the user set them.
// Call before any tensor operation of the process.
void deterministic_env();

struct Runtime {
  at::Device device = at::kCPU;
  at::ScalarType compute_dtype = at::kFloat;
  int threads = 0;
  bool deterministic = false;
  std::string describe() const;  // "cpu, fp32, 2 threads, deterministic"
};

// Resolves train.device / train.precision / train.threads and applies the
// thread count and determinism flags. Throws a clear error when CUDA is
// asked for but unavailable.
Runtime setup_runtime(const config::TrainConfig& train);

// Device synchronisation and memory statistics live below the trainer
// (csrc/device/device.h), shared with the benchmarks.
using device::peak_memory_bytes;
using device::reset_peak_memory;
using device::synchronize;

// The default generator's state of `device` (CPU or CUDA) as a hex string,
// and back.
std::string rng_state_hex(const at::Device& device);
void set_rng_state_hex(const at::Device& device, const std::string& hex);

}  // namespace lighthouse::train
