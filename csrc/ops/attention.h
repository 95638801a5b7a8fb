/*
 * Kernels of the registered ops (one per dispatch key) and typed handles to
 * call them through the dispatcher. Internal: users include
 * lighthouse/lighthouse.h.
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <tuple>

#include "lighthouse/lighthouse.h"

namespace lighthouse::detail {

using AttentionSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                      int64_t, c10::string_view, int64_t, c10::string_view,
                                      const std::optional<at::Tensor>&);
using SelectSignature = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, c10::string_view,
                                   int64_t, const std::optional<at::Tensor>&, c10::string_view);
using AttentionOp = c10::TypedOperatorHandle<AttentionSignature>;
using SelectOp = c10::TypedOperatorHandle<SelectSignature>;

const AttentionOp& attention_op();
const SelectOp& select_op();

// attention: CPU and CUDA (no graph), Autograd, Meta.
at::Tensor attention_kernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                            int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                            c10::string_view backend, const std::optional<at::Tensor>& entries);
at::Tensor attention_autograd_kernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                                     int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                                     c10::string_view backend, const std::optional<at::Tensor>& entries);
at::Tensor attention_meta(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                          int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                          c10::string_view backend, const std::optional<at::Tensor>& entries);

// select: CPU and CUDA, Meta.
at::Tensor select_kernel(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                         c10::string_view scorer, int64_t dilation, const std::optional<at::Tensor>& v,
                         c10::string_view backend);
at::Tensor select_meta(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                       c10::string_view scorer, int64_t dilation, const std::optional<at::Tensor>& v,
                       c10::string_view backend);

// Stage ops for tests (differentiable, entries given as from select).
std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_stage(const at::Tensor& q, const at::Tensor& k,
                                                            const at::Tensor& v, const at::Tensor& entries,
                                                            int64_t levels, int64_t pool, int64_t top_k);
at::Tensor scatter_stage(const at::Tensor& og, const at::Tensor& entries, int64_t seq_len, int64_t levels,
                         int64_t pool, int64_t top_k);

}  // namespace lighthouse::detail
