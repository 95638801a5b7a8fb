/*
 * torch.ops.lighthouse.cp_*: the context-parallel ops for Python, in the
 * lighthouse namespace next to the one-device ops (a fragment: liblighthouse_ops
 * owns the namespace). The process group travels as its registered name
 * (torch.distributed's ProcessGroup.group_name), resolved with
 * c10d::resolve_process_group as torch's functional collectives do.
 * Composite (no kernel per dispatch key): autograd records the inner custom
 * functions, which run the collectives.
 *
 *   cp_attention(q, k, v, levels, pool, top_k, group_name, *, backend)
 *   cp_dense_attention(q, k, v, group_name, *, backend)
 *   cp_select(q, k, levels, pool, top_k, group_name)
 *   _cp_scatter / _cp_scatter_backward: one chunk's scatter with its spill
 *       rows (None: the one-device stage), for tests of the kernels'
 *       context-parallel extension.
 */
#include <torch/library.h>

#include <optional>

#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>

#include "cp_attention.h"
#include "lighthouse/lighthouse_cp.h"

namespace lighthouse::dist {
namespace {

Options make_options(int64_t levels, int64_t pool, int64_t top_k, c10::string_view backend = "auto") {
  Options o;
  o.levels = levels;
  o.pool = pool;
  o.top_k = top_k;
  o.backend = parse_backend(std::string(backend));
  return o;
}

cp::Group resolve(c10::string_view group_name) { return c10d::resolve_process_group(std::string(group_name)); }

at::Tensor cp_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool,
                           int64_t top_k, c10::string_view group_name, c10::string_view backend) {
  return cp::attention(q, k, v, make_options(levels, pool, top_k, backend), resolve(group_name));
}

at::Tensor cp_dense_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 c10::string_view group_name, c10::string_view backend) {
  return cp::dense_attention(q, k, v, resolve(group_name), parse_backend(std::string(backend)));
}

at::Tensor cp_select_op(const at::Tensor& q, const at::Tensor& k, int64_t levels, int64_t pool, int64_t top_k,
                        c10::string_view group_name) {
  return cp::select(q, k, make_options(levels, pool, top_k), resolve(group_name));
}

at::Tensor cp_scatter_op(const at::Tensor& og, const at::Tensor& entries, int64_t seq_len, int64_t levels, int64_t pool,
                         int64_t top_k, const std::optional<at::Tensor>& spill_in) {
  return cp_scatter(og, entries, seq_len, make_options(levels, pool, top_k), spill_in.value_or(at::Tensor()));
}

at::Tensor cp_scatter_backward_op(const at::Tensor& dout, const at::Tensor& entries, int64_t seq_len, int64_t levels,
                                  int64_t pool, int64_t top_k, const std::optional<at::Tensor>& spill_dout) {
  return cp_scatter_backward(dout, entries, seq_len, make_options(levels, pool, top_k),
                             spill_dout.value_or(at::Tensor()));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(lighthouse, m) {
  m.def(
      "cp_attention(Tensor q, Tensor k, Tensor v, int levels, int pool, int top_k, str group_name, *, "
      "str backend=\"auto\") -> Tensor",
      &cp_attention_op);
  m.def("cp_dense_attention(Tensor q, Tensor k, Tensor v, str group_name, *, str backend=\"auto\") -> Tensor",
        &cp_dense_attention_op);
  m.def("cp_select(Tensor q, Tensor k, int levels, int pool, int top_k, str group_name) -> Tensor", &cp_select_op);
  m.def(
      "_cp_scatter(Tensor og, Tensor entries, int seq_len, int levels, int pool, int top_k, Tensor? spill_in) "
      "-> Tensor",
      &cp_scatter_op);
  m.def(
      "_cp_scatter_backward(Tensor dout, Tensor entries, int seq_len, int levels, int pool, int top_k, "
      "Tensor? spill_dout) -> Tensor",
      &cp_scatter_backward_op);
}

}  // namespace lighthouse::dist
