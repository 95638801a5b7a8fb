/*
 * Fused RoPE on CUDA, q and k in one launch, in place or out of place. A
 * thread owns 4 rotation pairs (i, i + d/2) of one position: it computes
 * their angles and double-precision sin/cos once (kernels/fused_math.h) and
 * rotates those pairs in every head of q and k. Each pair is read before it
 * is written by the same thread, so in == out is safe.
 */
#include "fused_common.cuh"
#include "fused_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

template <typename T>
__device__ __forceinline__ void rotate(const RopeTensor& t, int64_t b, int64_t n, int64_t i0, int64_t half,
                                       const float (&c)[4], const float (&s)[4], bool inverse) {
  for (int64_t h = 0; h < t.heads; ++h) {
    const int64_t offset = b * t.batch_stride + n * t.seq_stride + h * t.head_stride + i0;
    float x0[4], x1[4], y0[4], y1[4];
    load4(static_cast<const T*>(t.in_ptr) + offset, x0);
    load4(static_cast<const T*>(t.in_ptr) + offset + half, x1);
#pragma unroll
    for (int e = 0; e < 4; ++e) lhf::rope_pair<float>(x0[e], x1[e], c[e], s[e], inverse, &y0[e], &y1[e]);
    store4(static_cast<T*>(t.out_ptr) + offset, y0);
    store4(static_cast<T*>(t.out_ptr) + offset + half, y1);
  }
}

template <typename T>
__global__ void __launch_bounds__(kFusedThreads) rope_kernel(RopeParams p) {
  const int64_t half = p.d / 2;
  const int64_t groups = half / 4;
  const int64_t items = p.B * p.N * groups;
  for (int64_t item = int64_t{blockIdx.x} * kFusedThreads + threadIdx.x; item < items;
       item += int64_t{gridDim.x} * kFusedThreads) {
    const int64_t g = item % groups;
    const int64_t bn = item / groups;
    const int64_t n = bn % p.N, b = bn / p.N;
    const int64_t pos = p.positions_ptr[b * p.positions_batch_stride + n];
    const int64_t i0 = g * 4;
    float c[4], s[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      double sd, cd;
      lhf::sincos_d(lhf::rope_angle(pos, p.inv_freq_ptr[i0 + e]), &sd, &cd);
      s[e] = static_cast<float>(sd);
      c[e] = static_cast<float>(cd);
    }
    rotate<T>(p.q, b, n, i0, half, c, s, p.inverse);
    rotate<T>(p.k, b, n, i0, half, c, s, p.inverse);
  }
}

}  // namespace
}  // namespace cuda

void run_rope(const RopeParams& p, cudaStream_t stream) {
  const int64_t items = p.B * p.N * (p.d / 8);
  if (items == 0) return;
  LH_CUDA_DISPATCH(p.dtype, T, {
    cuda::rope_kernel<T><<<cuda::grid_blocks(items, cuda::kFusedThreads), cuda::kFusedThreads, 0, stream>>>(p);
    LH_CHECK_LAUNCH();
  });
}

}  // namespace lighthouse
