/*
 * Running a kernel on the tensors' device, for the op library's .cpp files
 * (stages.cpp, fused.cpp): the CPU twin through ATen's thread pool, or the
 * CUDA kernel on the device's current stream under a device guard. One
 * place, so the stages and the fused training ops dispatch the same way.
 */
#pragma once

#include <ATen/Parallel.h>
#include <c10/core/Device.h>

#include "../kernels/cpu/exec.h"
#include "checks.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace lighthouse::detail {

// The CPU twins' executor: ATen's parallel_for.
inline const CpuExec& cpu_exec() {
  static const CpuExec ex{[](int64_t n, int64_t grain, const CpuExec::Body& body) {
    at::parallel_for(0, n, grain, body);
  }};
  return ex;
}

// Runs cpu_fn(params, cpu_exec()) or cuda_fn(params, stream) for tensors on
// `device`; any other device is an error naming it, prefixed by `what`.
template <typename Params, typename CpuFn, typename CudaFn>
void launch(const char* what, const at::Device& device, const Params& params, CpuFn cpu_fn, CudaFn cuda_fn) {
  if (device.is_cpu()) {
    cpu_fn(params, cpu_exec());
    return;
  }
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDAGuard guard(device);
    cuda_fn(params, at::cuda::getCurrentCUDAStream(device.index()).stream());
    return;
  }
#else
  (void)cuda_fn;
#endif
  LH_CHECK(false, what, ": no kernels for device ", device,
           device.is_cuda() ? " (this build has no CUDA support)" : "");
}

}  // namespace lighthouse::detail

// A CUDA launcher as launch() takes it (a no-op lambda in CPU-only builds).
#ifdef LIGHTHOUSE_WITH_CUDA
#define LH_CUDA_FN(name) [](const auto& prm, cudaStream_t s) { name(prm, s); }
#else
#define LH_CUDA_FN(name) [](const auto&, void*) {}
#endif
