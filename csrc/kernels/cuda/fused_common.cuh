/*
 * Device helpers of the fused kernels: 4-element loads and stores in fp32
 * (16 bytes for fp32, 8 for bf16/fp16), the warp reductions in the order of
 * kernels/fused_math.h, and the grid sizes.
 */
#pragma once

#include "../fused_math.h"
#include "common.cuh"

namespace lighthouse::cuda {

namespace lhf = ::lighthouse::fused_math;

__device__ __forceinline__ void load4(const float* p, float (&out)[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
}

template <typename T, typename Pair = HalfPair<T>, typename = typename Pair::type>
__device__ __forceinline__ void load4(const T* p, float (&out)[4]) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  typename Pair::type a, b;
  memcpy(&a, &raw.x, 4);
  memcpy(&b, &raw.y, 4);
  const float2 fa = Pair::to_float2(a), fb = Pair::to_float2(b);
  out[0] = fa.x;
  out[1] = fa.y;
  out[2] = fb.x;
  out[3] = fb.y;
}

__device__ __forceinline__ void store4(float* p, const float (&in)[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(in[0], in[1], in[2], in[3]);
}

template <typename T, typename Pair = HalfPair<T>, typename = typename Pair::type>
__device__ __forceinline__ void store4(T* p, const float (&in)[4]) {
  const typename Pair::type a = Pair::from_floats(in[0], in[1]), b = Pair::from_floats(in[2], in[3]);
  uint2 raw;
  memcpy(&raw.x, &a, 4);
  memcpy(&raw.y, &b, 4);
  *reinterpret_cast<uint2*>(p) = raw;
}

// One element of T as fp32.
__device__ __forceinline__ float load1(const float* p) { return *p; }
template <typename T, typename Pair = HalfPair<T>, typename = typename Pair::type>
__device__ __forceinline__ float load1(const T* p) {
  return static_cast<float>(*p);
}

// The halving tree of fused_math.h across a warp: lane j < o adds lane j + o.
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = lhf::kRowLanes / 2; o >= 1; o /= 2) v = v + __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_ce_max(double v) {
#pragma unroll
  for (int o = lhf::kRowLanes / 2; o >= 1; o /= 2) v = lhf::ce_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

constexpr int kFusedThreads = 256;
constexpr int kWarpsPerBlock = kFusedThreads / 32;

// Blocks for `warps` warp-sized items (kernels loop over the rest).
inline unsigned warp_blocks(int64_t warps) { return grid_blocks(warps, kWarpsPerBlock); }

}  // namespace lighthouse::cuda
