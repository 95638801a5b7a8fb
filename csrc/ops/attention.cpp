/*
 * The Lighthouse op: the composite `attention`, the CPU/CUDA kernels of the
 * other registered ops, the checks they share with the Meta kernels, and the
 * public C++ API. Registration is in register.cpp, Meta kernels in meta.cpp,
 * Autograd kernels in autograd.cpp.
 *
 *   entries, inv, coarse = _plan(q, k, v)         scores + cascade, no gradient   stages.cpp
 *   q~, k~, v~ = _gather(q, k, v, plan)           [B, H, S, d]                    stages.cpp
 *   o~         = stock causal SDPA(q~, k~, v~)                                    sdpa.cpp
 *   out        = _scatter(o~, plan, N)            [B, N, H, d]                    stages.cpp
 *
 * Eager numbers are those of the same stages called in the same order; the
 * composite adds only dispatcher calls.
 */
#include "attention.h"

#include <ATen/Functions.h>
#include <c10/util/Exception.h>

#include "../kernels/geometry.h"
#include "checks.h"
#include "sdpa.h"
#include "stages.h"

namespace lighthouse {
namespace detail {
namespace {

at::TensorOptions int32_on(const at::Device& device) { return at::TensorOptions().dtype(at::kInt).device(device); }

void check_int32(const char* op, const char* name, const at::Tensor& t, const at::Device& device,
                 c10::IntArrayRef shape, const char* shape_text) {
  LH_CHECK(t.scalar_type() == at::kInt, op, ": ", name, " must be int32 (from _plan), got ", t.scalar_type());
  LH_CHECK(t.device() == device, op, ": ", name, " must be on ", device, ", got ", t.device());
  LH_CHECK(t.sizes() == shape, op, ": ", name, " must be ", shape_text, " = ", shape, ", got ", t.sizes());
}

at::Tensor optional_contiguous(const OptTensor& t) {
  return t.has_value() && t->defined() ? t->contiguous() : at::Tensor();
}

}  // namespace

Options make_options(int64_t levels, int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                     c10::string_view backend) {
  Options o;
  o.levels = levels;
  o.pool = pool;
  o.top_k = top_k;
  o.scorer = parse_scorer(std::string(scorer));
  o.dilation = dilation;
  o.backend = parse_backend(std::string(backend));
  return o;
}

// ---- the composite -------------------------------------------------------

at::Tensor attention_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels,
                               int64_t pool, int64_t top_k, c10::string_view scorer, int64_t dilation,
                               c10::string_view backend, const OptTensor& entries) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  // _plan checks q, k, v and the options (and the entries, if given).
  auto [e, inv, coarse_q, coarse_k, coarse_v] =
      plan_op().call(q, k, v, levels, pool, top_k, scorer, dilation, backend, entries);
  const bool pooled = !entries.has_value() && o.scorer == Scorer::kNorm;
  auto [qg, kg, vg] = gather_op().call(q, k, v, e, inv, pooled ? OptTensor(coarse_q) : std::nullopt,
                                       pooled ? OptTensor(coarse_k) : std::nullopt,
                                       pooled ? OptTensor(coarse_v) : std::nullopt, levels, pool, top_k);
  coarse_q = coarse_k = coarse_v = at::Tensor();  // free before the SDPA
  if (q.sym_size(0) == 0) return at::empty_symint(q.sym_sizes(), q.options());
  const at::Tensor og = causal_sdpa(qg, kg, vg, o.backend);
  qg = kg = vg = at::Tensor();
  return scatter_op().call(og, e, inv, q.sym_size(1), levels, pool, top_k);
}

// ---- checks shared with the Meta kernels -----------------------------------

Geometry check_plan_tensors(const char* op, const at::Tensor& entries, const at::Tensor& inv, const Geometry& g,
                            const at::Device& device) {
  if (entries.defined()) check_int32(op, "entries", entries, device, {g.B, g.H, g.S}, "[B, H, S]");
  if (inv.defined()) check_int32(op, "inv", inv, device, {g.B, g.H, g.P}, "[B, H, P]");
  return g;
}

Geometry check_gather(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& entries,
                      const at::Tensor& inv, const OptTensor& coarse_q, const OptTensor& coarse_k,
                      const OptTensor& coarse_v, const Options& o) {
  const char* op = "lighthouse._gather";
  const Geometry g = check_inputs(op, q, k, v, o);
  check_plan_tensors(op, entries, inv, g, q.device());
  const OptTensor* coarse[3] = {&coarse_q, &coarse_k, &coarse_v};
  const at::Tensor* xs[3] = {&q, &k, &v};
  const char* names[3] = {"coarse_q", "coarse_k", "coarse_v"};
  for (int i = 0; i < 3; ++i) {
    if (!coarse[i]->has_value()) continue;
    const at::Tensor& c = coarse[i]->value();
    const std::vector<int64_t> want{g.B, xs[i]->size(2), g.pooled_rows(), g.d};
    LH_CHECK(c.sizes() == c10::IntArrayRef(want) && c.scalar_type() == q.scalar_type() && c.device() == q.device(),
             op, ": ", names[i], " must be the pooled coarse rows [B, heads, R, d] = ", want, " in ",
             q.scalar_type(), " on ", q.device(), ", got ", c.sizes(), " ", c.scalar_type(), " on ", c.device());
  }
  return g;
}

Geometry check_gather_backward(const at::Tensor& grad, const at::Tensor& inv, int64_t seq_len, int64_t heads,
                               const Options& o) {
  const char* op = "lighthouse._gather_backward";
  check_options(o);
  LH_CHECK(grad.dim() == 4, op, ": grad must be [B, H, S, d], got ", grad.sizes());
  LH_CHECK(heads > 0 && grad.size(1) % heads == 0, op, ": heads=", heads, " must divide H=", grad.size(1));
  LH_CHECK(seq_len >= min_sequence_length(o), op, ": seq_len=", seq_len, " is below the smallest valid N ",
           min_sequence_length(o));
  const Geometry g = geometry_for(grad.size(0), seq_len, grad.size(1), heads, grad.size(3), o);
  LH_CHECK(grad.size(2) == g.S, op, ": grad must have S=", g.S, " slots, got ", grad.size(2));
  return check_plan_tensors(op, at::Tensor(), inv, g, grad.device());
}

Geometry check_scatter(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv, int64_t seq_len,
                       const Options& o) {
  const char* op = "lighthouse._scatter";
  check_options(o);
  LH_CHECK(og.dim() == 4, op, ": og must be [B, H, S, d], got ", og.sizes());
  LH_CHECK(seq_len >= min_sequence_length(o), op, ": seq_len=", seq_len, " is below the smallest valid N ",
           min_sequence_length(o));
  const Geometry g = geometry_for(og.size(0), seq_len, og.size(1), og.size(1), og.size(3), o);
  LH_CHECK(og.size(2) == g.S, op, ": og must have S=", g.S, " slots, got ", og.size(2));
  return check_plan_tensors(op, entries, inv, g, og.device());
}

Geometry check_scatter_backward(const at::Tensor& grad, const at::Tensor& entries, const at::Tensor& inv,
                                const Options& o) {
  const char* op = "lighthouse._scatter_backward";
  check_options(o);
  LH_CHECK(grad.dim() == 4, op, ": grad must be [B, N, H, d], got ", grad.sizes());
  LH_CHECK(grad.size(1) >= min_sequence_length(o), op, ": N=", grad.size(1), " is below the smallest valid N ",
           min_sequence_length(o));
  const Geometry g = geometry_for(grad.size(0), grad.size(1), grad.size(2), grad.size(2), grad.size(3), o);
  return check_plan_tensors(op, entries, inv, g, grad.device());
}

// ---- CPU and CUDA kernels --------------------------------------------------

at::Tensor select_kernel(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                         c10::string_view scorer, int64_t dilation, const OptTensor& v, c10::string_view backend) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const at::Tensor v_ = v.value_or(at::Tensor());
  const Geometry g = check_inputs("lighthouse.select", q, k, v_, o);
  if (g.B == 0) return at::empty({0, g.H, g.S}, q.options().dtype(at::kLong));
  return make_plan(q, k, v_, g, o).entries.to(at::kLong);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> plan_kernel(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool, int64_t top_k,
    c10::string_view scorer, int64_t dilation, c10::string_view backend, const OptTensor& entries) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const Geometry g = check_inputs("lighthouse.attention", q, k, v, o);
  const bool pooled = !entries.has_value() && o.scorer == Scorer::kNorm;
  Plan plan;
  if (entries.has_value()) {
    plan = plan_from_entries(*entries, g, q.device());
  } else if (g.B == 0) {
    plan.entries = at::empty({0, g.H, g.S}, int32_on(q.device()));
    plan.inv = at::empty({0, g.H, g.P}, int32_on(q.device()));
    const int64_t rows = g.pooled_rows();
    plan.coarse_q = at::empty({0, g.H, rows, g.d}, q.options());
    plan.coarse_k = at::empty({0, g.H_kv, rows, g.d}, k.options());
    plan.coarse_v = at::empty({0, g.H_kv, rows, g.d}, v.options());
  } else {
    plan = make_plan(q, k, v, g, o, /*pool_coarse=*/true);
  }
  if (!pooled) {
    plan.coarse_q = at::empty({0}, q.options());
    plan.coarse_k = at::empty({0}, k.options());
    plan.coarse_v = at::empty({0}, v.options());
  }
  return {plan.entries, plan.inv, plan.coarse_q, plan.coarse_k, plan.coarse_v};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_kernel(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& entries,
                                                             const at::Tensor& inv, const OptTensor& coarse_q,
                                                             const OptTensor& coarse_k, const OptTensor& coarse_v,
                                                             int64_t levels, int64_t pool, int64_t top_k) {
  const Geometry g = check_gather(q, k, v, entries, inv, coarse_q, coarse_k, coarse_v,
                                  make_options(levels, pool, top_k));
  if (g.B == 0) {
    auto empty = [&](const at::Tensor& x) { return at::empty({0, g.H, g.S, g.d}, x.options()); };
    return {empty(q), empty(k), empty(v)};
  }
  Plan plan;
  plan.entries = entries.contiguous();
  plan.inv = inv.contiguous();
  const std::vector<at::Tensor> out = gather(
      {q, k, v}, plan, g,
      {optional_contiguous(coarse_q), optional_contiguous(coarse_k), optional_contiguous(coarse_v)});
  return {out[0], out[1], out[2]};
}

at::Tensor gather_backward_kernel(const at::Tensor& grad, const at::Tensor& inv, int64_t seq_len, int64_t heads,
                                  int64_t levels, int64_t pool, int64_t top_k) {
  const Geometry g = check_gather_backward(grad, inv, seq_len, heads, make_options(levels, pool, top_k));
  if (g.B == 0) return at::empty({0, g.N, heads, g.d}, grad.options());
  Plan plan;
  plan.inv = inv.contiguous();
  return gather_backward(grad, heads, plan, g);
}

at::Tensor scatter_kernel(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv, int64_t seq_len,
                          int64_t levels, int64_t pool, int64_t top_k) {
  const Geometry g = check_scatter(og, entries, inv, seq_len, make_options(levels, pool, top_k));
  if (g.B == 0) return at::empty({0, g.N, g.H, g.d}, og.options());
  Plan plan;
  plan.entries = entries.contiguous();
  plan.inv = inv.contiguous();
  return scatter(og, plan, g);
}

at::Tensor scatter_backward_kernel(const at::Tensor& grad, const at::Tensor& entries, const at::Tensor& inv,
                                   int64_t levels, int64_t pool, int64_t top_k) {
  const Geometry g = check_scatter_backward(grad, entries, inv, make_options(levels, pool, top_k));
  if (g.B == 0) return at::empty({0, g.H, g.S, g.d}, grad.options());
  Plan plan;
  plan.entries = entries.contiguous();
  plan.inv = inv.contiguous();
  return scatter_backward(grad, plan, g);
}

// ---- typed handles ---------------------------------------------------------

#define LH_OP_HANDLE(fn, name, Signature)                                                                   \
  const c10::TypedOperatorHandle<Signature>& fn() {                                                          \
    static const auto op =                                                                                   \
        c10::Dispatcher::singleton().findSchemaOrThrow("lighthouse::" name, "").typed<Signature>();          \
    return op;                                                                                               \
  }
LH_OP_HANDLE(attention_op, "attention", AttentionSignature)
LH_OP_HANDLE(select_op, "select", SelectSignature)
LH_OP_HANDLE(plan_op, "_plan", PlanSignature)
LH_OP_HANDLE(gather_op, "_gather", GatherSignature)
LH_OP_HANDLE(gather_backward_op, "_gather_backward", GatherBackwardSignature)
LH_OP_HANDLE(scatter_op, "_scatter", ScatterSignature)
LH_OP_HANDLE(scatter_backward_op, "_scatter_backward", ScatterBackwardSignature)
#undef LH_OP_HANDLE

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
