/*
 * Cross-entropy over vocabulary rows on CUDA (forward: per-row loss and
 * log-sum-exp; backward: the logits' gradient) and the ordered sum of the
 * per-row losses. A warp owns a row; the exp sum runs in double in the
 * order of kernels/fused_math.h; the ordered sum is one block of kSumLanes
 * threads, each summing a strided slice, then a halving tree in shared
 * memory.
 */
#include "fused_common.cuh"
#include "fused_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) cross_entropy_kernel(CrossEntropyParams p) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = int64_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32; row < p.rows;
       row += int64_t{gridDim.x} * kWarpsPerBlock) {
    const T* z = static_cast<const T*>(p.logits.ptr) + row * p.logits.row_stride;
    double m = -lhf::infinity_d();
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.V; c += lhf::kRowVec * lhf::kRowLanes) {
      float v[4];
      load4(z + c, v);
#pragma unroll
      for (int e = 0; e < 4; ++e) m = lhf::ce_max(m, v[e]);
    }
    m = warp_ce_max(m);
    double sum = 0.0;
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.V; c += lhf::kRowVec * lhf::kRowLanes) {
      float v[4];
      load4(z + c, v);
#pragma unroll
      for (int e = 0; e < 4; ++e) sum += lhf::exp_d(static_cast<double>(v[e]) - m);
    }
    sum = warp_sum(sum);
    if (lane == 0) {
      const double lse = m + lhf::log_d(sum);
      const int64_t t = p.targets_ptr[row];
      p.lse_ptr[row] = lse;
      if (t == p.ignore_index) {
        p.loss_ptr[row] = 0.0;
      } else if (t < 0 || t >= p.V) {
        p.loss_ptr[row] = lhf::nan_d();
      } else {
        p.loss_ptr[row] = lse - static_cast<double>(load1(z + t));
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) cross_entropy_backward_kernel(CrossEntropyBackwardParams p) {
  const int lane = threadIdx.x % 32;
  const double g = *p.grad_ptr;
  for (int64_t row = int64_t{blockIdx.x} * kWarpsPerBlock + threadIdx.x / 32; row < p.rows;
       row += int64_t{gridDim.x} * kWarpsPerBlock) {
    const T* z = static_cast<const T*>(p.logits.ptr) + row * p.logits.row_stride;
    T* dz = static_cast<T*>(p.dlogits.ptr) + row * p.dlogits.row_stride;
    const int64_t t = p.targets_ptr[row];
    const bool ignored = t == p.ignore_index;
    const bool bad = !ignored && (t < 0 || t >= p.V);
    const double lse = p.lse_ptr[row];
    for (int64_t c = int64_t{lane} * lhf::kRowVec; c < p.V; c += lhf::kRowVec * lhf::kRowLanes) {
      float v[4], out[4];
      load4(z + c, v);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        out[e] = ignored ? 0.0f
                 : bad   ? static_cast<float>(lhf::nan_d())
                         : static_cast<float>(lhf::ce_grad(v[e], lse, c + e == t, g));
      }
      store4(dz + c, out);
    }
  }
}

__global__ void __launch_bounds__(lhf::kSumLanes) ordered_sum_kernel(OrderedSumParams p) {
  __shared__ double lanes[lhf::kSumLanes];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < p.n; i += lhf::kSumLanes) acc += p.x_ptr[i];
  lanes[threadIdx.x] = acc;
  __syncthreads();
  for (int o = lhf::kSumLanes / 2; o >= 1; o /= 2) {
    if (static_cast<int>(threadIdx.x) < o) lanes[threadIdx.x] = lanes[threadIdx.x] + lanes[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) *p.out_ptr = lanes[0];
}

}  // namespace
}  // namespace cuda

void run_cross_entropy(const CrossEntropyParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  LH_CUDA_DISPATCH(p.logits.dtype, T, {
    cuda::cross_entropy_kernel<T><<<cuda::warp_blocks(p.rows), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

void run_cross_entropy_backward(const CrossEntropyBackwardParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  LH_CUDA_DISPATCH(p.logits.dtype, T, {
    cuda::cross_entropy_backward_kernel<T><<<cuda::warp_blocks(p.rows), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

void run_ordered_sum(const OrderedSumParams& p, cudaStream_t stream) {
  cuda::ordered_sum_kernel<<<1, fused_math::kSumLanes, 0, stream>>>(p);
  LH_CHECK_LAUNCH();
}

}  // namespace lighthouse
