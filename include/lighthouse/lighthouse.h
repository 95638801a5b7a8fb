/*
 * Lighthouse attention: the public C++ API (LibTorch).
 *
 * A drop-in replacement for causal scaled dot-product attention during
 * pre-training (shared/LIGHTHOUSE.md): q, k, v are pooled into a pyramid,
 * scored by their norms, a stratified top-k cascade picks a small causal
 * sub-sequence, the stock SDPA kernel runs on it, and the result is scattered
 * back. Differentiable in q, k and v; deterministic bit for bit.
 *
 * The same op is registered for Python as torch.ops.lighthouse.attention and
 * torch.ops.lighthouse.select (see docs/design.md); these C++ functions call
 * it through the dispatcher, so C++ and Python take the same path.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>

namespace lighthouse {

// How entries are scored (shared/LIGHTHOUSE.md sections 2 and 9).
enum class Scorer {
  kNorm,     // l2 norms of q and k (default)
  kDilated,  // l2 norms of two dilated causal SDPA outputs
};

// The kernel of the inner causal SDPA on the gathered sub-sequence. Never
// swapped silently: an explicit choice the inputs do not suit is an error.
enum class SdpaBackend {
  kAuto,       // CUDA: cuDNN where it supports the inputs, else flash, else efficient,
               // else math. CPU: the CPU flash kernel.
  kCudnn,      // CUDA only
  kFlash,      // CUDA flash-attention, or the CPU flash kernel on CPU
  kEfficient,  // CUDA memory-efficient attention
  kMath,       // the composite math reference (any device, materializes S x S)
};

struct Options {
  int64_t levels = 3;     // L >= 2
  int64_t pool = 4;       // p, a power of two >= 2
  int64_t top_k = 1536;   // k_top, a positive multiple of 128
  Scorer scorer = Scorer::kNorm;
  int64_t dilation = 4;   // r, dilated scorer only
  SdpaBackend backend = SdpaBackend::kAuto;
};

// Lighthouse attention.
//   q        [B, N, H, d]     float16, bfloat16, float32 or float64
//   k, v     [B, N, H_kv, d]  same dtype and device, H % H_kv == 0
//   entries  optional int64 [B, H, S] from select(): reuse a selection
//            instead of computing one (fixed selection; no gradient).
// Returns [B, N, H, d]. Any N >= min_sequence_length(options) (padded inside).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const Options& options = {},
                     const std::optional<at::Tensor>& entries = std::nullopt);

// The emitted entries of every (row, head) in causal order, as int64 pyramid
// indices [B, H, S] (level 0 first, then level 1, ...; levels sized for the
// padded length). q [B, N, H, d], k [B, N, H_kv, d]. The dilated scorer needs v
// as well; pass it as `v`.
at::Tensor select(const at::Tensor& q, const at::Tensor& k, const Options& options = {},
                  const std::optional<at::Tensor>& v = std::nullopt);

// S = N_pad / p^(L-1) + (L-1) * p * k_top for a sequence of `seq_len` tokens.
int64_t subsequence_length(int64_t seq_len, const Options& options);
// The smallest valid N for a config: top_k * pool^(levels-1).
int64_t min_sequence_length(const Options& options);

std::string to_string(Scorer scorer);
std::string to_string(SdpaBackend backend);
// Parse "norm" | "dilated" and "auto" | "cudnn" | "flash" | "efficient" | "math";
// anything else throws c10::Error naming the value.
Scorer parse_scorer(const std::string& name);
SdpaBackend parse_backend(const std::string& name);

// The backend the inner SDPA uses for sub-sequence tensors like `q_like`
// ([B, H, S, d]) when `requested` is asked for; throws if it cannot run them.
SdpaBackend resolve_backend(SdpaBackend requested, const at::Tensor& q_like,
                            const at::Tensor& k_like, const at::Tensor& v_like);

}  // namespace lighthouse
