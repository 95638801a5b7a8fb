/*
 * torch.ops.lighthouse_fused._fused_*: the fused training ops (fused.h) for the
 * tests and Python callers. Composite (autograd flows through the ops' own
 * autograd Functions); the RoPE op works on copies of q and k (the C++ API
 * rotates in place).
 *
 *   _fused_rms_norm(x, weight, eps, dtype) -> y
 *   _fused_add_rms_norm(x, residual, weight, eps, dtype) -> (x + residual, y)
 *   _fused_rope(q, k, positions, inv_freq) -> (q, k) rotated
 *   _fused_rope_inv_freq(head_dim, theta) -> inv_freq (CPU)
 *   _fused_swiglu(gate, up) -> silu(gate) * up
 *   _fused_linear_cross_entropy(h, weight, targets, ignore_index, chunk_rows) -> (sum, count)
 *   _fused_norm_qkv, _fused_add_norm_gate_up, _fused_swiglu_down: the block
 *   pieces with optional recompute (fused.h)
 *   _fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, decay, lr, beta1, beta2,
 *                 weight_decay, eps, step): one AdamW update in place (decay: 0/1 per tensor)
 */
#include <torch/library.h>

#include "ops/fused.h"

namespace lighthouse::fused {
namespace {

std::tuple<at::Tensor, at::Tensor> rope_copy(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                                             const at::Tensor& inv_freq) {
  return rope_(q.clone(), k.clone(), positions, inv_freq);
}

at::Tensor inv_freq_cpu(int64_t head_dim, double theta) { return rope_inv_freq(head_dim, theta, at::kCPU); }

void adamw_op(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
              at::IntArrayRef decay, double lr, double beta1, double beta2, double weight_decay, double eps,
              int64_t step) {
  std::vector<bool> d;
  for (const int64_t x : decay) d.push_back(x != 0);
  adamw_(params.vec(), grads.vec(), exp_avgs.vec(), exp_avg_sqs.vec(), d, lr, beta1, beta2, weight_decay, eps, step);
}

}  // namespace

TORCH_LIBRARY(lighthouse_fused, m) {
  m.def("_fused_rms_norm(Tensor x, Tensor weight, float eps, ScalarType dtype) -> Tensor", &rms_norm);
  m.def(
      "_fused_add_rms_norm(Tensor x, Tensor residual, Tensor weight, float eps, ScalarType dtype) "
      "-> (Tensor, Tensor)",
      &add_rms_norm);
  m.def("_fused_rope(Tensor q, Tensor k, Tensor positions, Tensor inv_freq) -> (Tensor, Tensor)", &rope_copy);
  m.def("_fused_rope_inv_freq(int head_dim, float theta) -> Tensor", &inv_freq_cpu);
  m.def("_fused_swiglu(Tensor gate, Tensor up) -> Tensor", &swiglu);
  m.def(
      "_fused_linear_cross_entropy(Tensor h, Tensor weight, Tensor targets, int ignore_index=-100, "
      "int chunk_rows=0) -> (Tensor, Tensor)",
      &linear_cross_entropy);
  m.def(
      "_fused_norm_qkv(Tensor x, Tensor norm_w, float eps, Tensor wq, Tensor wk, Tensor wv, int head_dim, "
      "ScalarType dtype, bool recompute) -> (Tensor, Tensor, Tensor)",
      &norm_qkv);
  m.def(
      "_fused_add_norm_gate_up(Tensor x, Tensor a, Tensor norm_w, float eps, Tensor w_gate, Tensor w_up, "
      "ScalarType dtype, bool recompute) -> (Tensor, Tensor, Tensor)",
      &add_norm_gate_up);
  m.def("_fused_swiglu_down(Tensor gate, Tensor up, Tensor w_down, bool recompute) -> Tensor", &swiglu_down);
  m.def(
      "_fused_adamw_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
      "int[] decay, float lr, float beta1, float beta2, float weight_decay, float eps, int step) -> ()",
      &adamw_op);
}

}  // namespace lighthouse::fused
