/*
 * Device helpers below the trainer and the benchmarks: wait for a device,
 * and the memory statistics of its caching allocator.
 *
 * CUDA is reached only through device-generic ATen APIs (the accelerator
 * hooks), so this file builds identically with and without a CUDA toolkit.
 * Statistics serve metrics and benchmarks only: if the allocator cannot give
 * them, a warning is printed once and they read 0.
 */
#pragma once

#include <c10/core/Device.h>

#include <cstdint>

namespace lighthouse::device {

// Waits for all work queued on `device` (no-op on CPU).
void synchronize(const at::Device& device);
// Peak bytes allocated on a CUDA device since the last reset; on CPU the
// process's peak resident set size.
int64_t peak_memory_bytes(const at::Device& device);
// Bytes allocated on a CUDA device now; 0 on CPU.
int64_t current_memory_bytes(const at::Device& device);
// Starts a new peak for peak_memory_bytes (CUDA; no-op on CPU).
void reset_peak_memory(const at::Device& device);

}  // namespace lighthouse::device
