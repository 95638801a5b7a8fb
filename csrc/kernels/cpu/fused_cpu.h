/*
 * CPU twins of the fused training kernels (kernels/fused_params.h): the
 * CPU path of csrc/ops/fused.cpp and the tests' reference for the CUDA
 * kernels (kernels/cuda/fused_cuda.h), which they equal bit for bit. Work is
 * split so that every item writes its own outputs and every sum runs in the
 * order of kernels/fused_math.h: results do not depend on the thread count.
 */
#pragma once

#include "../fused_params.h"
#include "exec.h"

namespace lighthouse {

// Writes y, rstd (and sum with a residual) for every row.
void run_rms_norm_cpu(const RmsNormParams& p, const CpuExec& ex);
// Writes dx (and d_residual) for every row.
void run_rms_norm_backward_cpu(const RmsNormBackwardParams& p, const CpuExec& ex);
// Writes the partials workspace, then dw.
void run_rms_norm_weight_grad_cpu(const RmsNormWeightGradParams& p, const CpuExec& ex);
// Writes out of q (and k) for every position row and head.
void run_rope_cpu(const RopeParams& p, const CpuExec& ex);
void run_swiglu_cpu(const SwigluParams& p, const CpuExec& ex);
void run_swiglu_backward_cpu(const SwigluBackwardParams& p, const CpuExec& ex);
// Writes loss and lse of every row.
void run_cross_entropy_cpu(const CrossEntropyParams& p, const CpuExec& ex);
// Writes dlogits of every row.
void run_cross_entropy_backward_cpu(const CrossEntropyBackwardParams& p, const CpuExec& ex);
void run_ordered_sum_cpu(const OrderedSumParams& p, const CpuExec& ex);
// Updates param, exp_avg and exp_avg_sq of every tensor of the batch in place.
void run_adamw_cpu(const AdamWParams& p, const CpuExec& ex);

}  // namespace lighthouse
