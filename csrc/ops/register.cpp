/*
 * torch.ops.lighthouse.*: schemas and kernels per dispatch key.
 *
 *   attention(q, k, v, levels, pool, top_k, *, scorer, dilation, backend, entries)
 *       CPU, CUDA, Autograd, Meta
 *   select(q, k, levels, pool, top_k, *, scorer, dilation, v, backend)
 *       CPU, CUDA, Meta (integer output, no gradient)
 *   _gather / _scatter: the differentiable stages alone, for tests.
 */
#include <torch/library.h>

#include "attention.h"

namespace lighthouse::detail {

TORCH_LIBRARY(lighthouse, m) {
  m.def(
      "attention(Tensor q, Tensor k, Tensor v, int levels, int pool, int top_k, *, str scorer=\"norm\", "
      "int dilation=4, str backend=\"auto\", Tensor? entries=None) -> Tensor");
  m.def(
      "select(Tensor q, Tensor k, int levels, int pool, int top_k, *, str scorer=\"norm\", int dilation=4, "
      "Tensor? v=None, str backend=\"auto\") -> Tensor");
  m.def(
      "_gather(Tensor q, Tensor k, Tensor v, Tensor entries, int levels, int pool, int top_k) "
      "-> (Tensor, Tensor, Tensor)",
      &gather_stage);
  m.def("_scatter(Tensor og, Tensor entries, int seq_len, int levels, int pool, int top_k) -> Tensor",
        &scatter_stage);
}

TORCH_LIBRARY_IMPL(lighthouse, CPU, m) {
  m.impl("attention", &attention_kernel);
  m.impl("select", &select_kernel);
}

TORCH_LIBRARY_IMPL(lighthouse, CUDA, m) {
  m.impl("attention", &attention_kernel);
  m.impl("select", &select_kernel);
}

TORCH_LIBRARY_IMPL(lighthouse, Autograd, m) { m.impl("attention", &attention_autograd_kernel); }

TORCH_LIBRARY_IMPL(lighthouse, Meta, m) {
  m.impl("attention", &attention_meta);
  m.impl("select", &select_meta);
}

}  // namespace lighthouse::detail
