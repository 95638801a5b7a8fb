/*
 * The stages of one Lighthouse call, for benchmarks (LibTorch): each stage
 * timed alone, and the op's inner causal SDPA (what Lighthouse runs on the
 * gathered S tokens: the floor a call cannot beat).
 *
 * The timing is the caller's: time_stages() hands every stage to `time` as a
 * closure and records what it returns, so a benchmark picks its own clock
 * (CUDA events, repeats, a median) and never reaches into the op's internals.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "lighthouse/lighthouse.h"

namespace lighthouse {

// Milliseconds one run of `fn` takes (e.g. a median over repeats).
using StageClock = std::function<double(const std::function<void()>& fn)>;

// Times each stage of one forward + backward call alone, in order: scores,
// select, gather, sdpa_fwd, scatter, scatter_bwd, sdpa_bwd, gather_bwd
// (select = plan - scores, sdpa_bwd = SDPA forward+backward - sdpa_fwd,
// clamped at 0). q [B, N, H, d], k and v [B, N, H_kv, d], grad_out
// [B, N, H, d]; checked like attention().
std::vector<std::pair<std::string, double>> time_stages(const at::Tensor& q, const at::Tensor& k,
                                                        const at::Tensor& v, const at::Tensor& grad_out,
                                                        const Options& options, const StageClock& time);

// The op's inner causal SDPA (scale 1/sqrt(d)) through `backend`, resolved
// and checked as in attention(): q, k, v [B, H, S, d] with the same H.
at::Tensor inner_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, SdpaBackend backend);

}  // namespace lighthouse
