/*
 * Input validation at the API boundary and the bridges from at::Tensor to
 * the kernel params (csrc/kernels/params.h). Every rule of the spec's
 * "Inputs, shapes and errors" is checked here, with messages naming the value.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include "lighthouse/lighthouse.h"
#include "../kernels/params.h"

namespace lighthouse::detail {

// Validates the config alone (levels, pool, top_k, dilation).
void check_options(const Options& o);

// Validates q, k (and v if defined) and the config together; returns the
// geometry of the call. `op` names the caller in messages.
Geometry check_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const Options& o);

// Geometry from sizes of an already validated call.
Geometry geometry_for(int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, const Options& o);

DType to_dtype(const at::Tensor& t);
// A [B, N, heads, d] tensor as params; `t` must have a contiguous last dim.
TokenTensor token_tensor(const at::Tensor& t);
// A [B, H, S, d] tensor as params; `t` must have a contiguous last dim.
SubTensor sub_tensor(const at::Tensor& t);
// `t` itself if the kernels can read it in place (last dim contiguous; on
// CUDA also 16-byte aligned rows), else a contiguous copy.
at::Tensor kernel_ready(const at::Tensor& t);

}  // namespace lighthouse::detail
