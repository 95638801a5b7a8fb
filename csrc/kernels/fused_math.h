/*
 * The arithmetic of the fused kernels, written once for the CPU twins and
 * the CUDA kernels (host/device functions). A CPU twin and its CUDA kernel
 * agree bit for bit because both
 *   - run these functions (exp, log, sin/cos built from +, -, *, / and
 *     floor, which IEEE 754 rounds identically everywhere; libm and CUDA's
 *     expf/logf/sincos differ in their last bits);
 *   - compile without contraction into fused multiply-adds (the fused .cu
 *     files with -fmad=false, the fused CPU twins with -ffp-contract=off:
 *     csrc/kernels/CMakeLists.txt);
 *   - reduce a row in one fixed order (row_lane below, then a halving tree).
 *
 * Transcendentals run in double: exp, log and sin/cos here are accurate to
 * a few double ulps over the ranges the kernels use, so after rounding to
 * fp32 they are as good as correctly rounded in nearly every case.
 */
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "params.h"

namespace lighthouse::fused_math {

// Reduction order of a row of `width` elements: element i belongs to lane
// (i / kRowVec) % kRowLanes; each lane sums its elements in increasing i;
// then lanes combine as a halving tree: for o = 16, 8, 4, 2, 1 lane j < o
// takes lane[j] + lane[j + o] (a warp's xor butterfly gives the same values).
constexpr int kRowLanes = 32;
constexpr int kRowVec = 4;
LH_HD int64_t row_lane(int64_t i) { return (i / kRowVec) % kRowLanes; }

// The ordered sum (OrderedSumParams): element i to partial i % kSumLanes,
// partials in increasing i, then a halving tree from kSumLanes / 2 to 1.
constexpr int kSumLanes = 1024;

LH_HD int64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
  return __double_as_longlong(x);
#else
  int64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}

LH_HD double bits_double(int64_t b) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(b);
#else
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

LH_HD double infinity_d() { return bits_double(int64_t{0x7ff0000000000000}); }
LH_HD double nan_d() { return bits_double(int64_t{0x7ff8000000000000}); }

// exp(x). Results below 2^-1022 flush to 0 (the kernels add them to sums of
// at least 1 or round them to fp32, where they vanish anyway).
LH_HD double exp_d(double x) {
  if (x != x) return x;
  constexpr double kInvLn2 = 1.4426950408889634;
  constexpr double kLn2Hi = 0x1.62e42fee00000p-1;  // 32 significant bits: k * kLn2Hi is exact
  constexpr double kLn2Lo = 1.9082149292705877e-10;
  if (x > 710.0) return infinity_d();
  if (x < -746.0) return 0.0;
  const double k = floor(x * kInvLn2 + 0.5);
  if (k > 1023.0) return infinity_d();
  if (k < -1022.0) return 0.0;
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;  // |r| <= ln(2)/2 + tiny
  // Taylor series to r^13 / 13! (next term < 1e-17 relative).
  double p = 1.6059043836821613e-10;
  p = p * r + 2.08767569878681e-09;
  p = p * r + 2.505210838544172e-08;
  p = p * r + 2.755731922398589e-07;
  p = p * r + 2.7557319223985893e-06;
  p = p * r + 2.48015873015873e-05;
  p = p * r + 0.0001984126984126984;
  p = p * r + 0.001388888888888889;
  p = p * r + 0.008333333333333333;
  p = p * r + 0.041666666666666664;
  p = p * r + 0.16666666666666666;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * bits_double((static_cast<int64_t>(k) + 1023) << 52);
}

// log(x) for x >= 0 (NaN below 0, -inf at 0).
LH_HD double log_d(double x) {
  if (x != x) return x;
  if (x < 0) return nan_d();
  if (x == 0) return -infinity_d();
  if (x == infinity_d()) return x;
  constexpr double kLn2Hi = 0x1.62e42fee00000p-1;
  constexpr double kLn2Lo = 1.9082149292705877e-10;
  constexpr double kSqrt2 = 1.4142135623730951;
  int64_t e = 0;
  if (x < 0x1p-1022) {  // subnormal: scale into the normal range first (exact)
    x *= 0x1p54;
    e = -54;
  }
  const int64_t b = double_bits(x);
  e += ((b >> 52) & 0x7ff) - 1023;
  double f = bits_double((b & int64_t{0x000fffffffffffff}) | int64_t{0x3ff0000000000000});  // [1, 2)
  if (f > kSqrt2) {
    f *= 0.5;
    ++e;
  }
  // log f = 2 atanh(u), u = (f - 1) / (f + 1), |u| <= 0.1716: series to u^23.
  const double u = (f - 1.0) / (f + 1.0);
  const double u2 = u * u;
  double t = 0.043478260869565216;
  t = t * u2 + 0.047619047619047616;
  t = t * u2 + 0.05263157894736842;
  t = t * u2 + 0.058823529411764705;
  t = t * u2 + 0.06666666666666667;
  t = t * u2 + 0.07692307692307693;
  t = t * u2 + 0.09090909090909091;
  t = t * u2 + 0.1111111111111111;
  t = t * u2 + 0.14285714285714285;
  t = t * u2 + 0.2;
  t = t * u2 + 0.3333333333333333;
  t = t * u2 + 1.0;
  const double ed = static_cast<double>(e);
  return ed * kLn2Hi + (ed * kLn2Lo + 2.0 * u * t);
}

// sin and cos of a, |a| <= 2^28 (NaN beyond): reduction by pi/2 split into
// four parts, the first three of 24 bits so that k * part is exact.
LH_HD void sincos_d(double a, double* s, double* c) {
  if (!(a <= 268435456.0 && a >= -268435456.0)) {
    *s = *c = nan_d();
    return;
  }
  constexpr double kTwoOverPi = 0.6366197723675814;
  constexpr double kP1 = 0x1.921fb6p+0;
  constexpr double kP2 = -0x1.777a5cp-25;
  constexpr double kP3 = -0x1.ee59dap-50;
  constexpr double kP4 = 0x1.98a2e03707345p-77;
  const double k = floor(a * kTwoOverPi + 0.5);
  double r = a - k * kP1;
  r = r - k * kP2;
  r = r - k * kP3;
  r = r - k * kP4;  // |r| <= pi/4 + tiny
  const double r2 = r * r;
  double ps = 2.8114572543455206e-15;
  ps = ps * r2 - 7.647163731819816e-13;
  ps = ps * r2 + 1.6059043836821613e-10;
  ps = ps * r2 - 2.505210838544172e-08;
  ps = ps * r2 + 2.7557319223985893e-06;
  ps = ps * r2 - 0.0001984126984126984;
  ps = ps * r2 + 0.008333333333333333;
  ps = ps * r2 - 0.16666666666666666;
  ps = ps * r2 + 1.0;
  const double sin_r = r * ps;
  double pc = -1.5619206968586225e-16;
  pc = pc * r2 + 4.779477332387385e-14;
  pc = pc * r2 - 1.1470745597729725e-11;
  pc = pc * r2 + 2.08767569878681e-09;
  pc = pc * r2 - 2.755731922398589e-07;
  pc = pc * r2 + 2.48015873015873e-05;
  pc = pc * r2 - 0.001388888888888889;
  pc = pc * r2 + 0.041666666666666664;
  pc = pc * r2 - 0.5;
  pc = pc * r2 + 1.0;
  const double cos_r = pc;
  switch (static_cast<int64_t>(k) & 3) {
    case 0:
      *s = sin_r;
      *c = cos_r;
      break;
    case 1:
      *s = cos_r;
      *c = -sin_r;
      break;
    case 2:
      *s = -sin_r;
      *c = -cos_r;
      break;
    default:
      *s = -cos_r;
      *c = sin_r;
      break;
  }
}

// sigmoid(g) = 1 / (1 + exp(-g)).
LH_HD double sigmoid_d(double g) { return 1.0 / (1.0 + exp_d(-g)); }

LH_HD float float_of_bits(int32_t b) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// exp(x) in fp32, to about 2 fp32 ulps; results below 2^-126 flush to 0.
// For element-wise work whose result is rounded to a 16-bit type anyway
// (fp32 throughput instead of fp64's).
LH_HD float exp_f(float x) {
  if (x != x) return x;
  constexpr float kInvLn2 = 1.4426950216293335f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 15 significant bits: k * kLn2Hi is exact
  constexpr float kLn2Lo = 1.428606765330187e-06f;
  if (x > 89.0f) return float_of_bits(0x7f800000);
  if (x < -104.0f) return 0.0f;
  const float k = floorf(x * kInvLn2 + 0.5f);
  if (k > 127.0f) return float_of_bits(0x7f800000);
  if (k < -126.0f) return 0.0f;
  const float r = (x - k * kLn2Hi) - k * kLn2Lo;
  // Taylor series to r^7 / 7!.
  float p = 0.00019841270113829523f;
  p = p * r + 0.0013888889225199819f;
  p = p * r + 0.008333333767950535f;
  p = p * r + 0.0416666679084301f;
  p = p * r + 0.1666666716337204f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * float_of_bits((static_cast<int32_t>(k) + 127) << 23);
}

LH_HD float sigmoid_f(float g) { return 1.0f / (1.0f + exp_f(-g)); }

// RoPE angle of position `pos` and frequency `inv_freq`: fp32 product, as
// Hugging Face computes it (positions as fp32 times inv_freq in fp32).
LH_HD float rope_angle(int64_t pos, float inv_freq) { return static_cast<float>(pos) * inv_freq; }

// --- Per-element formulas (Acc: float for fp32/bf16/fp16 tensors, double
// for fp64; tensor values arrive exactly, as Acc or double) ---------------

// RMSNorm: rstd from the sum of squares of a row of D elements.
LH_HD double norm_rstd(double sum_sq, int64_t D, double eps) {
  return 1.0 / sqrt(sum_sq / static_cast<double>(D) + eps);
}
template <typename Acc>
LH_HD Acc norm_xhat(Acc x, double rstd) {
  return x * static_cast<Acc>(rstd);
}
// The output before rounding to y's dtype: w * xhat (Hugging Face's order).
template <typename Acc>
LH_HD Acc norm_out(Acc x, double rstd, Acc w) {
  return w * norm_xhat(x, rstd);
}
// Backward: dx = rstd dn - x c with c = rstd^3 (sum dn x) / D, dn = dy w.
LH_HD double norm_grad_coef(double rstd, double dot, int64_t D) {
  return rstd * rstd * rstd * dot / static_cast<double>(D);
}
LH_HD double norm_grad(double x, double dn, double rstd, double coef) { return rstd * dn - x * coef; }

// RoPE on one (i, i + d/2) pair; c, s already rounded to Acc.
template <typename Acc>
LH_HD void rope_pair(Acc x0, Acc x1, Acc c, Acc s, bool inverse, Acc* y0, Acc* y1) {
  if (!inverse) {
    *y0 = x0 * c - x1 * s;
    *y1 = x1 * c + x0 * s;
  } else {
    *y0 = x0 * c + x1 * s;
    *y1 = x1 * c - x0 * s;
  }
}

// SwiGLU, in double (fp32 and fp64 tensors) or in fp32 (16-bit tensors,
// whose final rounding dominates the error): Real is double or float.
template <typename Real>
LH_HD Real sigmoid_of(Real g);
template <>
LH_HD double sigmoid_of<double>(double g) {
  return sigmoid_d(g);
}
template <>
LH_HD float sigmoid_of<float>(float g) {
  return sigmoid_f(g);
}
template <typename Real>
LH_HD Real swiglu_out(Real g, Real u) {
  return g * sigmoid_of<Real>(g) * u;
}
template <typename Real>
LH_HD void swiglu_grad(Real g, Real u, Real dy, Real* dg, Real* du) {
  const Real s = sigmoid_of<Real>(g);
  *du = dy * (g * s);
  *dg = dy * u * (s * (Real(1) + g * (Real(1) - s)));
}
// Whether SwiGLU on tensors of `dtype` computes in fp32 (else double).
LH_HD bool swiglu_in_float(DType dtype) { return dtype == DType::kBFloat16 || dtype == DType::kFloat16; }

// Cross-entropy: the row maximum keeps a NaN once seen.
LH_HD double ce_max(double m, double z) { return (z > m || z != z) ? z : m; }
LH_HD double ce_grad(double z, double lse, bool is_target, double g) {
  return g * (exp_d(z - lse) - (is_target ? 1.0 : 0.0));
}

// AdamW, one fp32 element (AdamWParams): every operation rounds to fp32 in
// the order of the unfused update (train/optim.cpp, which is
// torch::optim::AdamW's), with the scalars computed in double on the host
// and rounded to fp32 once, as ATen does with a double scalar on an fp32
// tensor.
struct AdamWScalars {
  float decay = 1;       // 1 - lr * weight_decay (1: no decay)
  float beta1 = 0;       // beta1
  float one_m_beta1 = 0; // 1 - beta1
  float beta2 = 0;       // beta2
  float one_m_beta2 = 0; // 1 - beta2
  float sqrt_bias2 = 1;  // sqrt(1 - beta2^step)
  float eps = 0;
  float neg_step = 0;    // -lr / (1 - beta1^step)
};
LH_HD void adamw_element(float* p, float g, float* m, float* v, const AdamWScalars& s) {
  const float pd = *p * s.decay;
  const float m1 = *m * s.beta1 + s.one_m_beta1 * g;
  const float v1 = *v * s.beta2 + (s.one_m_beta2 * g) * g;
#if defined(__CUDA_ARCH__)
  const float root = __fsqrt_rn(v1);
#else
  const float root = std::sqrt(v1);
#endif
  const float denom = root / s.sqrt_bias2 + s.eps;
  *p = pd + s.neg_step * (m1 / denom);
  *m = m1;
  *v = v1;
}

}  // namespace lighthouse::fused_math
