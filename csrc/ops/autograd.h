/*
 * Autograd kernels of the internal ops (DispatchKey::Autograd). The full op
 * is the composition _gather -> stock SDPA -> _scatter, so autograd runs the
 * stock SDPA backward between our two backward ops.
 *
 * Each differentiable op is a torch::autograd::Function whose forward
 * re-invokes the op below autograd and whose backward calls the backward op
 * through the dispatcher, so tracing (AOT autograd) records only registered
 * ops. Saved for backward: the plan tensors (int32 entries / inv) and sizes
 * as SymInt; the stages are linear, so no activation of ours is kept (SDPA
 * keeps its own q~, k~, v~, o~ and log-sum-exp).
 *
 * _plan has no gradient (its pooled coarse rows are forward-only inputs of
 * _gather): its Autograd kernel runs it below autograd. The backward ops are
 * first-order only; differentiating them raises (see register.cpp).
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

namespace lighthouse::detail {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> plan_autograd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool, int64_t top_k,
    c10::string_view scorer, int64_t dilation, c10::string_view backend, const std::optional<at::Tensor>& entries);

// Gradient to q, k, v (not to the plan or the coarse rows).
std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_autograd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& entries, const at::Tensor& inv,
    const std::optional<at::Tensor>& coarse_q, const std::optional<at::Tensor>& coarse_k,
    const std::optional<at::Tensor>& coarse_v, int64_t levels, int64_t pool, int64_t top_k);

// Gradient to og.
at::Tensor scatter_autograd(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv,
                            c10::SymInt seq_len, int64_t levels, int64_t pool, int64_t top_k);

}  // namespace lighthouse::detail
