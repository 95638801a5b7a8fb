/*
 * CPU twin of the fused RMSNorm (+ residual add), forward and backward.
 * Items: rows (forward, input gradient), chunks of kNormWeightChunk rows
 * (weight-gradient partials), columns (their sum). Formulas and reduction
 * order: kernels/fused_math.h.
 */
#include <algorithm>
#include <vector>

#include "fused_cpu.h"
#include "fused_rows.h"

namespace lighthouse {
namespace {

using fused_math::load_row;
using fused_math::round_acc;
using fused_math::row_sum;
using fused_math::store_row;

constexpr int64_t kRowGrain = 16;

template <typename Acc>
void norm_forward(const RmsNormParams& p, const CpuExec& ex) {
  std::vector<double> w(p.D);
  fused_math::load_span(p.weight_dtype, p.weight_ptr, 0, p.D, w.data());
  ex.run(p.rows, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<double> x(p.D), r(p.D), y(p.D);
    for (int64_t row = begin; row < end; ++row) {
      load_row(p.x, row, p.D, x.data());
      if (p.residual.ptr != nullptr) {
        load_row(p.residual, row, p.D, r.data());
        for (int64_t i = 0; i < p.D; ++i) x[i] = static_cast<Acc>(static_cast<Acc>(x[i]) + static_cast<Acc>(r[i]));
        store_row(p.sum, row, p.D, x.data());
      }
      const double rstd = fused_math::norm_rstd(row_sum(p.D, [&](int64_t i) { return x[i] * x[i]; }), p.D, p.eps);
      for (int64_t i = 0; i < p.D; ++i) {
        y[i] = fused_math::norm_out<Acc>(static_cast<Acc>(x[i]), rstd, static_cast<Acc>(w[i]));
      }
      store_row(p.y, row, p.D, y.data());
      p.rstd_ptr[row] = rstd;
    }
  });
}

template <typename Acc>
void norm_backward(const RmsNormBackwardParams& p, const CpuExec& ex) {
  std::vector<double> w(p.D);
  fused_math::load_span(p.weight_dtype, p.weight_ptr, 0, p.D, w.data());
  ex.run(p.rows, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<double> x(p.D), dy(p.D), dn(p.D), ds(p.D), dx(p.D);
    for (int64_t row = begin; row < end; ++row) {
      load_row(p.x, row, p.D, x.data());
      load_row(p.dy, row, p.D, dy.data());
      if (p.dsum.ptr != nullptr) load_row(p.dsum, row, p.D, ds.data());
      for (int64_t i = 0; i < p.D; ++i) dn[i] = dy[i] * w[i];
      const double rstd = p.rstd_ptr[row];
      const double coef = fused_math::norm_grad_coef(rstd, row_sum(p.D, [&](int64_t i) { return dn[i] * x[i]; }), p.D);
      for (int64_t i = 0; i < p.D; ++i) {
        double g = fused_math::norm_grad(x[i], dn[i], rstd, coef);
        if (p.dsum.ptr != nullptr) g += ds[i];
        dx[i] = round_acc<Acc>(g);
      }
      store_row(p.dx, row, p.D, dx.data());
      if (p.d_residual.ptr != nullptr) store_row(p.d_residual, row, p.D, dx.data());
    }
  });
}

template <typename Acc>
void norm_weight_grad(const RmsNormWeightGradParams& p, const CpuExec& ex) {
  const int64_t chunks = (p.rows + kNormWeightChunk - 1) / kNormWeightChunk;
  ex.run(chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> x(p.D), dy(p.D);
    for (int64_t c = begin; c < end; ++c) {
      double* acc = p.partial_ptr + c * p.D;
      for (int64_t j = 0; j < p.D; ++j) acc[j] = 0.0;
      const int64_t row_end = std::min(p.rows, (c + 1) * kNormWeightChunk);
      for (int64_t row = c * kNormWeightChunk; row < row_end; ++row) {
        load_row(p.x, row, p.D, x.data());
        load_row(p.dy, row, p.D, dy.data());
        const double rstd = p.rstd_ptr[row];
        for (int64_t j = 0; j < p.D; ++j) {
          acc[j] += dy[j] * static_cast<double>(fused_math::norm_xhat<Acc>(static_cast<Acc>(x[j]), rstd));
        }
      }
    }
  });
  ex.run(p.D, 64, [&](int64_t begin, int64_t end) {
    std::vector<double> dw(end - begin, 0.0);
    for (int64_t c = 0; c < chunks; ++c) {
      const double* acc = p.partial_ptr + c * p.D;
      for (int64_t j = begin; j < end; ++j) dw[j - begin] += acc[j];
    }
    fused_math::store_span(p.weight_dtype, p.dw_ptr, begin, end - begin, dw.data());
  });
}

}  // namespace

void run_rms_norm_cpu(const RmsNormParams& p, const CpuExec& ex) {
  if (p.x.dtype == DType::kFloat64) {
    norm_forward<double>(p, ex);
  } else {
    norm_forward<float>(p, ex);
  }
}

void run_rms_norm_backward_cpu(const RmsNormBackwardParams& p, const CpuExec& ex) {
  if (p.x.dtype == DType::kFloat64) {
    norm_backward<double>(p, ex);
  } else {
    norm_backward<float>(p, ex);
  }
}

void run_rms_norm_weight_grad_cpu(const RmsNormWeightGradParams& p, const CpuExec& ex) {
  if (p.x.dtype == DType::kFloat64) {
    norm_weight_grad<double>(p, ex);
  } else {
    norm_weight_grad<float>(p, ex);
  }
}

}  // namespace lighthouse
