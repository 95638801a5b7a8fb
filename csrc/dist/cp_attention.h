/*
 * Context-parallel attention internals (shared/PARALLEL.md). Internal: users
 * include lighthouse/lighthouse_cp.h.
 *
 * Chunk-batched layout: a rank's two chunks of batch row b are batch rows
 * 2b (local chunk 0, global chunk r) and 2b + 1 (local chunk 1, global chunk
 * 2W-1-r) of a [2B, ...] tensor. [B, 2n, ...] reshaped to [2B, n, ...] is
 * exactly that, so the local Lighthouse stages run once over both chunks.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "lighthouse/lighthouse.h"
#include "parallel.h"

namespace lighthouse::dist {

// The CP group of a call and this rank's chunks in it.
struct CpGroup {
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  CpChunks chunks;
};

// Throws unless `group` is defined.
CpGroup cp_group(const c10::intrusive_ptr<c10d::ProcessGroup>& group);

// Exact causal attention over the whole sequence (scale 1/sqrt(d)) from the
// chunk-batched q [2B, H, m, d], k, v [2B, H_kv, m, d] -> [2B, H, m, d].
// All-gathers K and V; a query chunk attends to all earlier chunks without a
// mask and to its own causally; the two partial results merge by their
// log-sum-exp. The backward runs the stock backward of each block with the
// merged output and LSE and reduce-scatters the K, V gradients to their owners.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const CpGroup& cp,
                            SdpaBackend backend);

// Lighthouse attention on chunk-batched q [2B, n, H, d], k, v [2B, n, H_kv, d]
// (chunks of whole tiles; `o` are the one-device options) -> [2B, n, H, d].
at::Tensor lighthouse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Options& o,
                                const CpGroup& cp);

// The local entries of chunk-batched q, k as one-device pyramid indices,
// int64 [2B, H, S_c].
at::Tensor lighthouse_select(const at::Tensor& q, const at::Tensor& k, const Options& o, const CpGroup& cp);

// Test stages (torch.ops.lighthouse._cp_scatter*): the scatter of one chunk
// of `seq_len` tokens (int64 `entries` as from select) with its spill rows,
// forward and adjoint; an undefined spill: the one-device stage itself.
at::Tensor cp_scatter(const at::Tensor& og, const at::Tensor& entries, int64_t seq_len, const Options& o,
                      const at::Tensor& spill_in);
at::Tensor cp_scatter_backward(const at::Tensor& dout, const at::Tensor& entries, int64_t seq_len, const Options& o,
                               const at::Tensor& spill_dout);

}  // namespace lighthouse::dist
