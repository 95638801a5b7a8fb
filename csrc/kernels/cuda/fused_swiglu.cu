/*
 * Fused SwiGLU on CUDA, forward and backward: one thread per 4 consecutive
 * elements of a row, the formulas of kernels/fused_math.h (in fp32 for
 * 16-bit T, in double for fp32), each result rounded to fp32 and then to T.
 */
#include "fused_common.cuh"
#include "fused_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

template <typename T>
__device__ __forceinline__ const T* at_row(const RowTensor& t, int64_t r, int64_t c) {
  return static_cast<const T*>(t.ptr) + r * t.row_stride + c;
}
template <typename T>
__device__ __forceinline__ T* at_row_out(const RowTensor& t, int64_t r, int64_t c) {
  return static_cast<T*>(t.ptr) + r * t.row_stride + c;
}

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) swiglu_kernel(SwigluParams p) {
  const int64_t per_row = p.F / 4;
  for (int64_t item = int64_t{blockIdx.x} * kFusedThreads + threadIdx.x; item < p.rows * per_row;
       item += int64_t{gridDim.x} * kFusedThreads) {
    const int64_t r = item / per_row, c = (item % per_row) * 4;
    float g[4], u[4], y[4];
    load4(at_row<T>(p.gate, r, c), g);
    load4(at_row<T>(p.up, r, c), u);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      y[e] =
          sizeof(T) == 2 ? lhf::swiglu_out<float>(g[e], u[e]) : static_cast<float>(lhf::swiglu_out<double>(g[e], u[e]));
    }
    store4(at_row_out<T>(p.out, r, c), y);
  }
}

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) swiglu_backward_kernel(SwigluBackwardParams p) {
  const int64_t per_row = p.F / 4;
  for (int64_t item = int64_t{blockIdx.x} * kFusedThreads + threadIdx.x; item < p.rows * per_row;
       item += int64_t{gridDim.x} * kFusedThreads) {
    const int64_t r = item / per_row, c = (item % per_row) * 4;
    float g[4], u[4], dy[4], dg[4], du[4];
    load4(at_row<T>(p.gate, r, c), g);
    load4(at_row<T>(p.up, r, c), u);
    load4(at_row<T>(p.dout, r, c), dy);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (sizeof(T) == 2) {
        lhf::swiglu_grad<float>(g[e], u[e], dy[e], &dg[e], &du[e]);
      } else {
        double a, b;
        lhf::swiglu_grad<double>(g[e], u[e], dy[e], &a, &b);
        dg[e] = static_cast<float>(a);
        du[e] = static_cast<float>(b);
      }
    }
    store4(at_row_out<T>(p.d_gate, r, c), dg);
    store4(at_row_out<T>(p.d_up, r, c), du);
  }
}

}  // namespace
}  // namespace cuda

void run_swiglu(const SwigluParams& p, cudaStream_t stream) {
  const int64_t items = p.rows * (p.F / 4);
  if (items == 0) return;
  LH_CUDA_DISPATCH(p.dtype, T, {
    cuda::swiglu_kernel<T><<<cuda::grid_blocks(items, cuda::kFusedThreads), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

void run_swiglu_backward(const SwigluBackwardParams& p, cudaStream_t stream) {
  const int64_t items = p.rows * (p.F / 4);
  if (items == 0) return;
  LH_CUDA_DISPATCH(p.dtype, T, {
    cuda::swiglu_backward_kernel<T>
        <<<cuda::grid_blocks(items, cuda::kFusedThreads), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

}  // namespace lighthouse
