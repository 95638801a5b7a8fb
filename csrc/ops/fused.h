/*
 * Fused training ops on at::Tensor, differentiable (custom autograd
 * Functions with their own backward kernels), on CPU (the CPU twins) and
 * CUDA (the kernels): csrc/kernels/fused_params.h says what each computes.
 * The model calls them when train.fused is on; torch.ops.lighthouse_fused._fused_*
 * exposes them to the tests.
 *
 * Invariants: deterministic (fixed reduction orders, no atomics; the matmuls
 * of the cross-entropy are the stock ones); CPU and CUDA results equal bit
 * for bit for the element-wise and row kernels (given equal matmul outputs).
 * Semantics are those of the unfused model code (csrc/model/llama.cpp), up
 * to rounding: see the tolerance tests in tests/python/test_fused.py.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace lighthouse::fused {

// Hugging Face LlamaRMSNorm of an fp32 residual stream: x [..., D] fp32
// (fp64 on CPU), weight [D] -> [..., D] in out_dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, at::ScalarType out_dtype);

// The residual add fused in front: s = x + residual (x's dtype), y =
// rms_norm(s). x [..., D] fp32, residual [..., D] (on CUDA: out_dtype).
// Returns (s, y).
std::tuple<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                                const at::Tensor& weight, double eps, at::ScalarType out_dtype);

// RoPE, rotate-half layout, in place on q [B, N, H, d] and k [B, N, H_kv, d]
// (one dtype; last dim contiguous) for positions int64 [N] or [B, N] (a
// rank's chunk need not start at 0) and inv_freq fp32 [d/2] (rope_inv_freq)
// on their device. Differentiable: q and k are marked dirty; the backward
// rotates the gradients back. Returns (q, k).
std::tuple<at::Tensor, at::Tensor> rope_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& positions,
                                         const at::Tensor& inv_freq);

// Hugging Face's inverse frequencies 1 / theta^(2i/d), fp32 [d/2], computed
// on CPU with the same ops as the model's RoPE tables, moved to `device`.
at::Tensor rope_inv_freq(int64_t head_dim, double theta, at::Device device);

// silu(gate) * up for gate, up [..., F] of one dtype -> [..., F].
at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up);

// Cross-entropy of the lm_head logits h @ weight^T without materialising
// them for all rows at once: rows are processed in chunks of chunk_rows
// (0: a default that keeps a chunk's logits near 32 MB), the backward
// recomputes each chunk's logits. h [..., D] in the compute dtype, weight
// [V, D] (cast to h's dtype at use, as the model's linear does; its
// gradient is accumulated in fp32 over chunks), targets int64 [...] (h's
// leading shape). Returns (sum over rows whose target is not ignore_index
// of -log softmax[target], fp32 scalar (fp64 for fp64 h), differentiable in h and weight;
// the number of such rows, int64 scalar). A target outside [0, V) is an
// error on CPU and makes the sum NaN on CUDA (no synchronisation there).
std::tuple<at::Tensor, at::Tensor> linear_cross_entropy(const at::Tensor& h, const at::Tensor& weight,
                                                        const at::Tensor& targets, int64_t ignore_index,
                                                        int64_t chunk_rows = 0);

// --- Block pieces with selective recompute --------------------------------
// The matmuls of a decoder block fused with the element-wise work around
// them into autograd Functions whose backward is written out (matmuls,
// then the fused backward kernels). Weights are the fp32 masters, cast to
// `dtype` at use (forward and backward) like the model's linear. With
// `recompute`, the cheap element-wise results (the normalised rows, the
// residual sum, the SwiGLU product) are not kept for backward but
// recomputed there from what is kept (block input, matmul outputs):
// selective activation checkpointing. Results and gradients are the same
// either way, bit for bit (the recompute runs the same kernels).

// The attention inputs: h = rms_norm(x) in dtype, then q = h wq^T, k, v ->
// q [B, N, H, d], k, v [B, N, H_kv, d] (separate tensors, not views, so RoPE
// can rotate them in place). x [B, N, D] fp32; norm_w [D]; wq [H d, D],
// wk, wv [H_kv d, D]. Keeps x (and h unless recompute).
std::tuple<at::Tensor, at::Tensor, at::Tensor> norm_qkv(const at::Tensor& x, const at::Tensor& norm_w, double eps,
                                                        const at::Tensor& wq, const at::Tensor& wk,
                                                        const at::Tensor& wv, int64_t head_dim, at::ScalarType dtype,
                                                        bool recompute);

// The MLP inputs after the attention: s = x + a (x fp32 [B, N, D], a the
// o_proj output in dtype), h = rms_norm(s), gate = h w_gate^T, up = h w_up^T
// -> (s fp32, gate, up [B, N, F] in dtype). Keeps gate's and up's inputs:
// h and s, or with recompute x and a (s = x + a is recomputed exactly).
std::tuple<at::Tensor, at::Tensor, at::Tensor> add_norm_gate_up(const at::Tensor& x, const at::Tensor& a,
                                                                const at::Tensor& norm_w, double eps,
                                                                const at::Tensor& w_gate, const at::Tensor& w_up,
                                                                at::ScalarType dtype, bool recompute);

// The MLP output: swiglu(gate, up) w_down^T, gate, up [B, N, F] in dtype,
// w_down [D, F] -> [B, N, D] in dtype. Keeps gate and up (and the product
// unless recompute).
at::Tensor swiglu_down(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& w_down, bool recompute);

// One AdamW update (step = the 1-based update count) of fp32 tensors in
// place, as train::AdamW's unfused update (decoupled weight decay on the
// tensors where decay[i], bias-corrected moments), rounded the same way:
// the scalars in double, then fp32 (kernels/fused_math.h adamw_element).
// A few launches a step on CUDA (48 tensors each); CPU and CUDA agree bit
// for bit. params, grads and moments: contiguous fp32, one device, equal sizes.
void adamw_(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
            const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
            const std::vector<bool>& decay, double lr, double beta1, double beta2, double weight_decay, double eps,
            int64_t step);

}  // namespace lighthouse::fused
