/*
 * Scalar types of the CPU twins and their conversions to the accumulator
 * type: double for fp64 inputs, float otherwise. bf16 and fp16 are stored as
 * raw bits and converted with round-to-nearest-even, matching PyTorch.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../params.h"

namespace lighthouse {

struct BFloat16Bits {
  uint16_t bits;
};
struct Float16Bits {
  uint16_t bits;
};

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bf16_to_float(uint16_t b) { return bits_to_float(uint32_t{b} << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float fp16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float mag = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24
    return sign ? -mag : mag;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (mant << 13));
  return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Round-to-nearest-even float -> fp16. Scaling by 2^112 and 2^-110 lets the
// FPU do the rounding of normal and subnormal results alike.
inline uint16_t float_to_fp16(float f) {
  const float scale_to_inf = bits_to_float(0x77800000u);   // 2^112
  const float scale_to_zero = bits_to_float(0x08800000u);  // 2^-110
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = float_to_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_to_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_to_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
  const uint32_t mantissa_bits = bits & 0x00000fffu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

template <typename T>
struct Scalar;

template <>
struct Scalar<float> {
  using Acc = float;
  static Acc load(const float* p) { return *p; }
  static void store(float* p, Acc x) { *p = x; }
};
template <>
struct Scalar<double> {
  using Acc = double;
  static Acc load(const double* p) { return *p; }
  static void store(double* p, Acc x) { *p = x; }
};
template <>
struct Scalar<BFloat16Bits> {
  using Acc = float;
  static Acc load(const BFloat16Bits* p) { return bf16_to_float(p->bits); }
  static void store(BFloat16Bits* p, Acc x) { p->bits = float_to_bf16(x); }
};
template <>
struct Scalar<Float16Bits> {
  using Acc = float;
  static Acc load(const Float16Bits* p) { return fp16_to_float(p->bits); }
  static void store(Float16Bits* p, Acc x) { p->bits = float_to_fp16(x); }
};

}  // namespace lighthouse

// Runs the statement with `T` bound to the storage type of `dtype`.
#define LH_CPU_DISPATCH(dtype, T, ...)                     \
  switch (dtype) {                                         \
    case ::lighthouse::DType::kFloat32: {                  \
      using T = float;                                     \
      __VA_ARGS__;                                         \
      break;                                               \
    }                                                      \
    case ::lighthouse::DType::kFloat64: {                  \
      using T = double;                                    \
      __VA_ARGS__;                                         \
      break;                                               \
    }                                                      \
    case ::lighthouse::DType::kBFloat16: {                 \
      using T = ::lighthouse::BFloat16Bits;                \
      __VA_ARGS__;                                         \
      break;                                               \
    }                                                      \
    case ::lighthouse::DType::kFloat16: {                  \
      using T = ::lighthouse::Float16Bits;                 \
      __VA_ARGS__;                                         \
      break;                                               \
    }                                                      \
  }
