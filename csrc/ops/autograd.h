/*
 * Autograd for the two differentiable Lighthouse stages. The full op is the
 * composition gather -> stock SDPA -> scatter, so autograd runs the stock
 * SDPA backward between our two backward kernels. Saved for backward: the
 * plan (entries and inverse map, int32) and the geometry; the stages are
 * linear, so no activation of ours is kept (SDPA keeps its own q~, k~, v~,
 * o~ and log-sum-exp).
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "stages.h"

namespace lighthouse::detail {

// Differentiable pool-on-gather (gradient to q, k, v). Uses the plan's
// pooled coarsest rows when it has them.
std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_autograd(const at::Tensor& q, const at::Tensor& k,
                                                               const at::Tensor& v, const Plan& plan,
                                                               const Geometry& g);
// Differentiable scatter (gradient to og).
at::Tensor scatter_autograd(const at::Tensor& og, const Plan& plan, const Geometry& g);

}  // namespace lighthouse::detail
