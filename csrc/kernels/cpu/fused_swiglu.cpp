/*
 * CPU twin of the fused SwiGLU, forward and backward. Item: one row.
 * Formulas (in double): kernels/fused_math.h.
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
      for (int64_t i = 0; i < p.F; ++i) y[i] = fused_math::swiglu_out(g[i], u[i]);
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
      for (int64_t i = 0; i < p.F; ++i) fused_math::swiglu_grad(g[i], u[i], dy[i], &dg[i], &du[i]);
      fused_math::store_row(p.d_gate, r, p.F, dg.data());
      fused_math::store_row(p.d_up, r, p.F, du.data());
    }
  });
}

}  // namespace lighthouse
