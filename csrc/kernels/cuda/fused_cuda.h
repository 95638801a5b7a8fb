/*
 * CUDA kernels of the fused training ops (kernels/fused_params.h), launched
 * on `stream`; torch-free. Each equals its CPU twin (kernels/cpu/fused_cpu.h)
 * bit for bit: the same formulas (kernels/fused_math.h), the same reduction
 * order, no fused multiply-adds, no atomics. Launch errors throw
 * std::runtime_error.
 *
 * Requirements (checked by csrc/ops/fused.cpp): bf16, fp16 or fp32 tensors
 * (no fp64); RMSNorm: x, sum and weight fp32, residual and y of one dtype;
 * every row width a multiple of 4 (RoPE: d a multiple of 8) and every row
 * start aligned to 4 elements' bytes (the kernels move 4 elements at once).
 */
#pragma once

#include <cuda_runtime_api.h>

#include "../fused_params.h"

namespace lighthouse {

void run_rms_norm(const RmsNormParams& p, cudaStream_t stream);
void run_rms_norm_backward(const RmsNormBackwardParams& p, cudaStream_t stream);
void run_rms_norm_weight_grad(const RmsNormWeightGradParams& p, cudaStream_t stream);
void run_rope(const RopeParams& p, cudaStream_t stream);
void run_swiglu(const SwigluParams& p, cudaStream_t stream);
void run_swiglu_backward(const SwigluBackwardParams& p, cudaStream_t stream);
void run_cross_entropy(const CrossEntropyParams& p, cudaStream_t stream);
void run_cross_entropy_backward(const CrossEntropyBackwardParams& p, cudaStream_t stream);
void run_ordered_sum(const OrderedSumParams& p, cudaStream_t stream);
void run_adamw(const AdamWParams& p, cudaStream_t stream);

}  // namespace lighthouse
