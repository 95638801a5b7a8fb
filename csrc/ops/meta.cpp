/*
 * Meta kernels of the registered ops: the fake kernels FakeTensor, AOT
 * autograd, torch.compile and torch.export run. Output shapes come from
 * sym_size() in SymInt arithmetic, so a dynamic sequence length traces as a
 * symbol (S = ceil(N / unit) * unit / p^(L-1) + (L-1) * p * top_k, with
 * unit = p^(L-1) * top_k / 128). With concrete sizes (meta tensors, static
 * tracing) they also run the CPU/CUDA kernels' checks of sizes, dtypes and
 * devices, so a bad call fails at trace time with the same message; with
 * symbolic sizes those checks run when the real kernel runs. Nothing here
 * reads tensor data. Outputs are contiguous, like the real kernels'.
 */
#include <ATen/ATen.h>

#include <initializer_list>

#include "../kernels/geometry.h"
#include "attention.h"
#include "checks.h"
#include "stages.h"

namespace lighthouse::detail {
namespace {

bool concrete(std::initializer_list<const at::Tensor*> ts) {
  for (const at::Tensor* t : ts) {
    if (t->defined() && t->unsafeGetTensorImpl()->has_symbolic_sizes_strides()) return false;
  }
  return true;
}

// The sizes a plan has for a sequence of `seq_len` tokens.
struct SymPlanSizes {
  c10::SymInt S;         // slots per (row, head)
  c10::SymInt P;         // pyramid entries per (row, head)
  c10::SymInt n_coarse;  // entries of the coarsest level
  c10::SymInt n_pooled;  // pooled rows: entries of levels >= pool_first()
};

SymPlanSizes plan_sizes(const c10::SymInt& seq_len, const Options& o) {
  check_options(o);
  const Geometry unit_g = geometry_for(1, 1, 1, 1, 1, o);  // N-independent parts of the geometry
  const int64_t shift = int64_t{unit_g.L - 1} * unit_g.log2_p;
  const int64_t unit = unit_g.T << shift;
  const c10::SymInt n_pad = (seq_len + (unit - 1)) / unit * unit;
  SymPlanSizes s;
  s.n_coarse = n_pad / (int64_t{1} << shift);
  s.S = s.n_coarse + int64_t{unit_g.L - 1} * unit_g.p() * o.top_k;
  s.P = n_pad;
  for (int l = 1; l < unit_g.L; ++l) s.P = s.P + n_pad / (int64_t{1} << (l * unit_g.log2_p));
  s.n_pooled = s.n_coarse;
  for (int l = unit_g.pool_first(); l < unit_g.L - 1; ++l) {
    s.n_pooled = s.n_pooled + n_pad / (int64_t{1} << (l * unit_g.log2_p));
  }
  return s;
}

at::Tensor empty_int32(c10::SymIntArrayRef shape, const at::Tensor& like) {
  return at::empty_symint(shape, like.options().dtype(at::kInt));
}

}  // namespace

at::Tensor select_meta(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                       c10::string_view scorer, int64_t dilation, const OptTensor& v, c10::string_view backend) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const at::Tensor v_ = v.value_or(at::Tensor());
  if (concrete({&q, &k, &v_})) check_inputs("lighthouse.select", q, k, v_, o);
  const SymPlanSizes s = plan_sizes(q.sym_size(1), o);
  return at::empty_symint({q.sym_size(0), q.sym_size(2), s.S}, q.options().dtype(at::kLong));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> plan_meta(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool, int64_t top_k,
    c10::string_view scorer, int64_t dilation, c10::string_view backend, const OptTensor& entries) {
  const Options o = make_options(levels, pool, top_k, scorer, dilation, backend);
  const at::Tensor e = entries.value_or(at::Tensor());
  if (concrete({&q, &k, &v, &e})) {
    const Geometry g = check_inputs("lighthouse.attention", q, k, v, o);
    if (e.defined()) check_entries(e, g, q.device());
  }
  const SymPlanSizes s = plan_sizes(q.sym_size(1), o);
  const c10::SymInt B = q.sym_size(0), H = q.sym_size(2), H_kv = k.sym_size(2), d = q.sym_size(3);
  at::Tensor out_entries = empty_int32({B, H, s.S}, q);
  at::Tensor inv = empty_int32({B, H, s.P}, q);
  if (!entries.has_value() && o.scorer == Scorer::kNorm) {
    return {out_entries, inv, at::empty_symint({B, H, s.n_pooled, d}, q.options()),
            at::empty_symint({B, H_kv, s.n_pooled, d}, k.options()),
            at::empty_symint({B, H_kv, s.n_pooled, d}, v.options())};
  }
  return {out_entries, inv, at::empty({0}, q.options()), at::empty({0}, k.options()), at::empty({0}, v.options())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_meta(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& entries,
                                                           const at::Tensor& inv, const OptTensor& coarse_q,
                                                           const OptTensor& coarse_k, const OptTensor& coarse_v,
                                                           int64_t levels, int64_t pool, int64_t top_k) {
  const Options o = make_options(levels, pool, top_k);
  const at::Tensor cq = coarse_q.value_or(at::Tensor()), ck = coarse_k.value_or(at::Tensor()),
                   cv = coarse_v.value_or(at::Tensor());
  if (concrete({&q, &k, &v, &entries, &inv, &cq, &ck, &cv})) {
    check_gather(q, k, v, entries, inv, coarse_q, coarse_k, coarse_v, o);
  }
  const SymPlanSizes s = plan_sizes(q.sym_size(1), o);
  const c10::SymInt B = q.sym_size(0), H = q.sym_size(2), d = q.sym_size(3);
  return {at::empty_symint({B, H, s.S, d}, q.options()), at::empty_symint({B, H, s.S, d}, k.options()),
          at::empty_symint({B, H, s.S, d}, v.options())};
}

at::Tensor gather_backward_meta(const at::Tensor& grad, const at::Tensor& inv, c10::SymInt seq_len, c10::SymInt heads,
                                int64_t levels, int64_t pool, int64_t top_k) {
  const Options o = make_options(levels, pool, top_k);
  if (concrete({&grad, &inv}) && seq_len.maybe_as_int() && heads.maybe_as_int()) {
    check_gather_backward(grad, inv, *seq_len.maybe_as_int(), *heads.maybe_as_int(), o);
  }
  return at::empty_symint({grad.sym_size(0), seq_len, heads, grad.sym_size(3)}, grad.options());
}

at::Tensor scatter_meta(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv, c10::SymInt seq_len,
                        int64_t levels, int64_t pool, int64_t top_k) {
  const Options o = make_options(levels, pool, top_k);
  if (concrete({&og, &entries, &inv}) && seq_len.maybe_as_int()) {
    check_scatter(og, entries, inv, *seq_len.maybe_as_int(), o);
  }
  return at::empty_symint({og.sym_size(0), seq_len, og.sym_size(1), og.sym_size(3)}, og.options());
}

at::Tensor scatter_backward_meta(const at::Tensor& grad, const at::Tensor& entries, const at::Tensor& inv,
                                 int64_t levels, int64_t pool, int64_t top_k) {
  const Options o = make_options(levels, pool, top_k);
  if (concrete({&grad, &entries, &inv})) check_scatter_backward(grad, entries, inv, o);
  const SymPlanSizes s = plan_sizes(grad.sym_size(1), o);
  return at::empty_symint({grad.sym_size(0), grad.sym_size(2), s.S, grad.sym_size(3)}, grad.options());
}

}  // namespace lighthouse::detail
