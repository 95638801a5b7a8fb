/*
 * The Lighthouse stages on at::Tensor, for CPU and CUDA alike: allocate the
 * outputs, fill the kernel params, run the CPU twin or the CUDA kernel on the
 * current stream. No autograd here (see autograd.h).
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>
#include <vector>

#include "lighthouse/lighthouse.h"
#include "../kernels/params.h"

namespace lighthouse::detail {

// A selection: what the gather and scatter stages need.
struct Plan {
  at::Tensor entries;  // int32 [B, H, S], pyramid index per slot, causal order
  at::Tensor inv;      // int32 [B, H, P], slot per pyramid entry or -1
  // The coarsest level's pooled rows [B, heads, N_{L-1}, d] of q, k, v, made
  // by the scores pass (norm scorer) for the gather to copy; undefined when
  // not made. Forward-only temporaries.
  at::Tensor coarse_q, coarse_k, coarse_v;
};

// fp32 scores [B, heads, P] of the pyramid entries, from q_src [B, N, Hq, d]
// and k_src [B, N, Hk, d]. With `plan_out` and v defined, also the pooled
// coarse rows of q_src, k_src, v (CoarsePool: levels g.pool_first() .. L-1)
// into plan_out->coarse_*.
std::tuple<at::Tensor, at::Tensor> pyramid_scores(const at::Tensor& q_src, const at::Tensor& k_src,
                                                  const Geometry& g, const at::Tensor& v = {},
                                                  Plan* plan_out = nullptr);

// Scores (per `o.scorer`) and the cascade. No gradient. v is needed by the
// dilated scorer, and for `pool_coarse` (norm scorer: also pool the coarse
// rows of q, k, v in the same pass, for the gather).
Plan make_plan(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Geometry& g,
               const Options& o, bool pool_coarse = false);

// Checks user-given entries without reading them: int64 [B, H, S] on `device`.
void check_entries(const at::Tensor& entries, const Geometry& g, const at::Device& device);
// A plan from user-given int64 entries [B, H, S]; checks them (check_entries,
// then range and uniqueness).
Plan plan_from_entries(const at::Tensor& entries, const Geometry& g, const at::Device& device);

// Pool-on-gather of one to three tensors (q, k, v) with one plan: each x
// [B, N, heads, d] -> [B, H, S, d] (heads divides H; query head h reads head
// h / (H / heads)). `coarse[i]`: optional pooled coarse rows of xs[i]
// (Plan::coarse_*), undefined when absent. On CUDA, one launch for all.
std::vector<at::Tensor> gather(const std::vector<at::Tensor>& xs, const Plan& plan, const Geometry& g,
                               const std::vector<at::Tensor>& coarse);
// Its adjoint: dxg [B, H, S, d] -> dx [B, N, heads, d].
at::Tensor gather_backward(const at::Tensor& dxg, int64_t heads, const Plan& plan, const Geometry& g);
// Scatter back: og [B, H, S, d] -> out [B, N, H, d]. Context parallelism:
// `spill_in` [B, H, L, d], the previous chunk's rows that reach this one
// (ScatterParams); undefined: none.
at::Tensor scatter(const at::Tensor& og, const Plan& plan, const Geometry& g, const at::Tensor& spill_in = {});
// Its adjoint: dout [B, N, H, d] -> dog [B, H, S, d]. Context parallelism:
// `spill_dout` [B, R, H, d], the next chunk's first R rows of dout
// (ScatterBackwardParams); undefined: none.
at::Tensor scatter_backward(const at::Tensor& dout, const Plan& plan, const Geometry& g,
                            const at::Tensor& spill_dout = {});

}  // namespace lighthouse::detail
