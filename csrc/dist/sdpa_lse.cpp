#include "sdpa_lse.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "ops/checks.h"

namespace lighthouse::dist {
namespace {

double scale_of(const at::Tensor& q) { return 1.0 / std::sqrt(static_cast<double>(q.size(-1))); }

// The backend's own LSE layout from the canonical [B, H, Lq].
at::Tensor backend_lse(const at::Tensor& lse, const LseMeta& meta) {
  at::Tensor x = lse;
  if (meta.lse_len > lse.size(2)) x = at::constant_pad_nd(x, {0, meta.lse_len - lse.size(2)});
  if (meta.lse_trailing_one) x = x.unsqueeze(-1);
  return x.contiguous();
}

LseBlock make_block(at::Tensor out, const at::Tensor& lse, int64_t lq) {
  LseBlock b;
  b.meta.lse_trailing_one = lse.dim() == 4;
  const at::Tensor l3 = b.meta.lse_trailing_one ? lse.squeeze(-1) : lse;
  b.meta.lse_len = l3.size(2);
  b.lse = l3.narrow(2, 0, lq);
  b.out = std::move(out);
  return b;
}

// Flash and cuDNN return the same eight results: out, lse, cum_q, cum_k,
// max_q, max_k, philox seed and offset.
template <typename Results>
LseBlock flash_like_block(const Results& r, int64_t lq) {
  LseBlock b = make_block(std::get<0>(r), std::get<1>(r), lq);
  b.meta.cum_q = std::get<2>(r);
  b.meta.cum_k = std::get<3>(r);
  b.meta.max_q = std::get<4>(r).expect_int();
  b.meta.max_k = std::get<5>(r).expect_int();
  b.meta.seed = std::get<6>(r);
  b.meta.offset = std::get<7>(r);
  return b;
}

}  // namespace

SdpaBackend resolve_lse_backend(SdpaBackend requested, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  LH_CHECK(requested != SdpaBackend::kMath,
           "lighthouse CP: SDPA backend 'math' returns no log-sum-exp, which context parallelism merges "
           "partial results by; use 'auto' or 'flash' (CPU), or 'flash', 'efficient', 'cudnn' (CUDA)");
  const SdpaBackend b = resolve_backend(requested, q, k, v);
  LH_CHECK(b != SdpaBackend::kMath, "lighthouse CP: no SDPA kernel that returns its log-sum-exp can run these ",
           "inputs (dtype ", q.scalar_type(), ", head dim ", q.size(-1), ", device ", q.device(),
           "): context parallelism needs flash, efficient or cuDNN on CUDA (enabled, and suited to the inputs)");
  return b;
}

LseBlock sdpa_forward(SdpaBackend backend, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal) {
  at::NoGradGuard no_grad;
  const double scale = scale_of(q);
  const int64_t lq = q.size(2);
  if (q.device().is_cpu()) {
    TORCH_INTERNAL_ASSERT(backend == SdpaBackend::kFlash);
    auto [out, lse] = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, std::nullopt, scale);
    return make_block(out, lse, lq);
  }
  switch (backend) {
    case SdpaBackend::kFlash:
      return flash_like_block(
          at::_scaled_dot_product_flash_attention(q, k, v, 0.0, causal, /*return_debug_mask=*/false, scale), lq);
    case SdpaBackend::kEfficient: {
      auto r = at::_scaled_dot_product_efficient_attention(q, k, v, std::nullopt, /*compute_log_sumexp=*/true, 0.0,
                                                           causal, scale);
      LseBlock b = make_block(std::get<0>(r), std::get<1>(r), lq);
      b.meta.seed = std::get<2>(r);
      b.meta.offset = std::get<3>(r);
      return b;
    }
    case SdpaBackend::kCudnn:
      return flash_like_block(at::_scaled_dot_product_cudnn_attention(q, k, v, std::nullopt,
                                                                      /*compute_log_sumexp=*/true, 0.0, causal,
                                                                      /*return_debug_mask=*/false, scale),
                              lq);
    default:
      break;
  }
  LH_CHECK(false, "lighthouse CP: unresolved SDPA backend '", to_string(backend), "'");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sdpa_backward(SdpaBackend backend, const at::Tensor& dout,
                                                             const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& out,
                                                             const at::Tensor& lse, const LseMeta& meta, bool causal) {
  at::NoGradGuard no_grad;
  const double scale = scale_of(q);
  const at::Tensor l = backend_lse(lse, meta);
  if (q.device().is_cpu()) {
    return at::_scaled_dot_product_flash_attention_for_cpu_backward(dout, q, k, v, out, l, 0.0, causal, std::nullopt,
                                                                    scale);
  }
  switch (backend) {
    case SdpaBackend::kFlash:
      return at::_scaled_dot_product_flash_attention_backward(dout, q, k, v, out, l, meta.cum_q, meta.cum_k, meta.max_q,
                                                              meta.max_k, 0.0, causal, meta.seed, meta.offset, scale);
    case SdpaBackend::kEfficient: {
      // The efficient kernel's backward needs `out` and `dout` in the memory
      // layout its forward returns ([B, S, H, d] viewed as [B, H, S, d]): in
      // bf16, [B, H, S, d]-contiguous ones gave wrong dq and dk with torch
      // 2.11 (H200, 2026-12-01; fp32 was unaffected).
      const auto bshd = [](const at::Tensor& x) { return x.transpose(1, 2).contiguous().transpose(1, 2); };
      auto r = at::_scaled_dot_product_efficient_attention_backward(bshd(dout), q, k, v, at::Tensor(), bshd(out), l,
                                                                    meta.seed, meta.offset, 0.0,
                                                                    {true, true, true, false}, causal, scale);
      return {std::get<0>(r), std::get<1>(r), std::get<2>(r)};
    }
    case SdpaBackend::kCudnn:
      return at::_scaled_dot_product_cudnn_attention_backward(dout, q, k, v, out, l, meta.seed, meta.offset,
                                                              at::Tensor(), meta.cum_q, meta.cum_k, meta.max_q,
                                                              meta.max_k, 0.0, causal, scale);
    default:
      break;
  }
  LH_CHECK(false, "lighthouse CP: unresolved SDPA backend '", to_string(backend), "'");
}

}  // namespace lighthouse::dist
