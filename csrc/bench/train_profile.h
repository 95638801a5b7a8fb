/*
 * Where a training step's time goes: one step under LibTorch's Kineto
 * profiler (torch/csrc/autograd/profiler_kineto.h), its device time split
 * into categories.
 *
 * Work items: on CUDA every GPU kernel, memcpy and memset (their device
 * time); on CPU every CPU event's self time (its duration minus its
 * children's), also on CUDA when the profiler recorded no GPU activity
 * (CUPTI not found at run time; device_time says which). Each item is classified by names, innermost first: the
 * kernel's own name, then the CPU ops that enclose it (for a GPU kernel,
 * those around the op that launched it), then, for work done in backward,
 * the ops around the forward op that created the autograd node (matched by
 * sequence number). The first name that matches a category wins, except
 * that anything inside an "lh::recompute" scope is recompute. Scopes the
 * model and trainer open (RECORD_USER_SCOPE) name the element-wise parts:
 * lh::norm, lh::rope, lh::activation, lh::loss, lh::optimizer,
 * lh::recompute. Category rules, in order: recompute; attention kernels
 * (flash, fmha, cuDNN sdpa, the SDPA ops); the fused kernels and Functions
 * (RMSNorm, RoPE, SwiGLU, cross-entropy); the Lighthouse stages (the op and
 * its kernels); matmul (GEMM kernels, mm/addmm/bmm); optimizer (fused Adam,
 * multi-tensor kernels); copies (memcpy/memset, copy and cat kernels,
 * casts, contiguous, clone); the scopes; else other.
 */
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace lighthouse::bench {

enum class Category {
  kMatmul,
  kAttention,
  kLighthouse,
  kNorm,
  kRope,
  kActivation,
  kLoss,
  kOptimizer,
  kCopies,
  kRecompute,
  kOther,
};
constexpr int kCategories = 11;
// "matmul", "attention", "lighthouse_stages", "normalisation", "rope",
// "activation", "loss", "optimizer", "copies", "recompute", "other".
const char* category_name(Category c);

// The category of one work item: `names` innermost first (kernel or op,
// then enclosing ops and scopes), `forward_names` the forward op's chain
// for backward work (empty otherwise).
Category classify(const std::vector<std::string>& names, const std::vector<std::string>& forward_names);

struct Breakdown {
  std::array<double, kCategories> ms{};  // per category
  double total_ms = 0;                   // sum over items
  bool device_time = false;              // GPU kernel time (else CPU self time)
  int64_t items = 0;
  // The most expensive item names (kernels or ops), their category and ms.
  struct Top {
    std::string name;
    Category category;
    double ms;
  };
  std::vector<Top> top;
};

// Runs `fn` once under the profiler (CUDA activities too when `cuda`) and
// returns its breakdown; `fn` must synchronise the device before returning.
Breakdown profile_breakdown(const std::function<void()>& fn, bool cuda);

}  // namespace lighthouse::bench
