/*
 * Parameters of the fused training kernels (RMSNorm with the residual add,
 * RoPE, SwiGLU, cross-entropy over vocabulary rows), on CPU and CUDA alike.
 *
 * Torch-free like params.h: raw pointers, element strides, sizes. The glue in
 * csrc/ops/fused.cpp fills them; the CPU twins (kernels/cpu/fused_cpu.h) and
 * the CUDA kernels (kernels/cuda/fused_cuda.h) read them. Row tensors are
 * [rows, width] with a row stride in elements and a contiguous last dim.
 *
 * The arithmetic of every output element is fixed by kernels/fused_math.h
 * (operation order, the double-precision parts, the reduction order of a
 * row), so a CPU twin and its CUDA kernel agree bit for bit.
 */
#pragma once

#include <cstdint>

#include "fused_math.h"
#include "params.h"

namespace lighthouse {

// A [rows, width] tensor: element (r, i) at ptr + r * row_stride + i.
struct RowTensor {
  void* ptr = nullptr;
  int64_t row_stride = 0;
  DType dtype = DType::kFloat32;
};

// y = round_out(w * round_acc(x * rstd)), rstd = 1 / sqrt(mean(x^2) + eps),
// the mean and rstd in double. With `residual`: x is first replaced by
// s = x + residual (written to `sum`, x's dtype) and s is normalised.
// Hugging Face LlamaRMSNorm on an fp32 residual stream; `acc` is double for
// fp64 x, float otherwise.
struct RmsNormParams {
  int64_t rows = 0;
  int64_t D = 0;
  double eps = 0;
  RowTensor x;                       // [rows, D] in: fp32 (fp64 on CPU)
  RowTensor residual;                // [rows, D] in, optional (ptr null: plain RMSNorm)
  RowTensor sum;                     // [rows, D] out: x + residual, x's dtype; required with residual
  const void* weight_ptr = nullptr;  // [D] in, dtype weight_dtype
  DType weight_dtype = DType::kFloat32;
  RowTensor y;                 // [rows, D] out
  double* rstd_ptr = nullptr;  // [rows] out
};

// Backward of RmsNormParams, first pass (one row at a time):
//   dx = rstd * (dn - xhat * mean(dn * xhat)) + dsum,  dn = dy * w,
// in double, rounded to x's dtype; with residual_grad, also
// d_residual = round_residual(round_x(dx)).
struct RmsNormBackwardParams {
  int64_t rows = 0;
  int64_t D = 0;
  RowTensor x;                       // [rows, D] in: the normalised input (s with a residual)
  RowTensor dy;                      // [rows, D] in
  RowTensor dsum;                    // [rows, D] in, optional: gradient of the `sum` output (x's dtype)
  const void* weight_ptr = nullptr;  // [D] in
  DType weight_dtype = DType::kFloat32;
  const double* rstd_ptr = nullptr;  // [rows] in
  RowTensor dx;                      // [rows, D] out, x's dtype
  RowTensor d_residual;              // [rows, D] out, optional
};

// Backward of RmsNormParams, weight gradient: dw[j] = sum over rows of
// dy[r, j] * xhat[r, j] (xhat = round_acc(x * rstd) as in the forward), in
// double: first per chunk of kNormWeightChunk rows in row order (partials),
// then over chunks in chunk order (finish), rounded to the weight dtype.
struct RmsNormWeightGradParams {
  int64_t rows = 0;
  int64_t D = 0;
  RowTensor x;                       // [rows, D] in
  RowTensor dy;                      // [rows, D] in
  const double* rstd_ptr = nullptr;  // [rows] in
  double* partial_ptr = nullptr;     // [chunks, D] workspace, chunks = ceil(rows / kNormWeightChunk)
  void* dw_ptr = nullptr;            // [D] out, dtype weight_dtype
  DType weight_dtype = DType::kFloat32;
};
constexpr int64_t kNormWeightChunk = 256;

// Rotary embedding, Hugging Face rotate-half layout, on q and k together:
// for each position row n with p = positions[b, n] and i < d/2:
//   angle_i = fp32(float(p) * inv_freq[i]), (c, s) = cos/sin(angle_i) in double,
//   out[i]       = x[i] c - x[i + d/2] s
//   out[i + d/2] = x[i + d/2] c + x[i] s
// (inverse: the transposed rotation, s -> -s), in `acc` (double for fp64,
// else float with c, s rounded to float). in and out may alias (in place).
struct RopeTensor {
  const void* in_ptr = nullptr;  // [B, N, heads, d], last dim contiguous
  void* out_ptr = nullptr;       // same layout and strides as in
  int64_t batch_stride = 0;
  int64_t seq_stride = 0;
  int64_t head_stride = 0;
  int64_t heads = 0;
};

struct RopeParams {
  int64_t B = 0;
  int64_t N = 0;
  int64_t d = 0;  // even
  DType dtype = DType::kFloat32;
  RopeTensor q;                            // [B, N, H, d]
  RopeTensor k;                            // [B, N, H_kv, d]; heads 0: q only
  const int64_t* positions_ptr = nullptr;  // [B, N] (batch stride 0: [N] shared)
  int64_t positions_batch_stride = 0;
  const float* inv_freq_ptr = nullptr;  // [d/2] fp32
  bool inverse = false;                 // backward: rotate by -angle
};

// out = round(silu(gate) * up), silu(g) = g / (1 + exp(-g)), in double.
struct SwigluParams {
  int64_t rows = 0;
  int64_t F = 0;
  DType dtype = DType::kFloat32;  // of all four tensors
  RowTensor gate;                 // [rows, F] in
  RowTensor up;                   // [rows, F] in
  RowTensor out;                  // [rows, F] out
};

// d_up = round(dout * silu(gate)), d_gate = round(dout * up * sigma (1 + g (1 - sigma))),
// sigma = 1 / (1 + exp(-g)), in double.
struct SwigluBackwardParams {
  int64_t rows = 0;
  int64_t F = 0;
  DType dtype = DType::kFloat32;
  RowTensor gate;    // [rows, F] in
  RowTensor up;      // [rows, F] in
  RowTensor dout;    // [rows, F] in
  RowTensor d_gate;  // [rows, F] out
  RowTensor d_up;    // [rows, F] out
};

// Cross-entropy of vocabulary rows: per row r with target t = targets[r],
//   lse[r] = m + log(sum_v exp(z_v - m)), m = max_v z_v, in double;
//   loss[r] = lse - z_t (double), or 0 when t == ignore_index.
// A target outside [0, V) that is not ignore_index gives loss NaN (no host
// check on the device; the glue checks on CPU).
struct CrossEntropyParams {
  int64_t rows = 0;
  int64_t V = 0;
  RowTensor logits;                      // [rows, V] in
  const int64_t* targets_ptr = nullptr;  // [rows]
  int64_t ignore_index = -100;
  double* loss_ptr = nullptr;  // [rows] out
  double* lse_ptr = nullptr;   // [rows] out
};

// dlogits[r, v] = round(g * (exp(z_v - lse[r]) - [v == t])), 0 for ignored
// rows, NaN for out-of-range targets; g = *grad_ptr (a device scalar, so no
// host synchronisation).
struct CrossEntropyBackwardParams {
  int64_t rows = 0;
  int64_t V = 0;
  RowTensor logits;                      // [rows, V] in
  const int64_t* targets_ptr = nullptr;  // [rows]
  int64_t ignore_index = -100;
  const double* lse_ptr = nullptr;   // [rows]
  const double* grad_ptr = nullptr;  // scalar
  RowTensor dlogits;                 // [rows, V] out, logits' dtype
};

// *out = sum of x[0..n) in double, in the fixed order of
// fused_math.h (kSumLanes strided partials, then a halving tree).
struct OrderedSumParams {
  int64_t n = 0;
  const double* x_ptr = nullptr;  // [n]
  double* out_ptr = nullptr;      // scalar
};

// AdamW on fp32 tensors (fused_math.h adamw_element): for each tensor i of
// the batch and element e < n: param, exp_avg and exp_avg_sq updated in
// place from grad (fp32). A batch travels by value in the kernel's
// parameters, so a step is ceil(tensors / kAdamWBatch) launches and no copy
// of a pointer table.
constexpr int kAdamWBatch = 48;
struct AdamWTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  int64_t n = 0;
};
struct AdamWParams {
  AdamWTensor tensors[kAdamWBatch];
  int count = 0;
  // Whether tensor i decays (decay factor) or not (factor 1).
  bool decay[kAdamWBatch] = {};
  fused_math::AdamWScalars scalars;
};

}  // namespace lighthouse
