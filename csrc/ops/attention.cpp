/*
 * The Lighthouse op: forward composition, kernels per dispatch key, and the
 * public C++ API. Registration is in register.cpp.
 *
 *   plan   = scores + cascade (no gradient)              stages.cpp
 *   q~,k~,v~ = gather(q, k, v, plan)     [B, H, S, d]      autograd.cpp
 *   o~     = stock causal SDPA(q~, k~, v~)                 sdpa.cpp
 *   out    = scatter(o~, plan)            [B, N, H, d]     autograd.cpp
 */
#include "attention.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>

#include "autograd.h"
#include "../kernels/geometry.h"
#include "checks.h"
#include "sdpa.h"
#include "stages.h"

namespace lighthouse {
namespace detail {
namespace {

Options make_options(int64_t levels, int64_t pool, int64_t top_k, c10::string_view scorer = "norm",
                     int64_t dilation = 4, c10::string_view backend = "auto") {
  Options o;
  o.levels = levels;
  o.pool = pool;
  o.top_k = top_k;
  o.scorer = parse_scorer(std::string(scorer));
  o.dilation = dilation;
  o.backend = parse_backend(std::string(backend));
  return o;
}

// The forward composition; records autograd nodes when inputs require grad
// and grad mode is on.
at::Tensor attention_impl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Options& o,
                          const std::optional<at::Tensor>& entries) {
  const Geometry g = check_inputs("lighthouse.attention", q, k, v, o);
  if (g.B == 0) return at::empty({0, g.N, g.H, g.d}, q.options());
  Plan plan = entries.has_value() ? plan_from_entries(*entries, g, q.device())
                                  : make_plan(q, k, v, g, o, /*pool_coarse=*/true);
  auto [qg, kg, vg] = gather_autograd(q, k, v, plan, g);
  plan.coarse_q = plan.coarse_k = plan.coarse_v = at::Tensor();  // free before the SDPA
  const at::Tensor og = causal_sdpa(qg, kg, vg, o.backend);
  return scatter_autograd(og, plan, g);
}

}  // namespace

at::Tensor attention_kernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                            int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                            c10::string_view backend, const std::optional<at::Tensor>& entries) {
  // Below autograd: no graph.
  at::NoGradGuard no_grad;
  return attention_impl(q, k, v, make_options(levels, pool, top_k, scorer, dilation, backend), entries);
}

at::Tensor attention_autograd_kernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                                     int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                                     c10::string_view backend, const std::optional<at::Tensor>& entries) {
  if (q.is_meta()) {
    at::AutoDispatchBelowADInplaceOrView below;
    return attention_op().call(q, k, v, levels, pool, top_k, scorer, dilation, backend, entries);
  }
  return attention_impl(q, k, v, make_options(levels, pool, top_k, scorer, dilation, backend), entries);
}

at::Tensor attention_meta(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                          int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                          c10::string_view backend, const std::optional<at::Tensor>& entries) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const Geometry g = check_inputs("lighthouse.attention", q, k, v, o);
  if (entries.has_value()) {
    LH_CHECK(entries->dim() == 3 && entries->size(0) == g.B && entries->size(1) == g.H && entries->size(2) == g.S,
                "lighthouse: entries must be [B, H, S] = [", g.B, ", ", g.H, ", ", g.S, "], got ", entries->sizes());
  }
  return at::empty({g.B, g.N, g.H, g.d}, q.options());
}

at::Tensor select_kernel(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                         c10::string_view scorer, int64_t dilation, const std::optional<at::Tensor>& v,
                         c10::string_view backend) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const at::Tensor v_ = v.value_or(at::Tensor());
  const Geometry g = check_inputs("lighthouse.select", q, k, v_, o);
  if (g.B == 0) return at::empty({0, g.H, g.S}, q.options().dtype(at::kLong));
  return make_plan(q, k, v_, g, o).entries.to(at::kLong);
}

at::Tensor select_meta(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                       c10::string_view scorer, int64_t dilation, const std::optional<at::Tensor>& v,
                       c10::string_view backend) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const Geometry g = check_inputs("lighthouse.select", q, k, v.value_or(at::Tensor()), o);
  return at::empty({g.B, g.H, g.S}, q.options().dtype(at::kLong));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_stage(const at::Tensor& q, const at::Tensor& k,
                                                            const at::Tensor& v, const at::Tensor& entries,
                                                            int64_t levels, int64_t pool, int64_t top_k) {
  const Options o = make_options(levels, pool, top_k);
  const Geometry g = check_inputs("lighthouse._gather", q, k, v, o);
  return gather_autograd(q, k, v, plan_from_entries(entries, g, q.device()), g);
}

at::Tensor scatter_stage(const at::Tensor& og, const at::Tensor& entries, int64_t seq_len, int64_t levels,
                         int64_t pool, int64_t top_k) {
  const Options o = make_options(levels, pool, top_k);
  check_options(o);
  LH_CHECK(og.dim() == 4, "lighthouse._scatter: og must be [B, H, S, d], got ", og.sizes());
  const Geometry g = geometry_for(og.size(0), seq_len, og.size(1), og.size(1), og.size(3), o);
  LH_CHECK(seq_len >= min_sequence_length(o), "lighthouse._scatter: seq_len=", seq_len,
              " is below the smallest valid N ", min_sequence_length(o));
  LH_CHECK(og.size(2) == g.S, "lighthouse._scatter: og must have S=", g.S, " slots, got ", og.size(2));
  return scatter_autograd(og, plan_from_entries(entries, g, og.device()), g);
}

const AttentionOp& attention_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("lighthouse::attention", "")
                             .typed<AttentionSignature>();
  return op;
}

const SelectOp& select_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("lighthouse::select", "").typed<SelectSignature>();
  return op;
}

}  // namespace detail

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Options& options,
                     const std::optional<at::Tensor>& entries) {
  return detail::attention_op().call(q, k, v, options.levels, options.pool, options.top_k, to_string(options.scorer),
                                     options.dilation, to_string(options.backend), entries);
}

at::Tensor select(const at::Tensor& q, const at::Tensor& k, const Options& options,
                  const std::optional<at::Tensor>& v) {
  return detail::select_op().call(q, k, options.levels, options.pool, options.top_k, to_string(options.scorer),
                                  options.dilation, v, to_string(options.backend));
}

int64_t subsequence_length(int64_t seq_len, const Options& options) {
  detail::check_options(options);
  return detail::geometry_for(1, seq_len, 1, 1, 1, options).S;
}

int64_t min_sequence_length(const Options& options) {
  detail::check_options(options);
  const Geometry g = detail::geometry_for(1, 1, 1, 1, 1, options);
  return min_seq_len(g.L, g.log2_p, g.k_top);
}

std::string to_string(Scorer scorer) { return scorer == Scorer::kNorm ? "norm" : "dilated"; }

std::string to_string(SdpaBackend backend) {
  switch (backend) {
    case SdpaBackend::kAuto:
      return "auto";
    case SdpaBackend::kCudnn:
      return "cudnn";
    case SdpaBackend::kFlash:
      return "flash";
    case SdpaBackend::kEfficient:
      return "efficient";
    case SdpaBackend::kMath:
      return "math";
  }
  return "?";
}

Scorer parse_scorer(const std::string& name) {
  if (name == "norm") return Scorer::kNorm;
  if (name == "dilated") return Scorer::kDilated;
  LH_CHECK(false, "lighthouse: scorer must be 'norm' or 'dilated', got '", name, "'");
}

SdpaBackend parse_backend(const std::string& name) {
  for (SdpaBackend b : {SdpaBackend::kAuto, SdpaBackend::kCudnn, SdpaBackend::kFlash, SdpaBackend::kEfficient,
                        SdpaBackend::kMath}) {
    if (name == to_string(b)) return b;
  }
  LH_CHECK(false, "lighthouse: SDPA backend must be one of auto, cudnn, flash, efficient, math; got '", name, "'");
}

}  // namespace lighthouse
