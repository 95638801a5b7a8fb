/*
 * CPU twin of the cross-entropy over vocabulary rows (forward: loss and
 * log-sum-exp per row; backward: the logits' gradient) and of the ordered
 * sum that adds the per-row losses. Item: one row. Formulas and order:
 * kernels/fused_math.h.
 */
#include <vector>

#include "fused_cpu.h"
#include "fused_rows.h"

namespace lighthouse {

void run_cross_entropy_cpu(const CrossEntropyParams& p, const CpuExec& ex) {
  ex.run(p.rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<double> z(p.V);
    for (int64_t r = begin; r < end; ++r) {
      fused_math::load_row(p.logits, r, p.V, z.data());
      double m = -fused_math::infinity_d();
      for (int64_t v = 0; v < p.V; ++v) m = fused_math::ce_max(m, z[v]);
      const double sum = fused_math::row_sum(p.V, [&](int64_t v) { return fused_math::exp_d(z[v] - m); });
      const double lse = m + fused_math::log_d(sum);
      const int64_t t = p.targets_ptr[r];
      p.lse_ptr[r] = lse;
      if (t == p.ignore_index) {
        p.loss_ptr[r] = 0.0;
      } else if (t < 0 || t >= p.V) {
        p.loss_ptr[r] = fused_math::nan_d();
      } else {
        p.loss_ptr[r] = lse - z[t];
      }
    }
  });
}

void run_cross_entropy_backward_cpu(const CrossEntropyBackwardParams& p, const CpuExec& ex) {
  const double g = *p.grad_ptr;
  ex.run(p.rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<double> z(p.V), dz(p.V);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t t = p.targets_ptr[r];
      if (t == p.ignore_index) {
        for (int64_t v = 0; v < p.V; ++v) dz[v] = 0.0;
      } else if (t < 0 || t >= p.V) {
        for (int64_t v = 0; v < p.V; ++v) dz[v] = fused_math::nan_d();
      } else {
        fused_math::load_row(p.logits, r, p.V, z.data());
        for (int64_t v = 0; v < p.V; ++v) dz[v] = fused_math::ce_grad(z[v], p.lse_ptr[r], v == t, g);
      }
      fused_math::store_row(p.dlogits, r, p.V, dz.data());
    }
  });
}

void run_ordered_sum_cpu(const OrderedSumParams& p, const CpuExec&) {
  std::vector<double> lanes(fused_math::kSumLanes, 0.0);
  for (int64_t i = 0; i < p.n; ++i) lanes[i % fused_math::kSumLanes] += p.x_ptr[i];
  for (int o = fused_math::kSumLanes / 2; o >= 1; o /= 2) {
    for (int j = 0; j < o; ++j) lanes[j] = lanes[j] + lanes[j + o];
  }
  *p.out_ptr = lanes[0];
}

}  // namespace lighthouse
