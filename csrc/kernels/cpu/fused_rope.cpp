/*
 * CPU twin of the fused RoPE (forward rotation and its inverse). Item: one
 * (batch row, position): the angles of that position once, then every head
 * of q and k. Formulas: kernels/fused_math.h.
 */
#include <vector>

#include "fused_cpu.h"
#include "fused_rows.h"

namespace lighthouse {
namespace {

template <typename Acc>
void rotate_heads(const RopeTensor& t, DType dtype, int64_t b, int64_t n, int64_t d, const std::vector<Acc>& c,
                  const std::vector<Acc>& s, bool inverse, std::vector<double>& row) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < t.heads; ++h) {
    const int64_t offset = b * t.batch_stride + n * t.seq_stride + h * t.head_stride;
    fused_math::load_span(dtype, t.in_ptr, offset, d, row.data());
    for (int64_t i = 0; i < half; ++i) {
      Acc y0, y1;
      fused_math::rope_pair<Acc>(static_cast<Acc>(row[i]), static_cast<Acc>(row[i + half]), c[i], s[i], inverse, &y0,
                                 &y1);
      row[i] = y0;
      row[i + half] = y1;
    }
    fused_math::store_span(dtype, t.out_ptr, offset, d, row.data());
  }
}

template <typename Acc>
void rope(const RopeParams& p, const CpuExec& ex) {
  const int64_t half = p.d / 2;
  ex.run(p.B * p.N, 16, [&](int64_t begin, int64_t end) {
    std::vector<Acc> c(half), s(half);
    std::vector<double> row(p.d);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / p.N, n = item % p.N;
      const int64_t pos = p.positions_ptr[b * p.positions_batch_stride + n];
      for (int64_t i = 0; i < half; ++i) {
        double sd, cd;
        fused_math::sincos_d(fused_math::rope_angle(pos, p.inv_freq_ptr[i]), &sd, &cd);
        s[i] = static_cast<Acc>(sd);
        c[i] = static_cast<Acc>(cd);
      }
      rotate_heads<Acc>(p.q, p.dtype, b, n, p.d, c, s, p.inverse, row);
      rotate_heads<Acc>(p.k, p.dtype, b, n, p.d, c, s, p.inverse, row);
    }
  });
}

}  // namespace

void run_rope_cpu(const RopeParams& p, const CpuExec& ex) {
  if (p.dtype == DType::kFloat64) {
    rope<double>(p, ex);
  } else {
    rope<float>(p, ex);
  }
}

}  // namespace lighthouse
