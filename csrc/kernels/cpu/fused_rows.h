/*
 * Row access for the fused CPU twins: any supported dtype to exact doubles
 * and back. A store rounds a double to fp32 first, then to the tensor's
 * 16-bit type (the CUDA kernels round the same two steps), so values that
 * are already fp32 store exactly.
 */
#pragma once

#include <cstdint>

#include "../fused_math.h"
#include "../fused_params.h"
#include "numeric.h"

namespace lighthouse::fused_math {

// out[0..n) = elements [offset, offset + n) of a `dtype` array at `base`.
inline void load_span(DType dtype, const void* base, int64_t offset, int64_t n, double* out) {
  switch (dtype) {
    case DType::kFloat32: {
      const float* p = static_cast<const float*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
      break;
    }
    case DType::kFloat64: {
      const double* p = static_cast<const double*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
      break;
    }
    case DType::kBFloat16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(p[i]);
      break;
    }
    case DType::kFloat16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_float(p[i]);
      break;
    }
  }
}

inline void store_span(DType dtype, void* base, int64_t offset, int64_t n, const double* in) {
  switch (dtype) {
    case DType::kFloat32: {
      float* p = static_cast<float*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(in[i]);
      break;
    }
    case DType::kFloat64: {
      double* p = static_cast<double*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) p[i] = in[i];
      break;
    }
    case DType::kBFloat16: {
      uint16_t* p = static_cast<uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) p[i] = float_to_bf16(static_cast<float>(in[i]));
      break;
    }
    case DType::kFloat16: {
      uint16_t* p = static_cast<uint16_t*>(base) + offset;
      for (int64_t i = 0; i < n; ++i) p[i] = float_to_fp16(static_cast<float>(in[i]));
      break;
    }
  }
}

inline void load_row(const RowTensor& t, int64_t row, int64_t n, double* out) {
  load_span(t.dtype, t.ptr, row * t.row_stride, n, out);
}
inline void store_row(const RowTensor& t, int64_t row, int64_t n, const double* in) {
  store_span(t.dtype, t.ptr, row * t.row_stride, n, in);
}

// Sum of a row's terms in the order of fused_math.h: `term(i)` for i < n.
template <typename Term>
double row_sum(int64_t n, const Term& term) {
  double lanes[kRowLanes] = {};
  for (int64_t i = 0; i < n; ++i) lanes[row_lane(i)] += term(i);
  for (int o = kRowLanes / 2; o >= 1; o /= 2) {
    for (int j = 0; j < o; ++j) lanes[j] = lanes[j] + lanes[j + o];
  }
  return lanes[0];
}

// x rounded to Acc, back in a double.
template <typename Acc>
inline double round_acc(double x) {
  return static_cast<double>(static_cast<Acc>(x));
}

}  // namespace lighthouse::fused_math
