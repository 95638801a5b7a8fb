/*
 * CPU twin of the fused SwiGLU, forward and backward. Item: one row.
 * Formulas (in double, or fp32 for 16-bit tensors): kernels/fused_math.h.
 */
#include <vector>

#include "fused_cpu.h"
#include "fused_rows.h"

namespace lighthouse {

void run_swiglu_cpu(const SwigluParams& p, const CpuExec& ex) {
  ex.run(p.rows, 8, [&](int64_t begin, int64_t end) {
    std::vector<double> g(p.F), u(p.F), y(p.F);
    for (int64_t r = begin; r < end; ++r) {
      fused_math::load_row(p.gate, r, p.F, g.data());
      fused_math::load_row(p.up, r, p.F, u.data());
      if (fused_math::swiglu_in_float(p.dtype)) {
        for (int64_t i = 0; i < p.F; ++i) {
          y[i] = fused_math::swiglu_out<float>(static_cast<float>(g[i]), static_cast<float>(u[i]));
        }
      } else {
        for (int64_t i = 0; i < p.F; ++i) y[i] = fused_math::swiglu_out<double>(g[i], u[i]);
      }
      fused_math::store_row(p.out, r, p.F, y.data());
    }
  });
}

void run_swiglu_backward_cpu(const SwigluBackwardParams& p, const CpuExec& ex) {
  ex.run(p.rows, 8, [&](int64_t begin, int64_t end) {
    std::vector<double> g(p.F), u(p.F), dy(p.F), dg(p.F), du(p.F);
    for (int64_t r = begin; r < end; ++r) {
      fused_math::load_row(p.gate, r, p.F, g.data());
      fused_math::load_row(p.up, r, p.F, u.data());
      fused_math::load_row(p.dout, r, p.F, dy.data());
      if (fused_math::swiglu_in_float(p.dtype)) {
        for (int64_t i = 0; i < p.F; ++i) {
          float a, b;
          fused_math::swiglu_grad<float>(static_cast<float>(g[i]), static_cast<float>(u[i]), static_cast<float>(dy[i]),
                                         &a, &b);
          dg[i] = a;
          du[i] = b;
        }
      } else {
        for (int64_t i = 0; i < p.F; ++i) fused_math::swiglu_grad<double>(g[i], u[i], dy[i], &dg[i], &du[i]);
      }
      fused_math::store_row(p.d_gate, r, p.F, dg.data());
      fused_math::store_row(p.d_up, r, p.F, du.data());
    }
  });
}

}  // namespace lighthouse
