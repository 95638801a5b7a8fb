/*
 * The fused training ops (fused.h): input checks that name the value, the
 * bridges to the kernel params (csrc/kernels/fused_params.h), the CPU twin or
 * CUDA kernel on the current stream, and one autograd Function per op whose
 * backward runs the op's own backward kernels.
 *
 * Saved for backward: RMSNorm its input (the residual sum when fused) and
 * the per-row rstd; RoPE only positions and frequencies (the backward is the
 * inverse rotation); SwiGLU gate and up; the cross-entropy h, the weight, the
 * targets and the per-row log-sum-exp (the logits are recomputed per chunk).
 */
#include "ops/fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "../kernels/cpu/fused_cpu.h"
#include "checks.h"
#include "launch.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "../kernels/cuda/fused_cuda.h"
#endif

namespace lighthouse::fused {
namespace {

using detail::to_dtype;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using detail::launch;

constexpr const char* kWhat = "lighthouse fused ops";  // error prefix of launch()

bool aligned4(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % (4 * t.element_size()) == 0; }

// t as [rows, width] with a contiguous last dim and, on CUDA, rows that start
// on 4-element boundaries (the kernels move 4 elements at once); copies only
// when t does not qualify.
at::Tensor rows_of(const at::Tensor& t, int64_t width) {
  at::Tensor r = t.reshape({-1, width});
  bool ok = width <= 1 || r.stride(1) == 1;
  if (ok && r.is_cuda()) ok = aligned4(r) && (r.size(0) <= 1 || r.stride(0) % 4 == 0);
  return ok ? r : r.contiguous();
}

RowTensor row_tensor(const at::Tensor& t) {
  return RowTensor{t.data_ptr(), t.size(0) <= 1 ? t.size(1) : t.stride(0), to_dtype(t)};
}

bool is_float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf;
}

void check_dtype(const char* op, const char* what, at::ScalarType t, const at::Device& device) {
  LH_CHECK(is_float_type(t), op, ": ", what, " must be float32, bfloat16, float16 (or float64 on CPU), got ", t);
  LH_CHECK(!(device.is_cuda() && t == at::kDouble), op, ": ", what,
           " is float64, which the CUDA kernels do not support (use float32, bfloat16 or float16)");
}

// --- RMSNorm -----------------------------------------------------------------

void check_norm(const char* op, const at::Tensor& x, const at::Tensor& residual, const at::Tensor& weight,
                at::ScalarType out_dtype) {
  LH_CHECK(weight.dim() == 1, op, ": weight must be [D], got ", weight.sizes());
  const int64_t D = weight.size(0);
  LH_CHECK(x.dim() >= 1 && x.size(-1) == D, op, ": x must be [..., D] with D = ", D, " (the weight's size), got ",
           x.sizes());
  LH_CHECK(x.device() == weight.device(), op, ": x is on ", x.device(), " but weight on ", weight.device());
  LH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
           ": x must be float32 (the residual stream; float64 on CPU), got ", x.scalar_type());
  check_dtype(op, "x", x.scalar_type(), x.device());
  check_dtype(op, "weight", weight.scalar_type(), x.device());
  check_dtype(op, "the output dtype", out_dtype, x.device());
  if (residual.defined()) {
    LH_CHECK(residual.sizes() == x.sizes(), op, ": residual must have x's shape ", x.sizes(), ", got ",
             residual.sizes());
    LH_CHECK(residual.device() == x.device(), op, ": residual is on ", residual.device(), " but x on ", x.device());
    check_dtype(op, "residual", residual.scalar_type(), x.device());
  }
  if (x.is_cuda()) {
    LH_CHECK(D % 4 == 0, op, ": D = ", D, " must be a multiple of 4 on CUDA");
    LH_CHECK(weight.scalar_type() == at::kFloat, op, ": on CUDA the weight must be float32, got ",
             weight.scalar_type());
    LH_CHECK(x.scalar_type() == at::kFloat, op, ": on CUDA x must be float32, got ", x.scalar_type());
    LH_CHECK(!residual.defined() || residual.scalar_type() == out_dtype, op,
             ": on CUDA the residual must be in the output dtype ", out_dtype, ", got ", residual.scalar_type());
  }
}

struct NormForward {
  at::Tensor sum, y, rstd;  // sum, y: [rows, D]; rstd: [rows] fp64
};

NormForward norm_forward(const at::Tensor& x, const at::Tensor& residual, const at::Tensor& weight, double eps,
                         at::ScalarType out_dtype) {
  const int64_t D = weight.size(0);
  const at::Tensor x2 = rows_of(x, D);
  const at::Tensor w = weight.contiguous();
  const int64_t rows = x2.size(0);
  NormForward o;
  o.y = at::empty({rows, D}, x2.options().dtype(out_dtype));
  o.rstd = at::empty({rows}, x2.options().dtype(at::kDouble));
  RmsNormParams p;
  p.rows = rows;
  p.D = D;
  p.eps = eps;
  p.x = row_tensor(x2);
  at::Tensor r2;
  if (residual.defined()) {
    r2 = rows_of(residual, D);
    o.sum = at::empty({rows, D}, x2.options());
    p.residual = row_tensor(r2);
    p.sum = row_tensor(o.sum);
  }
  p.weight_ptr = w.data_ptr();
  p.weight_dtype = to_dtype(w);
  p.y = row_tensor(o.y);
  p.rstd_ptr = o.rstd.data_ptr<double>();
  launch(kWhat, x2.device(), p, run_rms_norm_cpu, LH_CUDA_FN(run_rms_norm));
  return o;
}

// dx (x's dtype), d_residual (residual_dtype, when requested) and dw of the
// norm of x given dy and the gradient dsum reaching x from elsewhere (may be
// undefined).
struct NormBackward {
  at::Tensor dx, d_residual, dw;
};

NormBackward norm_backward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& rstd, const at::Tensor& dy,
                           const at::Tensor& dsum, c10::optional<at::ScalarType> residual_dtype, bool weight_grad) {
  const int64_t D = weight.size(0);
  const at::Tensor x2 = rows_of(x, D);
  const at::Tensor dy2 = rows_of(dy, D);
  const at::Tensor w = weight.contiguous();
  const int64_t rows = x2.size(0);
  NormBackward o;
  o.dx = at::empty({rows, D}, x2.options());
  RmsNormBackwardParams p;
  p.rows = rows;
  p.D = D;
  p.x = row_tensor(x2);
  p.dy = row_tensor(dy2);
  at::Tensor ds2;
  if (dsum.defined()) {
    ds2 = rows_of(dsum.to(x.scalar_type()), D);
    p.dsum = row_tensor(ds2);
  }
  p.weight_ptr = w.data_ptr();
  p.weight_dtype = to_dtype(w);
  p.rstd_ptr = rstd.data_ptr<double>();
  p.dx = row_tensor(o.dx);
  if (residual_dtype.has_value()) {
    o.d_residual = at::empty({rows, D}, x2.options().dtype(*residual_dtype));
    p.d_residual = row_tensor(o.d_residual);
  }
  launch(kWhat, x2.device(), p, run_rms_norm_backward_cpu, LH_CUDA_FN(run_rms_norm_backward));
  if (weight_grad) {
    const int64_t chunks = (rows + kNormWeightChunk - 1) / kNormWeightChunk;
    const at::Tensor partial = at::empty({chunks, D}, x2.options().dtype(at::kDouble));
    o.dw = at::empty({D}, w.options());
    RmsNormWeightGradParams q;
    q.rows = rows;
    q.D = D;
    q.x = row_tensor(x2);
    q.dy = row_tensor(dy2);
    q.rstd_ptr = rstd.data_ptr<double>();
    q.partial_ptr = partial.data_ptr<double>();
    q.dw_ptr = o.dw.data_ptr();
    q.weight_dtype = to_dtype(w);
    launch(kWhat, x2.device(), q, run_rms_norm_weight_grad_cpu, LH_CUDA_FN(run_rms_norm_weight_grad));
  }
  return o;
}

struct RmsNormFunction : torch::autograd::Function<RmsNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps,
                            at::ScalarType out_dtype) {
    NormForward o = norm_forward(x, {}, weight, eps, out_dtype);
    ctx->save_for_backward({x, weight, o.rstd});
    return o.y.view(x.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const NormBackward g = norm_backward(s[0], s[1], s[2], grads[0], {}, c10::nullopt, ctx->needs_input_grad(1));
    return {g.dx.view(s[0].sizes()), g.dw, at::Tensor(), at::Tensor()};
  }
};

struct AddRmsNormFunction : torch::autograd::Function<AddRmsNormFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& residual,
                               const at::Tensor& weight, double eps, at::ScalarType out_dtype) {
    NormForward o = norm_forward(x, residual, weight, eps, out_dtype);
    const at::Tensor sum = o.sum.view(x.sizes());
    ctx->save_for_backward({sum, weight, o.rstd});
    ctx->saved_data["residual_dtype"] = static_cast<int64_t>(residual.scalar_type());
    ctx->set_materialize_grads(false);
    return {sum, o.y.view(x.sizes())};
  }

  // grads: (d sum, d y), either may be undefined (not used downstream).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const auto residual_dtype = static_cast<at::ScalarType>(ctx->saved_data["residual_dtype"].toInt());
    const at::Tensor& dsum = grads[0];
    const at::Tensor& dy = grads[1];
    if (!dy.defined()) {
      if (!dsum.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
      const at::Tensor dx = dsum.to(s[0].scalar_type());
      return {dx, dx.to(residual_dtype), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const NormBackward g = norm_backward(s[0], s[1], s[2], dy, dsum, residual_dtype, ctx->needs_input_grad(2));
    return {g.dx.view(s[0].sizes()), g.d_residual.view(s[0].sizes()), g.dw, at::Tensor(), at::Tensor()};
  }
};

// --- RoPE ----------------------------------------------------------------------

void check_rope(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions, const at::Tensor& inv_freq) {
  const char* op = "fused rope";
  LH_CHECK(q.dim() == 4, op, ": q must be [B, N, H, d], got ", q.sizes());
  LH_CHECK(k.dim() == 4 && k.size(0) == q.size(0) && k.size(1) == q.size(1) && k.size(3) == q.size(3), op,
           ": k must be [B, N, H_kv, d] with q's B, N, d (q is ", q.sizes(), "), got ", k.sizes());
  LH_CHECK(k.scalar_type() == q.scalar_type(), op, ": q and k must share a dtype, got ", q.scalar_type(), " and ",
           k.scalar_type());
  LH_CHECK(k.device() == q.device() && positions.device() == q.device() && inv_freq.device() == q.device(), op,
           ": q, k, positions and inv_freq must be on one device, got ", q.device(), ", ", k.device(), ", ",
           positions.device(), ", ", inv_freq.device());
  check_dtype(op, "q", q.scalar_type(), q.device());
  const int64_t d = q.size(3);
  LH_CHECK(d % 2 == 0, op, ": the head dim d = ", d, " must be even");
  LH_CHECK(!q.is_cuda() || d % 8 == 0, op, ": the head dim d = ", d, " must be a multiple of 8 on CUDA");
  LH_CHECK(positions.scalar_type() == at::kLong, op, ": positions must be int64, got ", positions.scalar_type());
  LH_CHECK((positions.dim() == 1 && positions.size(0) == q.size(1)) ||
               (positions.dim() == 2 && positions.size(0) == q.size(0) && positions.size(1) == q.size(1)),
           op, ": positions must be [N] or [B, N] with B = ", q.size(0), ", N = ", q.size(1), ", got ",
           positions.sizes());
  LH_CHECK(inv_freq.scalar_type() == at::kFloat && inv_freq.dim() == 1 && inv_freq.size(0) == d / 2, op,
           ": inv_freq must be float32 [d/2] = [", d / 2, "], got ", inv_freq.scalar_type(), " ", inv_freq.sizes());
}

// Whether the kernels can rotate t where it is: last dim contiguous and, on
// CUDA, rows on 4-element boundaries.
bool rope_ready(const at::Tensor& t) {
  if (t.size(3) > 1 && t.stride(3) != 1) return false;
  if (!t.is_cuda()) return true;
  bool ok = aligned4(t);
  for (int64_t i = 0; i < 3; ++i) ok = ok && (t.size(i) <= 1 || t.stride(i) % 4 == 0);
  return ok;
}

RopeTensor rope_tensor(const at::Tensor& in, const at::Tensor& out) {
  if (!in.defined()) return RopeTensor{};  // heads 0: nothing to rotate
  TORCH_INTERNAL_ASSERT(in.strides() == out.strides());
  return RopeTensor{in.data_ptr(), out.data_ptr(), in.stride(0), in.stride(1), in.stride(2), in.size(2)};
}

// Rotates q_in, k_in into q_out, k_out (same strides; may alias; k may be
// undefined).
void rope_launch(const at::Tensor& q_in, const at::Tensor& q_out, const at::Tensor& k_in, const at::Tensor& k_out,
                 const at::Tensor& positions, const at::Tensor& inv_freq, bool inverse) {
  const at::Tensor pos = positions.contiguous();
  const at::Tensor freq = inv_freq.contiguous();
  RopeParams p;
  p.B = q_in.size(0);
  p.N = q_in.size(1);
  p.d = q_in.size(3);
  p.dtype = to_dtype(q_in);
  p.q = rope_tensor(q_in, q_out);
  p.k = rope_tensor(k_in, k_out);
  p.positions_ptr = pos.data_ptr<int64_t>();
  p.positions_batch_stride = pos.dim() == 2 ? pos.size(1) : 0;
  p.inv_freq_ptr = freq.data_ptr<float>();
  p.inverse = inverse;
  launch(kWhat, q_in.device(), p, run_rope_cpu, LH_CUDA_FN(run_rope));
}

// t itself when the kernels can rotate it in place, else a contiguous copy.
at::Tensor rope_target(const at::Tensor& t) { return !t.defined() || rope_ready(t) ? t : t.contiguous(); }

// In place on q and k (k may be undefined), through copies where the
// kernels cannot write them where they are.
void rope_inplace(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions, const at::Tensor& inv_freq) {
  const at::Tensor qq = rope_target(q), kk = rope_target(k);
  rope_launch(qq, qq, kk, kk, positions, inv_freq, /*inverse=*/false);
  if (!qq.is_same(q)) q.copy_(qq);
  if (kk.defined() && !kk.is_same(k)) k.copy_(kk);
}

// The transposed rotation of gradients into new tensors (k may be undefined).
std::pair<at::Tensor, at::Tensor> rope_inverse(const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& positions,
                                               const at::Tensor& inv_freq) {
  const at::Tensor a = dq.contiguous(), b = dk.defined() ? dk.contiguous() : at::Tensor();
  const at::Tensor ra = at::empty_like(a), rb = b.defined() ? at::empty_like(b) : at::Tensor();
  rope_launch(a, ra, b, rb, positions, inv_freq, /*inverse=*/true);
  return {ra, rb};
}

// RoPE in place on q and k together. Autograd accepts an in-place Function
// on a view input only with a single output: views go one tensor per
// Function (RopeOneFunction). Custom Functions take no undefined inputs,
// hence two Functions.
struct RopeFunction : torch::autograd::Function<RopeFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& positions, const at::Tensor& inv_freq) {
    rope_inplace(q, k, positions, inv_freq);
    ctx->save_for_backward({positions, inv_freq});
    ctx->mark_dirty({q, k});
    return {q, k};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const auto [dq, dk] = rope_inverse(grads[0], grads[1], s[0], s[1]);
    return {dq, dk, at::Tensor(), at::Tensor()};
  }
};

struct RopeOneFunction : torch::autograd::Function<RopeOneFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& positions,
                            const at::Tensor& inv_freq) {
    rope_inplace(x, at::Tensor(), positions, inv_freq);
    ctx->save_for_backward({positions, inv_freq});
    ctx->mark_dirty({x});
    return x;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    return {rope_inverse(grads[0], at::Tensor(), s[0], s[1]).first, at::Tensor(), at::Tensor()};
  }
};

// --- SwiGLU ----------------------------------------------------------------------

void check_swiglu(const at::Tensor& gate, const at::Tensor& up) {
  const char* op = "fused swiglu";
  LH_CHECK(gate.dim() >= 1 && gate.sizes() == up.sizes(), op, ": gate and up must be [..., F] of one shape, got ",
           gate.sizes(), " and ", up.sizes());
  LH_CHECK(gate.scalar_type() == up.scalar_type(), op, ": gate and up must share a dtype, got ", gate.scalar_type(),
           " and ", up.scalar_type());
  LH_CHECK(gate.device() == up.device(), op, ": gate is on ", gate.device(), " but up on ", up.device());
  check_dtype(op, "gate", gate.scalar_type(), gate.device());
  LH_CHECK(!gate.is_cuda() || gate.size(-1) % 4 == 0, op, ": F = ", gate.size(-1), " must be a multiple of 4 on CUDA");
}

// out [rows, F] = swiglu(g2, u2) for [rows, F] row tensors.
at::Tensor swiglu_rows(const at::Tensor& g2, const at::Tensor& u2) {
  at::Tensor out = at::empty({g2.size(0), g2.size(1)}, g2.options());
  SwigluParams p;
  p.rows = g2.size(0);
  p.F = g2.size(1);
  p.dtype = to_dtype(g2);
  p.gate = row_tensor(g2);
  p.up = row_tensor(u2);
  p.out = row_tensor(out);
  launch(kWhat, g2.device(), p, run_swiglu_cpu, LH_CUDA_FN(run_swiglu));
  return out;
}

// (d_gate, d_up) [rows, F] of swiglu for the output gradient dy2.
std::pair<at::Tensor, at::Tensor> swiglu_backward_rows(const at::Tensor& g2, const at::Tensor& u2,
                                                       const at::Tensor& dy2) {
  at::Tensor dg = at::empty({g2.size(0), g2.size(1)}, g2.options());
  at::Tensor du = at::empty({g2.size(0), g2.size(1)}, g2.options());
  SwigluBackwardParams p;
  p.rows = g2.size(0);
  p.F = g2.size(1);
  p.dtype = to_dtype(g2);
  p.gate = row_tensor(g2);
  p.up = row_tensor(u2);
  p.dout = row_tensor(dy2);
  p.d_gate = row_tensor(dg);
  p.d_up = row_tensor(du);
  launch(kWhat, g2.device(), p, run_swiglu_backward_cpu, LH_CUDA_FN(run_swiglu_backward));
  return {dg, du};
}

struct SwigluFunction : torch::autograd::Function<SwigluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    const int64_t F = gate.size(-1);
    ctx->save_for_backward({gate, up});
    return swiglu_rows(rows_of(gate, F), rows_of(up, F)).view(gate.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const int64_t F = s[0].size(-1);
    const auto [dg, du] = swiglu_backward_rows(rows_of(s[0], F), rows_of(s[1], F), rows_of(grads[0], F));
    return {dg.view(s[0].sizes()), du.view(s[0].sizes())};
  }
};

// --- Block pieces ---------------------------------------------------------------

// t [..., width] as [rows, width] for a matmul (a view when possible).
at::Tensor mat(const at::Tensor& t) { return t.reshape({-1, t.size(-1)}); }

// An output [lead..., out] = h2 [R, in] @ w.to(dtype)^T, allocated as one
// tensor of the given shape (not a view), written by the matmul.
at::Tensor project(const at::Tensor& h2, const at::Tensor& w, at::ScalarType dtype, at::IntArrayRef shape) {
  at::Tensor out = at::empty(shape, h2.options().dtype(dtype));
  at::Tensor out2 = out.view({h2.size(0), w.size(0)});
  at::mm_out(out2, h2, w.to(dtype).t());
  return out;
}

// The weight gradient d2^T h2 in the compute dtype (as the model's linear
// backward computes it), returned in w's dtype; undefined when not wanted.
at::Tensor weight_grad(const at::Tensor& d2, const at::Tensor& h2, const at::Tensor& w, bool wanted) {
  return wanted ? at::mm(d2.t(), h2).to(w.scalar_type()) : at::Tensor();
}

struct NormQkvFunction : torch::autograd::Function<NormQkvFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& norm_w,
                               const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv, double eps,
                               int64_t head_dim, at::ScalarType dtype, bool recompute) {
    const int64_t B = x.size(0), N = x.size(1);
    const NormForward h = norm_forward(x, {}, norm_w, eps, dtype);
    const at::Tensor q = project(h.y, wq, dtype, {B, N, wq.size(0) / head_dim, head_dim});
    const at::Tensor k = project(h.y, wk, dtype, {B, N, wk.size(0) / head_dim, head_dim});
    const at::Tensor v = project(h.y, wv, dtype, {B, N, wv.size(0) / head_dim, head_dim});
    ctx->save_for_backward({x, norm_w, wq, wk, wv, h.rstd, recompute ? at::Tensor() : h.y});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["dtype"] = static_cast<int64_t>(dtype);
    return {q, k, v};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], &norm_w = s[1], &rstd = s[5];
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const at::Tensor h =
        s[6].defined() ? s[6] : norm_forward(x, {}, norm_w, ctx->saved_data["eps"].toDouble(), dtype).y;
    at::Tensor dh;
    variable_list dw(3);
    for (int i = 0; i < 3; ++i) {
      const at::Tensor& w = s[2 + i];
      const at::Tensor d2 = grads[i].to(dtype).reshape({-1, w.size(0)});
      dh = i == 0 ? at::mm(d2, w.to(dtype)) : dh.addmm_(d2, w.to(dtype));
      dw[i] = weight_grad(d2, h, w, ctx->needs_input_grad(2 + i));
    }
    const NormBackward g = norm_backward(x, norm_w, rstd, dh, {}, c10::nullopt, ctx->needs_input_grad(1));
    return {g.dx.view(x.sizes()), g.dw, dw[0], dw[1], dw[2], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct AddNormGateUpFunction : torch::autograd::Function<AddNormGateUpFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& a, const at::Tensor& norm_w,
                               const at::Tensor& w_gate, const at::Tensor& w_up, double eps, at::ScalarType dtype,
                               bool recompute) {
    const int64_t B = x.size(0), N = x.size(1);
    const NormForward h = norm_forward(x, a, norm_w, eps, dtype);
    const at::Tensor gate = project(h.y, w_gate, dtype, {B, N, w_gate.size(0)});
    const at::Tensor up = project(h.y, w_up, dtype, {B, N, w_up.size(0)});
    const at::Tensor sum = h.sum.view(x.sizes());
    if (recompute) {
      ctx->save_for_backward({x, a, at::Tensor(), at::Tensor(), norm_w, w_gate, w_up, h.rstd});
    } else {
      ctx->save_for_backward({at::Tensor(), at::Tensor(), sum, h.y, norm_w, w_gate, w_up, h.rstd});
    }
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["dtype"] = static_cast<int64_t>(dtype);
    ctx->saved_data["a_dtype"] = static_cast<int64_t>(a.scalar_type());
    return {sum, gate, up};
  }

  // grads: d sum (from the block's final residual add), d gate, d up.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor &norm_w = s[4], &w_gate = s[5], &w_up = s[6], &rstd = s[7];
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    at::Tensor sum = s[2], h = s[3];
    if (!sum.defined()) {
      const NormForward again = norm_forward(s[0], s[1], norm_w, ctx->saved_data["eps"].toDouble(), dtype);
      sum = again.sum.view(s[0].sizes());
      h = again.y;
    }
    const at::Tensor dg = mat(grads[1].to(dtype)), du = mat(grads[2].to(dtype));
    at::Tensor dh = at::mm(dg, w_gate.to(dtype));
    dh.addmm_(du, w_up.to(dtype));
    const at::Tensor dwg = weight_grad(dg, h, w_gate, ctx->needs_input_grad(3));
    const at::Tensor dwu = weight_grad(du, h, w_up, ctx->needs_input_grad(4));
    const auto a_dtype = static_cast<at::ScalarType>(ctx->saved_data["a_dtype"].toInt());
    const NormBackward g = norm_backward(sum, norm_w, rstd, dh, grads[0], a_dtype, ctx->needs_input_grad(2));
    return {g.dx.view(sum.sizes()),
            g.d_residual.view(sum.sizes()),
            g.dw,
            dwg,
            dwu,
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

struct SwigluDownFunction : torch::autograd::Function<SwigluDownFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up,
                            const at::Tensor& w_down, bool recompute) {
    const int64_t F = gate.size(-1);
    const at::Tensor act = swiglu_rows(rows_of(gate, F), rows_of(up, F));
    std::vector<int64_t> shape(gate.sizes().begin(), gate.sizes().end());
    shape.back() = w_down.size(0);
    const at::Tensor m = project(act, w_down, gate.scalar_type(), shape);
    ctx->save_for_backward({gate, up, w_down, recompute ? at::Tensor() : act});
    return m;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor &gate = s[0], &up = s[1], &w_down = s[2];
    const int64_t F = gate.size(-1);
    const at::ScalarType dtype = gate.scalar_type();
    const at::Tensor g2 = rows_of(gate, F), u2 = rows_of(up, F);
    const at::Tensor act = s[3].defined() ? s[3] : swiglu_rows(g2, u2);
    const at::Tensor dm = mat(grads[0].to(dtype));
    const at::Tensor d_act = at::mm(dm, w_down.to(dtype));
    const at::Tensor dwd = weight_grad(dm, act, w_down, ctx->needs_input_grad(2));
    const auto [dg, du] = swiglu_backward_rows(g2, u2, d_act);
    return {dg.view(gate.sizes()), du.view(gate.sizes()), dwd, at::Tensor()};
  }
};

// --- Cross-entropy -----------------------------------------------------------------

constexpr int64_t kChunkBytes = int64_t{32} << 20;

int64_t chunk_rows_for(int64_t chunk_rows, int64_t V, const at::Tensor& h) {
  if (chunk_rows > 0) return chunk_rows;
  return std::max<int64_t>(1, kChunkBytes / (V * static_cast<int64_t>(h.element_size())));
}

// The sum (in the kernels' fixed order, in double) of x [n] fp64.
at::Tensor ordered_sum(const at::Tensor& x) {
  at::Tensor out = at::empty({}, x.options());
  OrderedSumParams p;
  p.n = x.numel();
  p.x_ptr = x.data_ptr<double>();
  p.out_ptr = out.data_ptr<double>();
  launch(kWhat, x.device(), p, run_ordered_sum_cpu, LH_CUDA_FN(run_ordered_sum));
  return out;
}

struct CrossEntropyFunction : torch::autograd::Function<CrossEntropyFunction> {
  // h2 [R, D], targets2 [R].
  static variable_list forward(AutogradContext* ctx, const at::Tensor& h2, const at::Tensor& weight,
                               const at::Tensor& targets2, int64_t ignore_index, int64_t chunk_rows) {
    const int64_t R = h2.size(0), V = weight.size(0);
    const at::Tensor w = weight.to(h2.scalar_type());
    const at::Tensor loss_rows = at::empty({R}, h2.options().dtype(at::kDouble));
    const at::Tensor lse = at::empty({R}, h2.options().dtype(at::kDouble));
    const int64_t chunk = chunk_rows_for(chunk_rows, V, h2);
    {
      at::NoGradGuard no_grad;
      for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        const int64_t n = std::min(chunk, R - r0);
        const at::Tensor logits = at::mm(h2.narrow(0, r0, n), w.t());  // [n, V], h's dtype
        CrossEntropyParams p;
        p.rows = n;
        p.V = V;
        p.logits = row_tensor(logits);
        p.targets_ptr = targets2.data_ptr<int64_t>() + r0;
        p.ignore_index = ignore_index;
        p.loss_ptr = loss_rows.data_ptr<double>() + r0;
        p.lse_ptr = lse.data_ptr<double>() + r0;
        launch(kWhat, h2.device(), p, run_cross_entropy_cpu, LH_CUDA_FN(run_cross_entropy));
      }
    }
    // fp32, or fp64 for fp64 inputs (gradcheck).
    const at::Tensor sum = ordered_sum(loss_rows).to(h2.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
    const at::Tensor count = targets2.ne(ignore_index).sum();
    ctx->save_for_backward({h2, weight, targets2, lse});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["chunk"] = chunk;
    ctx->mark_non_differentiable({count});
    return {sum, count};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor &h2 = s[0], &weight = s[1], &targets2 = s[2], &lse = s[3];
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const int64_t R = h2.size(0), V = weight.size(0);
    const at::Tensor g = grads[0].to(at::kDouble).contiguous();
    const at::Tensor w = weight.to(h2.scalar_type());
    const bool want_h = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    const at::ScalarType acc_t = h2.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor dh = want_h ? at::empty({R, h2.size(1)}, h2.options()) : at::Tensor();
    at::Tensor dw = want_w ? at::zeros({V, h2.size(1)}, h2.options().dtype(acc_t)) : at::Tensor();
    const bool lowp = acc_t != h2.scalar_type();
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
      const int64_t n = std::min(chunk, R - r0);
      const at::Tensor hc = h2.narrow(0, r0, n);
      const at::Tensor logits = at::mm(hc, w.t());
      const at::Tensor dlogits = at::empty_like(logits);
      CrossEntropyBackwardParams p;
      p.rows = n;
      p.V = V;
      p.logits = row_tensor(logits);
      p.targets_ptr = targets2.data_ptr<int64_t>() + r0;
      p.ignore_index = ignore_index;
      p.lse_ptr = lse.data_ptr<double>() + r0;
      p.grad_ptr = g.data_ptr<double>();
      p.dlogits = row_tensor(dlogits);
      launch(kWhat, h2.device(), p, run_cross_entropy_backward_cpu, LH_CUDA_FN(run_cross_entropy_backward));
      if (want_h) {
        at::Tensor dst = dh.narrow(0, r0, n);
        at::mm_out(dst, dlogits, w);
      }
      if (want_w) {
        // The weight gradient accumulates in fp32 over chunks: bf16/fp16
        // products go straight to fp32 on CUDA (mm with out_dtype), through
        // fp32 copies on CPU.
        if (!lowp) {
          dw.addmm_(dlogits.t(), hc);
        } else if (h2.is_cuda()) {
          dw.add_(at::mm(dlogits.t(), hc, acc_t));
        } else {
          dw.addmm_(dlogits.t().to(acc_t), hc.to(acc_t));
        }
      }
    }
    return {dh, want_w ? dw.to(weight.scalar_type()) : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check_loss(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& targets, int64_t ignore_index) {
  const char* op = "fused linear_cross_entropy";
  LH_CHECK(weight.dim() == 2, op, ": weight must be [V, D], got ", weight.sizes());
  LH_CHECK(h.dim() >= 1 && h.size(-1) == weight.size(1), op, ": h must be [..., D] with D = ", weight.size(1),
           " (the weight's), got ", h.sizes());
  LH_CHECK(targets.scalar_type() == at::kLong, op, ": targets must be int64, got ", targets.scalar_type());
  LH_CHECK(targets.numel() * h.size(-1) == h.numel(), op, ": targets ", targets.sizes(),
           " must have h's leading shape (h is ", h.sizes(), ")");
  LH_CHECK(h.device() == weight.device() && targets.device() == h.device(), op,
           ": h, weight and targets must be on one device, got ", h.device(), ", ", weight.device(), ", ",
           targets.device());
  check_dtype(op, "h", h.scalar_type(), h.device());
  check_dtype(op, "weight", weight.scalar_type(), h.device());
  const int64_t V = weight.size(0);
  LH_CHECK(!h.is_cuda() || V % 4 == 0, op, ": the vocabulary size V = ", V, " must be a multiple of 4 on CUDA");
  if (h.is_cpu() && targets.numel() > 0) {
    const at::Tensor bad = targets.ne(ignore_index).logical_and(targets.lt(0).logical_or(targets.ge(V)));
    if (bad.any().item<bool>()) {
      const int64_t t = targets.masked_select(bad)[0].item<int64_t>();
      LH_CHECK(false, op, ": target ", t, " is outside [0, V = ", V, ") and is not ignore_index = ", ignore_index);
    }
  }
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, at::ScalarType out_dtype) {
  check_norm("fused rms_norm", x, {}, weight, out_dtype);
  return RmsNormFunction::apply(x, weight, eps, out_dtype);
}

std::tuple<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                                const at::Tensor& weight, double eps, at::ScalarType out_dtype) {
  check_norm("fused add_rms_norm", x, residual, weight, out_dtype);
  const variable_list out = AddRmsNormFunction::apply(x, residual, weight, eps, out_dtype);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor> rope_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                                         const at::Tensor& inv_freq) {
  check_rope(q, k, positions, inv_freq);
  if (q.is_view() || k.is_view()) {
    return {RopeOneFunction::apply(q, positions, inv_freq), RopeOneFunction::apply(k, positions, inv_freq)};
  }
  const variable_list out = RopeFunction::apply(q, k, positions, inv_freq);
  return {out[0], out[1]};
}

at::Tensor rope_inv_freq(int64_t head_dim, double theta, at::Device device) {
  LH_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope_inv_freq: head_dim = ", head_dim, " must be positive and even");
  // As transformers' default RoPE (and model::rope_tables): fp32 exponents
  // 2i/d, theta^exponent in fp32, then 1 / that.
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor exponent =
      at::arange(0, head_dim, 2, f32.dtype(at::kLong)).to(at::kFloat) / static_cast<double>(head_dim);
  return (1.0 / at::pow(theta, exponent)).to(device);
}

at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up) {
  check_swiglu(gate, up);
  return SwigluFunction::apply(gate, up);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> norm_qkv(const at::Tensor& x, const at::Tensor& norm_w, double eps,
                                                        const at::Tensor& wq, const at::Tensor& wk,
                                                        const at::Tensor& wv, int64_t head_dim, at::ScalarType dtype,
                                                        bool recompute) {
  check_norm("fused norm_qkv", x, {}, norm_w, dtype);
  LH_CHECK(x.dim() == 3, "fused norm_qkv: x must be [B, N, D], got ", x.sizes());
  for (const at::Tensor* w : {&wq, &wk, &wv}) {
    LH_CHECK(w->dim() == 2 && w->size(1) == x.size(2) && head_dim > 0 && w->size(0) % head_dim == 0,
             "fused norm_qkv: projection weights must be [heads * ", head_dim, ", D = ", x.size(2), "], got ",
             w->sizes());
  }
  const variable_list out = NormQkvFunction::apply(x, norm_w, wq, wk, wv, eps, head_dim, dtype, recompute);
  return {out[0], out[1], out[2]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> add_norm_gate_up(const at::Tensor& x, const at::Tensor& a,
                                                                const at::Tensor& norm_w, double eps,
                                                                const at::Tensor& w_gate, const at::Tensor& w_up,
                                                                at::ScalarType dtype, bool recompute) {
  check_norm("fused add_norm_gate_up", x, a, norm_w, dtype);
  LH_CHECK(x.dim() == 3, "fused add_norm_gate_up: x must be [B, N, D], got ", x.sizes());
  LH_CHECK(w_gate.dim() == 2 && w_gate.size(1) == x.size(2) && w_up.sizes() == w_gate.sizes(),
           "fused add_norm_gate_up: w_gate and w_up must be [F, D = ", x.size(2), "], got ", w_gate.sizes(), " and ",
           w_up.sizes());
  const variable_list out = AddNormGateUpFunction::apply(x, a, norm_w, w_gate, w_up, eps, dtype, recompute);
  return {out[0], out[1], out[2]};
}

at::Tensor swiglu_down(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& w_down, bool recompute) {
  check_swiglu(gate, up);
  LH_CHECK(w_down.dim() == 2 && w_down.size(1) == gate.size(-1),
           "fused swiglu_down: w_down must be [D, F = ", gate.size(-1), "], got ", w_down.sizes());
  return SwigluDownFunction::apply(gate, up, w_down, recompute);
}

void adamw_(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
            const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
            const std::vector<bool>& decay, double lr, double beta1, double beta2, double weight_decay, double eps,
            int64_t step) {
  const char* op = "fused adamw";
  const size_t n = params.size();
  LH_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n && decay.size() == n, op,
           ": params, grads, exp_avgs, exp_avg_sqs and decay must have one entry per parameter, got ", n, ", ",
           grads.size(), ", ", exp_avgs.size(), ", ", exp_avg_sqs.size(), ", ", decay.size());
  LH_CHECK(step >= 1, op, ": step = ", step, " must be >= 1 (the 1-based update count)");
  if (n == 0) return;
  const at::Device device = params[0].device();
  for (size_t i = 0; i < n; ++i) {
    for (const at::Tensor* t : {&params[i], &grads[i], &exp_avgs[i], &exp_avg_sqs[i]}) {
      LH_CHECK(t->defined() && t->scalar_type() == at::kFloat && t->is_contiguous() && t->device() == device, op,
               ": tensor ", i, " and its gradient and moments must be contiguous float32 on ", device);
      LH_CHECK(t->sizes() == params[i].sizes(), op, ": tensor ", i, ": gradient or moment of shape ", t->sizes(),
               " for a parameter of shape ", params[i].sizes());
    }
  }
  const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  AdamWParams p;
  p.scalars.decay = static_cast<float>(1.0 - lr * weight_decay);
  p.scalars.beta1 = static_cast<float>(beta1);
  p.scalars.one_m_beta1 = static_cast<float>(1.0 - beta1);
  p.scalars.beta2 = static_cast<float>(beta2);
  p.scalars.one_m_beta2 = static_cast<float>(1.0 - beta2);
  p.scalars.sqrt_bias2 = static_cast<float>(std::sqrt(bias2));
  p.scalars.eps = static_cast<float>(eps);
  p.scalars.neg_step = static_cast<float>(-(lr / bias1));
  at::NoGradGuard no_grad;
  for (size_t first = 0; first < n; first += kAdamWBatch) {
    p.count = static_cast<int>(std::min<size_t>(kAdamWBatch, n - first));
    for (int j = 0; j < p.count; ++j) {
      const size_t i = first + static_cast<size_t>(j);
      p.tensors[j] = AdamWTensor{params[i].data_ptr<float>(), grads[i].data_ptr<float>(), exp_avgs[i].data_ptr<float>(),
                                 exp_avg_sqs[i].data_ptr<float>(), params[i].numel()};
      p.decay[j] = decay[i] && weight_decay != 0;
    }
    launch(kWhat, device, p, run_adamw_cpu, LH_CUDA_FN(run_adamw));
  }
}

std::tuple<at::Tensor, at::Tensor> linear_cross_entropy(const at::Tensor& h, const at::Tensor& weight,
                                                        const at::Tensor& targets, int64_t ignore_index,
                                                        int64_t chunk_rows) {
  check_loss(h, weight, targets, ignore_index);
  LH_CHECK(chunk_rows >= 0, "fused linear_cross_entropy: chunk_rows = ", chunk_rows, " must be >= 0 (0: default)");
  const at::Tensor h2 = h.reshape({-1, h.size(-1)});
  const at::Tensor t2 = targets.reshape({-1}).contiguous();
  const variable_list out = CrossEntropyFunction::apply(h2, weight, t2, ignore_index, chunk_rows);
  return {out[0], out[1]};
}

}  // namespace lighthouse::fused
