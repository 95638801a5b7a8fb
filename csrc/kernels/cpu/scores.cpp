/*
 * CPU twin of pyramid_scores: base-token l2 norms, then span max per level.
 *
 * Work item = (row, side, head, tile): a tile is a whole number of coarsest
 * spans, so all levels of a tile are computed from that tile's base scores.
 * The sum of squares runs in fp64 and is rounded to fp32 once, so the score
 * is the correctly rounded norm in practice, whatever the summation order:
 * the CPU and CUDA paths rank entries identically. NaN ranks as +inf.
 */
#include <cmath>
#include <limits>

#include "kernels_cpu.h"
#include "numeric.h"

namespace lighthouse {
namespace {

template <typename T>
float token_norm(const T* x, int64_t d) {
  double acc = 0.0;
  for (int64_t i = 0; i < d; ++i) {
    const double v = static_cast<double>(Scalar<T>::load(x + i));
    acc += v * v;
  }
  const float r = static_cast<float>(std::sqrt(acc));
  return std::isnan(r) ? std::numeric_limits<float>::infinity() : r;
}

template <typename T>
void scores_impl(const ScoresParams& p, const CpuExec& ex) {
  const Geometry& g = p.g;
  const int64_t hq = p.q_src.heads;
  const int64_t hk = p.k_src.heads;
  const int64_t tile_len = g.tile_len();
  ex.run(g.B * (hq + hk) * g.T, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t tile = item % g.T;
      const int64_t hh = (item / g.T) % (hq + hk);
      const int64_t b = item / g.T / (hq + hk);
      const bool is_q = hh < hq;
      const TokenTensor& src = is_q ? p.q_src : p.k_src;
      const int64_t head = is_q ? hh : hh - hq;
      float* out = is_q ? p.sq_ptr + (b * hq + head) * g.P : p.sk_ptr + (b * hk + head) * g.P;
      const T* base = static_cast<const T*>(src.ptr) + b * src.batch_stride + head * src.head_stride;

      const int64_t t0 = tile * tile_len;
      for (int64_t t = t0; t < t0 + tile_len; ++t) {
        out[t] = t < g.N ? token_norm(base + t * src.seq_stride, g.d) : 0.0f;
      }
      const int64_t p_ = g.p();
      for (int l = 1; l < g.L; ++l) {
        const int64_t n_tile = tile_len >> (l * g.log2_p);
        const float* prev = out + g.level_offset[l - 1];
        float* cur = out + g.level_offset[l];
        for (int64_t j = tile * n_tile; j < (tile + 1) * n_tile; ++j) {
          float m = prev[j * p_];
          for (int64_t c = 1; c < p_; ++c) m = std::fmax(m, prev[j * p_ + c]);
          cur[j] = m;
        }
      }
    }
  });
}

}  // namespace

void run_scores_cpu(const ScoresParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, scores_impl<T>(p, ex));
}

}  // namespace lighthouse
