#include "sdpa.h"

#include "checks.h"

#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <optional>

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/native/transformers/cuda/sdp_utils.h>
#endif

namespace lighthouse {

#ifdef LIGHTHOUSE_WITH_CUDA
namespace {

// Asks the stock SDPA checks (the ones at::scaled_dot_product_attention
// uses, including the global enable flags and deterministic mode) whether
// `backend` can run these inputs.
bool cuda_backend_usable(SdpaBackend backend, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  // Flash and cuDNN run only float16/bfloat16. Decided here, before the stock
  // checks: asking them about float32 inputs crashed the process (torch 2.11,
  // H100, 2026-11-22), so they only see inputs of a dtype the kernel takes.
  const bool half = q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16;
  if ((backend == SdpaBackend::kFlash || backend == SdpaBackend::kCudnn) && !half) return false;
  constexpr bool debug = false;  // their debug path also crashed there
  sdp::sdp_params params{q, k, v, std::nullopt, 0.0, /*is_causal=*/true, /*enable_gqa=*/false};
  switch (backend) {
    case SdpaBackend::kCudnn:
      return sdp::can_use_cudnn_attention(params, debug);
    case SdpaBackend::kFlash:
      return sdp::can_use_flash_attention(params, debug);
    case SdpaBackend::kEfficient:
      return sdp::can_use_mem_efficient_attention(params, debug);
    default:
      return true;
  }
}

}  // namespace
#endif

SdpaBackend resolve_backend(SdpaBackend requested, const at::Tensor& q, const at::Tensor& k,
                            const at::Tensor& v) {
  if (q.device().is_cpu() || q.device().is_meta()) {
    switch (requested) {
      case SdpaBackend::kAuto:
      case SdpaBackend::kFlash:
        return SdpaBackend::kFlash;
      case SdpaBackend::kMath:
        return SdpaBackend::kMath;
      default:
        LH_CHECK(false, "lighthouse: SDPA backend '", to_string(requested),
                    "' needs CUDA tensors; on CPU use 'auto', 'flash' or 'math'");
    }
  }
#ifdef LIGHTHOUSE_WITH_CUDA
  LH_CHECK(q.device().is_cuda(), "lighthouse: no SDPA backend for device ", q.device());
  if (requested == SdpaBackend::kAuto) {
    // Under torch.use_deterministic_algorithms(True) the stock checks refuse
    // cuDNN (its backward is not deterministic), so auto lands on flash,
    // whose backward then runs its deterministic variant.
    for (SdpaBackend b : {SdpaBackend::kCudnn, SdpaBackend::kFlash, SdpaBackend::kEfficient}) {
      if (cuda_backend_usable(b, q, k, v)) return b;
    }
    return SdpaBackend::kMath;
  }
  if (!cuda_backend_usable(requested, q, k, v)) {
    const bool det = at::globalContext().deterministicAlgorithms() && !at::globalContext().deterministicAlgorithmsWarnOnly();
    LH_CHECK(!(det && requested == SdpaBackend::kCudnn),
                "lighthouse: SDPA backend 'cudnn' is refused under torch.use_deterministic_algorithms(True): its "
                "backward is not deterministic. Use 'auto' or 'flash' (deterministic backward in that mode).");
    LH_CHECK(false, "lighthouse: SDPA backend '", to_string(requested),
                "' cannot run the gathered sub-sequence (dtype ", q.scalar_type(), ", head dim ", q.size(-1),
                ", device ", q.device(), "): flash and cuDNN need float16/bfloat16 and a supported head dim, and "
                "any backend can be disabled globally (torch.backends.cuda.enable_*_sdp). Choose another backend "
                "or 'auto'.");
  }
  return requested;
#else
  LH_CHECK(false, "lighthouse: this build has no CUDA support (device ", q.device(), ")");
#endif
}

namespace detail {

at::Tensor causal_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, SdpaBackend requested) {
  // The default scale, 1/sqrt(d), which every backend computes as
  // 1.0 / std::sqrt(double(d)) from the (possibly symbolic) head dim.
  const std::optional<double> scale = std::nullopt;
  const SdpaBackend backend = resolve_backend(requested, q, k, v);
  if (q.is_meta()) {
    // Meta tensors (shapes only; FakeTensor reports its real device and does
    // not come here): no stock SDPA kernel has a C++ Meta kernel (Python
    // registers them), so the output shape comes from softmax(q k^T) v, whose
    // ops have one. The causal mask changes no shape.
    return at::matmul(at::softmax(at::matmul(q, k.transpose(-2, -1)), -1), v);
  }
  const bool need_lse = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  switch (backend) {
    case SdpaBackend::kMath:
      return std::get<0>(at::_scaled_dot_product_attention_math(q, k, v, std::nullopt, 0.0, /*is_causal=*/true,
                                                                std::nullopt, scale));
    case SdpaBackend::kFlash:
      if (q.device().is_cpu()) {
        return std::get<0>(
            at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, /*is_causal=*/true, std::nullopt, scale));
      }
      return std::get<0>(at::_scaled_dot_product_flash_attention(q, k, v, 0.0, /*is_causal=*/true,
                                                                 /*return_debug_mask=*/false, scale));
    case SdpaBackend::kCudnn:
      return std::get<0>(at::_scaled_dot_product_cudnn_attention(q, k, v, std::nullopt, need_lse, 0.0,
                                                                 /*is_causal=*/true, /*return_debug_mask=*/false,
                                                                 scale));
    case SdpaBackend::kEfficient:
      return std::get<0>(
          at::_scaled_dot_product_efficient_attention(q, k, v, std::nullopt, need_lse, 0.0, /*is_causal=*/true, scale));
    case SdpaBackend::kAuto:
      break;
  }
  LH_CHECK(false, "lighthouse: unresolved SDPA backend");
}

std::tuple<at::Tensor, at::Tensor> dilated_score_sources(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v, const Geometry& g, const Options& o) {
  at::NoGradGuard no_grad;
  const int64_t r = o.dilation;
  const int64_t group = g.H / g.H_kv;
  // [B, N, heads, d] -> zero-padded [B, N_pad, H, d] -> [B, r*H, N_pad/r, d]
  auto stack = [&](const at::Tensor& x, int64_t repeat) {
    at::Tensor y = repeat > 1 ? x.repeat_interleave(repeat, /*dim=*/2) : x;
    if (g.N_pad > g.N) y = at::constant_pad_nd(y, {0, 0, 0, 0, 0, g.N_pad - g.N});
    return y.reshape({g.B, g.N_pad / r, r * g.H, g.d}).transpose(1, 2);
  };
  const at::Tensor qs = stack(q, 1), ks = stack(k, group), vs = stack(v, group);
  auto unstack = [&](const at::Tensor& o_) { return o_.transpose(1, 2).reshape({g.B, g.N_pad, g.H, g.d}); };
  return {unstack(causal_sdpa(qs, ks, vs, o.backend)), unstack(causal_sdpa(ks, qs, vs, o.backend))};
}

}  // namespace detail
}  // namespace lighthouse
