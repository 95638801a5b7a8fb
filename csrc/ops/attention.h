/*
 * The registered ops (torch.ops.lighthouse.*), their kernels per dispatch
 * key and typed handles to call them through the dispatcher. Internal: users
 * include lighthouse/lighthouse.h. Schemas are in register.cpp.
 *
 * `attention` is CompositeImplicitAutograd: a composition of registered ops
 * only, so autograd, FakeTensor and AOT tracing see nothing else:
 *
 *   entries, inv, coarse_q/k/v = _plan(q, k, v, ...)         no gradient
 *   q~, k~, v~ = _gather(q, k, v, entries, inv, coarse_*)      [B, H, S, d]
 *   o~         = stock causal SDPA(q~, k~, v~)                  (backend op)
 *   out        = _scatter(o~, entries, inv, N)                 [B, N, H, d]
 *
 * Each internal op has CPU and CUDA kernels, a Meta kernel (the fake kernel:
 * shapes in SymInt, so dynamic shapes trace) and an Autograd kernel; the
 * backward of _gather and _scatter are the ops _gather_backward and
 * _scatter_backward. The composite and the Autograd and Meta kernels touch
 * sizes only through sym_size(); only CPU and CUDA kernels read data.
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/SymInt.h>

#include <optional>
#include <tuple>

#include "lighthouse/lighthouse.h"
#include "../kernels/params.h"

namespace lighthouse::detail {

using OptTensor = std::optional<at::Tensor>;

// attention(q, k, v, levels, pool, top_k, *, scorer, dilation, backend, entries) -> [B, N, H, d]
using AttentionSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                      int64_t, c10::string_view, int64_t, c10::string_view, const OptTensor&);
// select(q, k, levels, pool, top_k, *, scorer, dilation, v, backend) -> int64 [B, H, S]
using SelectSignature = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, c10::string_view,
                                   int64_t, const OptTensor&, c10::string_view);
// _plan(q, k, v, levels, pool, top_k, scorer, dilation, backend, entries)
//   -> entries int32 [B, H, S], inv int32 [B, H, P], coarse_q [B, H, R, d],
//      coarse_k, coarse_v [B, H_kv, R, d]: the pooled rows of levels pool_first() .. L-1
//      (CoarsePool, kernels/params.h; R = Geometry::pooled_rows()). Shape [0] when not pooled:
//      dilated scorer or given entries.
using PlanSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, c10::string_view, int64_t,
    c10::string_view, const OptTensor&);
// _gather(q, k, v, entries, inv, coarse_q, coarse_k, coarse_v, levels, pool, top_k) -> 3 x [B, H, S, d]
using GatherSignature = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
    const OptTensor&, const OptTensor&, int64_t, int64_t, int64_t);
// _gather_backward(grad [B, H, S, d], inv, seq_len, heads, levels, pool, top_k) -> [B, N, heads, d]
using GatherBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt, c10::SymInt, int64_t,
                                           int64_t, int64_t);
// _scatter(og [B, H, S, d], entries, inv, seq_len, levels, pool, top_k) -> [B, N, H, d]
using ScatterSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::SymInt, int64_t,
                                    int64_t, int64_t);
// _scatter_backward(grad [B, N, H, d], entries, inv, levels, pool, top_k) -> [B, H, S, d]
using ScatterBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                            int64_t);

const c10::TypedOperatorHandle<AttentionSignature>& attention_op();
const c10::TypedOperatorHandle<SelectSignature>& select_op();
const c10::TypedOperatorHandle<PlanSignature>& plan_op();
const c10::TypedOperatorHandle<GatherSignature>& gather_op();
const c10::TypedOperatorHandle<GatherBackwardSignature>& gather_backward_op();
const c10::TypedOperatorHandle<ScatterSignature>& scatter_op();
const c10::TypedOperatorHandle<ScatterBackwardSignature>& scatter_backward_op();

// Options from the ops' arguments; parses (and so checks) scorer and backend.
Options make_options(int64_t levels, int64_t pool, int64_t top_k, c10::string_view scorer = "norm",
                     int64_t dilation = 4, c10::string_view backend = "auto");

// CompositeImplicitAutograd.
at::Tensor attention_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                               int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                               c10::string_view backend, const OptTensor& entries);

// CPU and CUDA kernels (attention.cpp).
at::Tensor select_kernel(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                         c10::string_view scorer, int64_t dilation, const OptTensor& v, c10::string_view backend);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> plan_kernel(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool, int64_t top_k,
    c10::string_view scorer, int64_t dilation, c10::string_view backend, const OptTensor& entries);
std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_kernel(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& entries,
                                                             const at::Tensor& inv, const OptTensor& coarse_q,
                                                             const OptTensor& coarse_k, const OptTensor& coarse_v,
                                                             int64_t levels, int64_t pool, int64_t top_k);
at::Tensor gather_backward_kernel(const at::Tensor& grad, const at::Tensor& inv, int64_t seq_len, int64_t heads,
                                  int64_t levels, int64_t pool, int64_t top_k);
at::Tensor scatter_kernel(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv, int64_t seq_len,
                          int64_t levels, int64_t pool, int64_t top_k);
at::Tensor scatter_backward_kernel(const at::Tensor& grad, const at::Tensor& entries, const at::Tensor& inv,
                                   int64_t levels, int64_t pool, int64_t top_k);

// Meta kernels (meta.cpp): shapes from sym sizes; with concrete sizes they
// also run the CPU/CUDA kernels' shape, dtype and device checks.
at::Tensor select_meta(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                       c10::string_view scorer, int64_t dilation, const OptTensor& v, c10::string_view backend);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> plan_meta(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool, int64_t top_k,
    c10::string_view scorer, int64_t dilation, c10::string_view backend, const OptTensor& entries);
std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_meta(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& entries,
                                                           const at::Tensor& inv, const OptTensor& coarse_q,
                                                           const OptTensor& coarse_k, const OptTensor& coarse_v,
                                                           int64_t levels, int64_t pool, int64_t top_k);
at::Tensor gather_backward_meta(const at::Tensor& grad, const at::Tensor& inv, c10::SymInt seq_len, c10::SymInt heads,
                                int64_t levels, int64_t pool, int64_t top_k);
at::Tensor scatter_meta(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv, c10::SymInt seq_len,
                        int64_t levels, int64_t pool, int64_t top_k);
at::Tensor scatter_backward_meta(const at::Tensor& grad, const at::Tensor& entries, const at::Tensor& inv,
                                 int64_t levels, int64_t pool, int64_t top_k);

// Validation shared by the CPU/CUDA kernels and the Meta kernels (sizes,
// dtypes, devices; nothing that reads data). Each returns the geometry.
// check_plan_tensors skips an undefined `entries` or `inv`.
Geometry check_plan_tensors(const char* op, const at::Tensor& entries, const at::Tensor& inv, const Geometry& g,
                            const at::Device& device);
Geometry check_gather(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& entries,
                      const at::Tensor& inv, const OptTensor& coarse_q, const OptTensor& coarse_k,
                      const OptTensor& coarse_v, const Options& o);
Geometry check_gather_backward(const at::Tensor& grad, const at::Tensor& inv, int64_t seq_len, int64_t heads,
                               const Options& o);
Geometry check_scatter(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv, int64_t seq_len,
                       const Options& o);
Geometry check_scatter_backward(const at::Tensor& grad, const at::Tensor& entries, const at::Tensor& inv,
                                const Options& o);

}  // namespace lighthouse::detail
