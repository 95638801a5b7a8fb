/*
 * torch.ops.lighthouse.*: schemas and kernels per dispatch key.
 *
 *   attention(q, k, v, levels, pool, top_k, *, scorer, dilation, backend, entries)
 *       CompositeImplicitAutograd: _plan -> _gather -> stock SDPA -> _scatter
 *   select(q, k, levels, pool, top_k, *, scorer, dilation, v, backend)
 *       CPU, CUDA, Meta (integer output, no gradient)
 *   _plan                  CPU, CUDA, Meta, Autograd (no gradient)
 *   _gather, _scatter      CPU, CUDA, Meta, Autograd (backward: the two ops below)
 *   _gather_backward,
 *   _scatter_backward      CPU, CUDA, Meta, Autograd (first order only: raises
 *                          if a graph needs their gradient)
 *
 * Every kernel an op can reach under autograd, FakeTensor or AOT tracing is a
 * registered op with a Meta kernel, so torch.compile(fullgraph=True) and
 * torch.export trace the op without a graph break. The Python package adds
 * nothing to the registration.
 */
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

#include "attention.h"
#include "autograd.h"

namespace lighthouse::detail {

TORCH_LIBRARY(lighthouse, m) {
  m.def(
      "attention(Tensor q, Tensor k, Tensor v, int levels, int pool, int top_k, *, str scorer=\"norm\", "
      "int dilation=4, str backend=\"auto\", Tensor? entries=None) -> Tensor");
  m.def(
      "select(Tensor q, Tensor k, int levels, int pool, int top_k, *, str scorer=\"norm\", int dilation=4, "
      "Tensor? v=None, str backend=\"auto\") -> Tensor");
  m.def(
      "_plan(Tensor q, Tensor k, Tensor v, int levels, int pool, int top_k, str scorer, int dilation, str backend, "
      "Tensor? entries) -> (Tensor entries, Tensor inv, Tensor coarse_q, Tensor coarse_k, Tensor coarse_v)");
  m.def(
      "_gather(Tensor q, Tensor k, Tensor v, Tensor entries, Tensor inv, Tensor? coarse_q, Tensor? coarse_k, "
      "Tensor? coarse_v, int levels, int pool, int top_k) -> (Tensor, Tensor, Tensor)");
  m.def(
      "_gather_backward(Tensor grad, Tensor inv, SymInt seq_len, SymInt heads, int levels, int pool, int top_k) "
      "-> Tensor");
  m.def(
      "_scatter(Tensor og, Tensor entries, Tensor inv, SymInt seq_len, int levels, int pool, int top_k) -> Tensor");
  m.def("_scatter_backward(Tensor grad, Tensor entries, Tensor inv, int levels, int pool, int top_k) -> Tensor");
}

TORCH_LIBRARY_IMPL(lighthouse, CompositeImplicitAutograd, m) { m.impl("attention", &attention_composite); }

#define LH_BACKEND_KERNELS(m)                               \
  m.impl("select", &select_kernel);                         \
  m.impl("_plan", &plan_kernel);                            \
  m.impl("_gather", &gather_kernel);                        \
  m.impl("_gather_backward", &gather_backward_kernel);      \
  m.impl("_scatter", &scatter_kernel);                      \
  m.impl("_scatter_backward", &scatter_backward_kernel)

TORCH_LIBRARY_IMPL(lighthouse, CPU, m) { LH_BACKEND_KERNELS(m); }
TORCH_LIBRARY_IMPL(lighthouse, CUDA, m) { LH_BACKEND_KERNELS(m); }
#undef LH_BACKEND_KERNELS

TORCH_LIBRARY_IMPL(lighthouse, Meta, m) {
  m.impl("select", &select_meta);
  m.impl("_plan", &plan_meta);
  m.impl("_gather", &gather_meta);
  m.impl("_gather_backward", &gather_backward_meta);
  m.impl("_scatter", &scatter_meta);
  m.impl("_scatter_backward", &scatter_backward_meta);
}

TORCH_LIBRARY_IMPL(lighthouse, Autograd, m) {
  m.impl("_plan", &plan_autograd);
  m.impl("_gather", &gather_autograd);
  m.impl("_scatter", &scatter_autograd);
  m.impl("_gather_backward", torch::autograd::autogradNotImplementedFallback());
  m.impl("_scatter_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace lighthouse::detail
