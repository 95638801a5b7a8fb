/*
 * Device helpers shared by the CUDA kernels: error checks, 16-byte vector
 * loads/stores with conversion to fp32, and the dtype switch.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../params.h"

#define LH_CUDA_CHECK(expr)                                                                                  \
  do {                                                                                                      \
    const cudaError_t lh_err_ = (expr);                                                                     \
    if (lh_err_ != cudaSuccess) {                                                                           \
      throw std::runtime_error(std::string("lighthouse CUDA error: ") + cudaGetErrorString(lh_err_) + " (" + \
                               #expr + ") at " + __FILE__ + ":" + std::to_string(__LINE__));                \
    }                                                                                                       \
  } while (0)

// After every launch: catches bad configurations at once (and, with
// CUDA_LAUNCH_BLOCKING=1, faults inside the kernel).
#define LH_CHECK_LAUNCH() LH_CUDA_CHECK(cudaGetLastError())

namespace lighthouse::cuda {

// Elements of T in one 16-byte vector.
template <typename T>
struct Vec {
  static constexpr int kElems = 16 / sizeof(T);
};

__device__ __forceinline__ void unpack(const uint4& raw, float (&out)[4], const float*) {
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}

// The two-element vector type of a 16-bit float type and its conversions.
template <typename T>
struct HalfPair {};  // none for other types: the 16-bit overloads below drop out
template <>
struct HalfPair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  static __device__ __forceinline__ float2 to_float2(type x) { return __bfloat1622float2(x); }
  static __device__ __forceinline__ type from_floats(float a, float b) { return __floats2bfloat162_rn(a, b); }
};
template <>
struct HalfPair<__half> {
  using type = __half2;
  static __device__ __forceinline__ float2 to_float2(type x) { return __half22float2(x); }
  static __device__ __forceinline__ type from_floats(float a, float b) { return __floats2half2_rn(a, b); }
};

template <typename T, typename Pair = HalfPair<T>, typename = typename Pair::type>
__device__ __forceinline__ void unpack(const uint4& raw, float (&out)[8], const T*) {
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    typename Pair::type h;
    memcpy(&h, &w[i], 4);
    const float2 f = Pair::to_float2(h);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ uint4 pack(const float (&in)[4], const float*) {
  return make_uint4(__float_as_uint(in[0]), __float_as_uint(in[1]), __float_as_uint(in[2]), __float_as_uint(in[3]));
}

template <typename T, typename Pair = HalfPair<T>, typename = typename Pair::type>
__device__ __forceinline__ uint4 pack(const float (&in)[8], const T*) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const typename Pair::type h = Pair::from_floats(in[2 * i], in[2 * i + 1]);
    memcpy(&w[i], &h, 4);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// Loads the 16-byte vector at `p` (read-only path) as fp32.
template <typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[Vec<T>::kElems]) {
  unpack(__ldg(reinterpret_cast<const uint4*>(p)), out, static_cast<const T*>(nullptr));
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[Vec<T>::kElems]) {
  *reinterpret_cast<uint4*>(p) = pack(in, static_cast<const T*>(nullptr));
}

// A grid's y dimension for `items` (kernels loop over the rest).
inline unsigned grid_y(int64_t items) { return static_cast<unsigned>(items < 65535 ? items : 65535); }

inline unsigned grid_blocks(int64_t items, int64_t per_block) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  // Kernels loop over blocks, so a huge problem never needs a huge grid.
  return static_cast<unsigned>(blocks < (int64_t{1} << 30) ? blocks : (int64_t{1} << 30));
}

}  // namespace lighthouse::cuda

// Runs the statement with `T` bound to the CUDA storage type of `dtype`.
#define LH_CUDA_DISPATCH(dtype, T, ...)                                                 \
  switch (dtype) {                                                                      \
    case ::lighthouse::DType::kFloat32: {                                               \
      using T = float;                                                                  \
      __VA_ARGS__;                                                                      \
      break;                                                                            \
    }                                                                                   \
    case ::lighthouse::DType::kBFloat16: {                                              \
      using T = __nv_bfloat16;                                                          \
      __VA_ARGS__;                                                                      \
      break;                                                                            \
    }                                                                                   \
    case ::lighthouse::DType::kFloat16: {                                               \
      using T = __half;                                                                 \
      __VA_ARGS__;                                                                      \
      break;                                                                            \
    }                                                                                   \
    default:                                                                            \
      throw std::runtime_error("lighthouse CUDA kernels: float64 is not supported");    \
  }
