/*
 * The stock causal SDPA on the gathered sub-sequence, through the backend the
 * caller chose (resolved and checked, never silently swapped), and the
 * dilated scorer built from the same call. Differentiable through the stock
 * kernels' own autograd formulas.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "lighthouse/lighthouse.h"
#include "../kernels/params.h"

namespace lighthouse::detail {

// Causal SDPA, scale 1/sqrt(d), on q, k, v [B, H, S, d] with the same H.
at::Tensor causal_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, SdpaBackend backend);

// The dilated scorer's two sources [B, N_pad, H, d]: with dilation r, the
// sequence is seen as N_pad / r groups of r tokens with their heads stacked,
// and causal SDPA runs once as (q, k, v) and once as (k, q, v). No gradient.
std::tuple<at::Tensor, at::Tensor> dilated_score_sources(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v, const Geometry& g, const Options& o);

}  // namespace lighthouse::detail
