/*
 * CUDA kernels of every Lighthouse stage: same params as the CPU twins
 * (kernels/cpu/kernels_cpu.h), launched on `stream`. Torch-free. Each
 * launcher checks its launches and throws std::runtime_error on a CUDA
 * error. No floating-point atomics anywhere: results are bit-for-bit
 * reproducible run to run.
 *
 * Requirements (checked by csrc/ops): bf16, fp16 or fp32; token and sub
 * tensors 16-byte aligned with row strides a multiple of 16 bytes; d a
 * multiple of 16 bytes' worth of elements.
 */
#pragma once

#include <cuda_runtime_api.h>

#include "../params.h"

namespace lighthouse {

void run_scores(const ScoresParams& p, cudaStream_t stream);
void run_select(const SelectParams& p, cudaStream_t stream);
// `count` (1 to 3) tensors sharing dtype and entries, in one launch.
void run_gather(const GatherParams* p, int count, cudaStream_t stream);
void run_gather_backward(const GatherBackwardParams& p, cudaStream_t stream);
void run_scatter(const ScatterParams& p, cudaStream_t stream);
void run_scatter_backward(const ScatterBackwardParams& p, cudaStream_t stream);

}  // namespace lighthouse
