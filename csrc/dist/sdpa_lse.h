/*
 * One stock SDPA call that also returns its log-sum-exp, and the matching
 * stock backward, per backend: the blocks that context-parallel attention
 * merges (cp_attention.cpp). CPU: the CPU flash kernel; CUDA: flash, memory-
 * efficient or cuDNN. The math backend returns no log-sum-exp and is refused.
 *
 * The backward of a block is called with the *merged* output and LSE of its
 * query rows (the stock kernels recompute P = exp(QK^T s - LSE) and
 * D = rowsum(dO * O) from what they are given), so the per-block gradients
 * sum to the gradient of the merged attention exactly.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "lighthouse/lighthouse.h"

namespace lighthouse::dist {

// What a block's backward needs besides q, k, v and the merged out/LSE.
struct LseMeta {
  at::Tensor cum_q, cum_k, seed, offset;  // CUDA flash/cuDNN/efficient bookkeeping (often undefined)
  int64_t max_q = 0, max_k = 0;
  int64_t lse_len = 0;            // the backend's LSE length (efficient pads to a multiple of 32)
  bool lse_trailing_one = false;  // the backend's LSE is [B, H, Lq, 1]
};

struct LseBlock {
  at::Tensor out;  // [B, H, Lq, d], q's dtype
  at::Tensor lse;  // [B, H, Lq] fp32 (fp64 for fp64 inputs on CPU), natural log, scale 1/sqrt(d)
  LseMeta meta;
};

// The kernel that context-parallel blocks like these will use; throws naming
// the reason when `requested` cannot run them or returns no LSE (math).
SdpaBackend resolve_lse_backend(SdpaBackend requested, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// q [B, H, Lq, d], k, v [B, H, Lk, d] (same H), causal (top-left, Lq == Lk)
// or not. Scale 1/sqrt(d). No autograd.
LseBlock sdpa_forward(SdpaBackend backend, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal);

// dq, dk, dv of the block given dout and the merged out [B, H, Lq, d] and
// lse [B, H, Lq] of its query rows.
std::tuple<at::Tensor, at::Tensor, at::Tensor> sdpa_backward(SdpaBackend backend, const at::Tensor& dout,
                                                             const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& out,
                                                             const at::Tensor& lse, const LseMeta& meta, bool causal);

}  // namespace lighthouse::dist
