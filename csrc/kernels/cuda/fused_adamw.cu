/*
 * Fused AdamW on CUDA (fused_params.h AdamWParams): one launch updates a
 * batch of up to kAdamWBatch fp32 tensors, each thread 4 elements at a time
 * (a scalar tail when n is not a multiple of 4 or a pointer is not 16-byte
 * aligned). The element arithmetic is fused_math.h adamw_element, compiled
 * without FMA contraction (-fmad=false), so it equals the CPU twin bit for bit.
 */
#include "fused_common.cuh"
#include "fused_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kAdamWThreads = 256;
constexpr int64_t kAdamWPerBlock = int64_t{kAdamWThreads} * 4 * 4;  // 4 vectors of 4 per thread

struct AdamWLaunch {
  AdamWParams p;
  int64_t first_block[kAdamWBatch + 1];  // blocks before tensor i
};

__device__ __forceinline__ bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

__global__ void __launch_bounds__(kAdamWThreads) adamw_kernel(const __grid_constant__ AdamWLaunch a) {
  const int64_t block = blockIdx.x;
  int i = 0;
  while (i + 1 < a.p.count && block >= a.first_block[i + 1]) ++i;
  const AdamWTensor& t = a.p.tensors[i];
  lhf::AdamWScalars s = a.p.scalars;
  if (!a.p.decay[i]) s.decay = 1.0f;
  const int64_t begin = (block - a.first_block[i]) * kAdamWPerBlock;
  const int64_t end = min(begin + kAdamWPerBlock, t.n);
  const bool vec = aligned16(t.param) && aligned16(t.grad) && aligned16(t.exp_avg) && aligned16(t.exp_avg_sq);
  const int64_t vec_end = vec ? begin + (end - begin) / 4 * 4 : begin;
  for (int64_t e = begin + int64_t{threadIdx.x} * 4; e < vec_end; e += int64_t{kAdamWThreads} * 4) {
    float p[4], g[4], m[4], v[4];
    load4(t.param + e, p);
    load4(t.grad + e, g);
    load4(t.exp_avg + e, m);
    load4(t.exp_avg_sq + e, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) lhf::adamw_element(&p[k], g[k], &m[k], &v[k], s);
    store4(t.param + e, p);
    store4(t.exp_avg + e, m);
    store4(t.exp_avg_sq + e, v);
  }
  for (int64_t e = vec_end + threadIdx.x; e < end; e += kAdamWThreads) {
    lhf::adamw_element(t.param + e, t.grad[e], t.exp_avg + e, t.exp_avg_sq + e, s);
  }
}

}  // namespace
}  // namespace cuda

void run_adamw(const AdamWParams& p, cudaStream_t stream) {
  if (p.count < 1 || p.count > kAdamWBatch) throw std::runtime_error("lighthouse CUDA adamw: 1 to 48 tensors a launch");
  cuda::AdamWLaunch a;
  a.p = p;
  a.first_block[0] = 0;
  for (int i = 0; i < p.count; ++i) {
    a.first_block[i + 1] = a.first_block[i] + (p.tensors[i].n + cuda::kAdamWPerBlock - 1) / cuda::kAdamWPerBlock;
  }
  for (int i = p.count + 1; i <= kAdamWBatch; ++i) a.first_block[i] = a.first_block[p.count];
  const int64_t blocks = a.first_block[p.count];
  if (blocks == 0) return;
  if (blocks >= (int64_t{1} << 31)) throw std::runtime_error("lighthouse CUDA adamw: too many elements in one batch");
  cuda::adamw_kernel<<<static_cast<unsigned>(blocks), cuda::kAdamWThreads, 0, stream>>>(a);
  LH_CHECK_LAUNCH();
}

}  // namespace lighthouse
