/*
 * Fused RMSNorm (+ residual add) on CUDA: forward, input gradient and weight
 * gradient. A warp owns a row (lane j moves elements 4j..4j+3 of every
 * 128-element chunk, the order of kernels/fused_math.h); the statistics and
 * the backward's row dot product accumulate in double and combine through
 * the warp's xor butterfly. The weight gradient sums fixed chunks of rows
 * per column (one thread a column, rows in order), then the chunks in order.
 * x, the sum and the weight are fp32; residual, y and dy share T.
 */
#include "fused_common.cuh"
#include "fused_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) rms_norm_kernel(RmsNormParams p) {
  const int lane = threadIdx.x % 32;
  const bool with_residual = p.residual.ptr != nullptr;
  const float* w = static_cast<const float*>(p.weight_ptr);
  for (int64_t row = int64_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32; row < p.rows;
       row += int64_t{gridDim.x} * kWarpsPerBlock) {
    const float* x = static_cast<const float*>(p.x.ptr) + row * p.x.row_stride;
    float* s = with_residual ? static_cast<float*>(p.sum.ptr) + row * p.sum.row_stride : nullptr;
    double sum_sq = 0.0;
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.D; c += lhf::kRowVec * lhf::kRowLanes) {
      float v[4];
      load4(x + c, v);
      if (with_residual) {
        float r[4];
        load4(static_cast<const T*>(p.residual.ptr) + row * p.residual.row_stride + c, r);
#pragma unroll
        for (int e = 0; e < 4; ++e) v[e] = v[e] + r[e];
        store4(s + c, v);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) sum_sq += static_cast<double>(v[e]) * static_cast<double>(v[e]);
    }
    const double rstd = lhf::norm_rstd(warp_sum(sum_sq), p.D, p.eps);
    const float* src = with_residual ? s : x;  // this lane's own writes: no synchronisation needed
    T* y = static_cast<T*>(p.y.ptr) + row * p.y.row_stride;
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.D; c += lhf::kRowVec * lhf::kRowLanes) {
      float v[4], wv[4], out[4];
      load4(src + c, v);
      load4(w + c, wv);
#pragma unroll
      for (int e = 0; e < 4; ++e) out[e] = lhf::norm_out<float>(v[e], rstd, wv[e]);
      store4(y + c, out);
    }
    if (lane == 0) p.rstd_ptr[row] = rstd;
  }
}

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) rms_norm_backward_kernel(RmsNormBackwardParams p) {
  const int lane = threadIdx.x % 32;
  const float* w = static_cast<const float*>(p.weight_ptr);
  for (int64_t row = int64_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32; row < p.rows;
       row += int64_t{gridDim.x} * kWarpsPerBlock) {
    const float* x = static_cast<const float*>(p.x.ptr) + row * p.x.row_stride;
    const T* dy = static_cast<const T*>(p.dy.ptr) + row * p.dy.row_stride;
    double dot = 0.0;
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.D; c += lhf::kRowVec * lhf::kRowLanes) {
      float xv[4], gv[4], wv[4];
      load4(x + c, xv);
      load4(dy + c, gv);
      load4(w + c, wv);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const double dn = static_cast<double>(gv[e]) * static_cast<double>(wv[e]);
        dot += dn * static_cast<double>(xv[e]);
      }
    }
    const double rstd = p.rstd_ptr[row];
    const double coef = lhf::norm_grad_coef(rstd, warp_sum(dot), p.D);
    const float* ds = p.dsum.ptr == nullptr ? nullptr : static_cast<const float*>(p.dsum.ptr) + row * p.dsum.row_stride;
    float* dx = static_cast<float*>(p.dx.ptr) + row * p.dx.row_stride;
    T* dr = p.d_residual.ptr == nullptr ? nullptr : static_cast<T*>(p.d_residual.ptr) + row * p.d_residual.row_stride;
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.D; c += lhf::kRowVec * lhf::kRowLanes) {
      float xv[4], gv[4], wv[4], sv[4] = {0, 0, 0, 0}, out[4];
      load4(x + c, xv);
      load4(dy + c, gv);
      load4(w + c, wv);
      if (ds != nullptr) load4(ds + c, sv);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const double dn = static_cast<double>(gv[e]) * static_cast<double>(wv[e]);
        double g = lhf::norm_grad(xv[e], dn, rstd, coef);
        if (ds != nullptr) g += static_cast<double>(sv[e]);
        out[e] = static_cast<float>(g);
      }
      store4(dx + c, out);
      if (dr != nullptr) store4(dr + c, out);
    }
  }
}

// Block (chunk of rows, 128 columns): one thread a column.
template <typename T>
__global__ void __launch_bounds__(128) rms_norm_weight_partial_kernel(RmsNormWeightGradParams p) {
  for (int64_t j = int64_t{blockIdx.y} * 128 + threadIdx.x; j < p.D; j += int64_t{gridDim.y} * 128) {
    for (int64_t chunk = blockIdx.x; chunk * kNormWeightChunk < p.rows; chunk += gridDim.x) {
      const int64_t row_end = min(p.rows, (chunk + 1) * kNormWeightChunk);
      double acc = 0.0;
      for (int64_t row = chunk * kNormWeightChunk; row < row_end; ++row) {
        const float x = static_cast<const float*>(p.x.ptr)[row * p.x.row_stride + j];
        const float dy = load1(static_cast<const T*>(p.dy.ptr) + row * p.dy.row_stride + j);
        acc += static_cast<double>(dy) * static_cast<double>(lhf::norm_xhat<float>(x, p.rstd_ptr[row]));
      }
      p.partial_ptr[chunk * p.D + j] = acc;
    }
  }
}

__global__ void __launch_bounds__(kFusedThreads)
    rms_norm_weight_finish_kernel(RmsNormWeightGradParams p, int64_t chunks) {
  const int64_t j = int64_t{blockIdx.x} * kFusedThreads + threadIdx.x;
  if (j >= p.D) return;
  double acc = 0.0;
  for (int64_t c = 0; c < chunks; ++c) acc += p.partial_ptr[c * p.D + j];
  static_cast<float*>(p.dw_ptr)[j] = static_cast<float>(acc);
}

}  // namespace
}  // namespace cuda

void run_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  LH_CUDA_DISPATCH(p.y.dtype, T, {
    cuda::rms_norm_kernel<T><<<cuda::warp_blocks(p.rows), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

void run_rms_norm_backward(const RmsNormBackwardParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  LH_CUDA_DISPATCH(p.dy.dtype, T, {
    cuda::rms_norm_backward_kernel<T><<<cuda::warp_blocks(p.rows), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

void run_rms_norm_weight_grad(const RmsNormWeightGradParams& p, cudaStream_t stream) {
  const int64_t chunks = (p.rows + kNormWeightChunk - 1) / kNormWeightChunk;
  if (chunks > 0) {
    const dim3 grid(cuda::grid_blocks(chunks, 1), cuda::grid_y((p.D + 127) / 128));
    LH_CUDA_DISPATCH(p.dy.dtype, T, {
      cuda::rms_norm_weight_partial_kernel<T><<<grid, 128, 0, stream>>>(p);
      LH_CHECK_LAUNCH();
    });
  }
  cuda::rms_norm_weight_finish_kernel<<<cuda::grid_blocks(p.D, cuda::kFusedThreads), cuda::kFusedThreads, 0, stream>>>(
      p, chunks);
  LH_CHECK_LAUNCH();
}

}  // namespace lighthouse
