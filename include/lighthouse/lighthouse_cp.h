/*
 * Lighthouse attention and dense causal attention under context parallelism
 * (shared/PARALLEL.md, shared/LIGHTHOUSE.md section 10): the public C++ API,
 * usable from any trainer that has a c10d process group (torchtitan-style),
 * not only from ours. Link `lighthouse_dist`.
 *
 * Layout (head-tail load balancing): a sequence of N tokens is cut into 2W
 * equal chunks for a group of W ranks; CP rank r holds chunks r and 2W-1-r,
 * concatenated in that order along the sequence dimension: [B, N/W, ...].
 * shard() / unshard() convert; positions() gives the global token positions
 * (for RoPE). Every rank of the group calls each function with its own
 * chunks, in the same order (they are collectives).
 *
 * Exactness: the selected entries equal the one-device selection; outputs
 * and gradients equal the one-device op's within the project's tolerance
 * rule (only the merge of the inner attention's partial results by their
 * log-sum-exp differs in rounding; gathers, scatters and the spill of the
 * scatter across chunk boundaries are bit for bit as on one device).
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <vector>

#include "lighthouse/lighthouse.h"

namespace lighthouse::cp {

using Group = c10::intrusive_ptr<c10d::ProcessGroup>;

// Lighthouse attention over the whole sequence, run on this rank's chunks.
//   q     [B, N/W, H, d]     this rank's chunks r, 2W-1-r of q
//   k, v  [B, N/W, H_kv, d]
// Returns this rank's chunks of the output [B, N/W, H, d]; differentiable in
// q, k, v. `options` are the one-device options (top_k is the whole
// sequence's; each chunk selects with top_k / (2W)). Norm scorer only.
// Geometry that cannot be split (see check_geometry) throws, naming the
// nearest valid choices.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Options& options,
                     const Group& group);

// Causal scaled dot-product attention (scale 1/sqrt(d)) over the whole
// sequence, run on this rank's chunks: q [B, N/W, H, d], k, v [B, N/W, H_kv, d]
// (GQA: H % H_kv == 0) -> [B, N/W, H, d]. Differentiable. Stock SDPA kernels
// that return their log-sum-exp: the CPU flash kernel; flash, efficient or
// cuDNN on CUDA (`backend` as in Options; math is refused).
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Group& group,
                           SdpaBackend backend = SdpaBackend::kAuto);

// The entries this rank's chunks emit, as int64 one-device pyramid indices
// [B, H, 2*S/(2W)]: columns [0, S/(2W)) are chunk r's slice of the one-device
// select() result, the rest chunk 2W-1-r's. No communication.
at::Tensor select(const at::Tensor& q, const at::Tensor& k, const Options& options, const Group& group);

// Throws c10::Error naming the nearest valid choices unless a Lighthouse
// layer with `options` can run on `seq_len` tokens split over `cp` ranks.
void check_geometry(int64_t seq_len, const Options& options, int64_t cp);

// This rank's chunks of a whole-sequence tensor x (sequence along `dim`,
// length a multiple of 2*size): chunks rank and 2*size-1-rank, concatenated.
at::Tensor shard(const at::Tensor& x, int64_t rank, int64_t size, int64_t dim = 1);
// The whole sequence from every rank's shard (index = CP rank).
at::Tensor unshard(const std::vector<at::Tensor>& shards, int64_t dim = 1);
// Global positions of this rank's tokens: int64 [seq_len / size].
at::Tensor positions(int64_t seq_len, int64_t rank, int64_t size, const at::Device& device = at::kCPU);

}  // namespace lighthouse::cp
